"""Read a PaddleOCR detector's weights from its ONNX export (paddle2onnx).

The exports differ in encoding: weights as ``Constant`` nodes or as
initializers, sometimes behind ``Identity`` or ``Reshape`` nodes; conv biases
as the conv's third input or as a separate ``Add`` of a (1, C, 1, 1)
constant; hardswish as one node or as ``HardSigmoid`` times its input.
:func:`read_records` folds those constants and walks the nodes in order,
giving one record per weighted layer:

- ``Conv`` / ``ConvTranspose``: weight, optional bias, the conv attributes;
- ``BatchNormalization``: scale, bias, running mean and variance, epsilon;
- ``Mul`` by a one-element constant followed by ``Add`` of one: a learnable
  affine block (scale, bias);
- ``HardSigmoid`` used as a gate (not inside a hardswish): slope and offset.

:func:`load_onnx_weights` pairs the records, in order, with
``model.onnx_layers()`` and copies the tensors, checking kind, shape and
conv attributes at every step; the first mismatch raises a ValueError that
names the file, the model's layer and the graph node. Only ``onnx`` is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dbnet_fast.model.paddle.layers import HardSigmoid, LearnableAffine, SamePadConv2d


@dataclass
class Record:
    """One weighted layer of the graph: ``kind`` is "conv", "conv_transpose",
    "bn", "affine" or "hardsigmoid"; ``tensors`` maps names to arrays; ``attrs``
    the node attributes; ``node`` the node's output name."""

    kind: str
    node: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise ImportError("loading a PP-OCR detector from its ONNX file needs the `onnx` "
                          "package: pip install onnx") from err
    return onnx, numpy_helper


def read_records(path: str) -> list[Record]:
    """The weighted layers of the ONNX file at ``path``, in node order."""
    onnx, numpy_helper = _import_onnx()
    try:
        model = onnx.load(path)
        graph = model.graph
        consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t)
                                         for t in graph.initializer}
    except FileNotFoundError:
        raise
    except Exception as err:  # protobuf DecodeError, truncated external data, ...
        raise ValueError(f"{path} is not a readable ONNX model "
                         f"({type(err).__name__}: {err})") from err

    def attrs_of(node) -> dict:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    # Identity nodes only rename: every name is read as the one it stands for
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}

    def resolve(name: str) -> str:
        seen = 0
        while name in alias and seen <= len(alias):
            name, seen = alias[name], seen + 1
        return name

    nodes = [n for n in graph.node if n.op_type != "Identity"]
    for node in nodes:
        node.input[:] = [resolve(i) for i in node.input]
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    # fold the constant nodes and the reshapes of constants
    for node in nodes:
        if node.op_type == "Constant":
            value = attrs_of(node).get("value")
            if value is not None:
                consts[node.output[0]] = numpy_helper.to_array(value)
        elif node.op_type == "Reshape" and all(i in consts for i in node.input[:2]):
            shape = [int(s) for s in consts[node.input[1]]]
            if 0 not in shape:
                consts[node.output[0]] = consts[node.input[0]].reshape(shape)

    def const_operand(node):
        """The constant of a binary node with exactly one constant input, else None."""
        known = [i for i in node.input if i in consts]
        return consts[known[0]] if len(known) == 1 and len(node.input) == 2 else None

    def only_user(output: str, op_type: str):
        users = consumers.get(output, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    def weight(node, index: int) -> np.ndarray:
        if len(node.input) <= index or node.input[index] not in consts:
            raise ValueError(f"{path}: graph node {node.output[0]!r} ({node.op_type}) has no "
                             f"constant input {index}: not a PP-OCR detector's export")
        return consts[node.input[index]]

    records: list[Record] = []
    for node in nodes:
        op, out = node.op_type, node.output[0]
        if op in ("Conv", "ConvTranspose"):
            tensors = {"weight": weight(node, 1)}
            if len(node.input) > 2 and node.input[2]:
                tensors["bias"] = weight(node, 2).reshape(-1)
            else:  # the bias as a separate Add of a (1, C, 1, 1) constant
                add = only_user(out, "Add")
                bias = const_operand(add) if add is not None else None
                if bias is not None and bias.ndim == 4 and bias.shape[1] == bias.size:
                    tensors["bias"] = bias.reshape(-1)
            kind = "conv" if op == "Conv" else "conv_transpose"
            records.append(Record(kind, out, tensors, attrs_of(node)))
        elif op == "BatchNormalization":
            names = ("weight", "bias", "running_mean", "running_var")
            tensors = {n: weight(node, i) for i, n in enumerate(names, start=1)}
            records.append(Record("bn", out, tensors, attrs_of(node)))
        elif op == "Mul":
            scale = const_operand(node)
            add = only_user(out, "Add")
            bias = const_operand(add) if add is not None else None
            if scale is not None and scale.size == 1 and scale.ndim == 1 \
                    and bias is not None and bias.size == 1 and bias.ndim == 1:
                records.append(Record("affine", out, {"scale": scale, "bias": bias}))
        elif op == "HardSigmoid":
            mul = only_user(out, "Mul")
            if mul is None or set(mul.input) != {node.input[0], out}:  # else a hardswish
                records.append(Record("hardsigmoid", out, {}, attrs_of(node)))
    return records


KIND_OF = {nn.Conv2d: "conv", nn.ConvTranspose2d: "conv_transpose", nn.BatchNorm2d: "bn",
           LearnableAffine: "affine", HardSigmoid: "hardsigmoid"}


def _conv_mismatch(module: nn.Module, attrs: dict) -> str | None:
    """What differs between a conv module and a Conv / ConvTranspose node's attributes."""
    found = {"kernel_shape": list(attrs.get("kernel_shape", module.kernel_size)),
             "strides": list(attrs.get("strides", [1, 1])),
             "group": int(attrs.get("group", 1)),
             "dilations": list(attrs.get("dilations", [1, 1]))}
    expected = {"kernel_shape": list(module.kernel_size), "strides": list(module.stride),
                "group": module.groups, "dilations": list(module.dilation)}
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if isinstance(module, SamePadConv2d):
        found["padding"], expected["padding"] = auto_pad, "SAME_UPPER"
    else:
        pads = [int(p) for p in module.padding]
        found["padding"] = auto_pad if auto_pad != "NOTSET" else list(attrs.get("pads", [0] * 4))
        expected["padding"] = pads + pads
    for key, value in expected.items():
        if found[key] != value:
            return f"{key}={value} but the node has {found[key]}"
    return None


def _check_layer(path: str, name: str, layer: nn.Module, record: Record) -> dict:
    """The tensors to copy into ``layer`` from ``record``, or ValueError saying what differs."""
    where = f"{path}: {name}"
    kind = next(k for t, k in KIND_OF.items() if isinstance(layer, t))
    if kind != record.kind:
        raise ValueError(f"{where} is a {kind} layer but graph node {record.node!r} is a "
                         f"{record.kind}")
    if kind in ("conv", "conv_transpose"):
        mismatch = _conv_mismatch(layer, record.attrs)
        if mismatch:
            raise ValueError(f"{where} has {mismatch} (graph node {record.node!r})")
    if kind == "hardsigmoid":
        alpha, beta = record.attrs.get("alpha", 0.2), record.attrs.get("beta", 0.5)
        if abs(alpha - layer.slope) > 1e-6 or abs(beta - 0.5) > 1e-6:
            raise ValueError(f"{where} has slope {layer.slope:g}, offset 0.5 but graph node "
                             f"{record.node!r} has {alpha:g}, {beta:g}")
        return {}
    if kind == "bn" and abs(record.attrs.get("epsilon", 1e-5) - layer.eps) > 1e-9:
        raise ValueError(f"{where} has eps {layer.eps} but graph node {record.node!r} has "
                         f"{record.attrs.get('epsilon')}")
    params = dict(layer.named_parameters(recurse=False))
    params.update(dict(layer.named_buffers(recurse=False)))
    targets = {n: v for n, v in params.items() if v is not None and n != "num_batches_tracked"}
    if set(record.tensors) != set(targets):
        raise ValueError(f"{where} holds {sorted(targets)} but graph node {record.node!r} "
                         f"gives {sorted(record.tensors)}")
    copies = {}
    for what, value in record.tensors.items():
        target = targets[what]
        value = np.array(value, dtype=np.float32)  # a writable copy
        if value.size == target.numel() and target.dim() == 1:
            value = value.reshape(-1)  # scalars stored as shape () or (1,)
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{where}.{what} has shape {tuple(target.shape)} but graph node "
                             f"{record.node!r} gives {tuple(value.shape)}")
        if not np.isfinite(value).all():
            raise ValueError(f"{where}.{what}: graph node {record.node!r} holds NaN or inf")
        copies[what] = (target, value)
    return copies


def load_onnx_weights(model: nn.Module, path: str | os.PathLike, title: str) -> None:
    """Copy the ONNX export's weights into ``model`` (a
    :class:`~dbnet_fast.model.paddle.PPOCRDet`), all or nothing: every layer
    is checked before the first tensor is copied. ``title`` names the model
    in the errors ("PP-OCRv5 mobile")."""
    path = os.fspath(path)
    records = read_records(path)
    names = {id(m): n for n, m in model.named_modules()}
    layers = list(model.onnx_layers())
    if len(records) != len(layers):
        raise ValueError(f"{path} has {len(records)} weighted layers, the {title} detector "
                         f"{len(layers)}: not the {title} detector's export")
    copies = [_check_layer(path, names[id(layer)], layer, record)
              for layer, record in zip(layers, records)]
    with torch.no_grad():
        for layer_copies in copies:
            for target, value in layer_copies.values():
                target.copy_(torch.from_numpy(value))
