"""Read the weights of PaddleOCR's PP-OCRv4 detector from its ONNX export.

The export (paddle2onnx) stores every weight as a ``Constant`` node. Walking
the nodes in order gives one record per weighted layer:

- ``Conv``: weight, optional bias, stride / padding / groups / dilation;
- ``BatchNormalization``: scale, bias, running mean and variance, epsilon;
- ``ConvTranspose``: weight, and its bias (the export adds it with a separate
  ``Add`` of a (1, C, 1, 1) constant);
- ``Mul`` by a constant followed by ``Add`` of a constant: a learnable affine
  block (scale, bias);
- ``HardSigmoid``: its slope (alpha) and offset (beta), checked, no weights.

:func:`load_onnx_weights` pairs these records, in order, with
``model.onnx_layers()`` (the model's layers in the same order) and copies the
tensors, checking kind, shape and conv attributes at every step; the first
mismatch raises a ValueError that names the model's layer and the graph node.
Only ``onnx`` is needed (not onnxruntime).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dbnet_fast.model.ppocr import HardSigmoid, LearnableAffine


@dataclass
class Record:
    """One weighted layer of the graph: ``kind`` is "conv", "bn", "conv_transpose",
    "affine" or "hardsigmoid"; ``tensors`` maps names to arrays; ``attrs`` the
    node attributes that the module must match; ``node`` the node's output name."""

    kind: str
    node: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise ImportError("loading the PP-OCR detector from its ONNX file needs the `onnx` "
                          "package: pip install onnx") from err
    return onnx, numpy_helper


def read_records(path: str) -> list[Record]:
    """The weighted layers of the ONNX file at ``path``, in node order."""
    onnx, numpy_helper = _import_onnx()
    try:
        model = onnx.load(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # protobuf DecodeError and friends
        raise ValueError(f"{path} is not a readable ONNX model "
                         f"({type(err).__name__}: {err})") from err
    graph = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def attrs_of(node) -> dict:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def const_operand(node):
        """(constant, other input) of a binary node with exactly one constant input."""
        known = [i for i in node.input if i in consts]
        others = [i for i in node.input if i not in consts]
        if len(known) == 1 and len(others) == 1:
            return consts[known[0]], others[0]
        return None, None

    def bias_add(output: str):
        """The constant of the one Add node that consumes ``output``, if it is one."""
        users = consumers.get(output, [])
        if len(users) == 1 and users[0].op_type == "Add":
            value, _ = const_operand(users[0])
            return value
        return None

    records: list[Record] = []
    for node in graph.node:
        op, out = node.op_type, node.output[0]
        if op == "Conv":
            tensors = {"weight": consts[node.input[1]]}
            if len(node.input) > 2 and node.input[2]:
                tensors["bias"] = consts[node.input[2]]
            records.append(Record("conv", out, tensors, attrs_of(node)))
        elif op == "ConvTranspose":
            tensors = {"weight": consts[node.input[1]]}
            bias = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else bias_add(out)
            if bias is not None:
                tensors["bias"] = bias.reshape(-1)
            records.append(Record("conv_transpose", out, tensors, attrs_of(node)))
        elif op == "BatchNormalization":
            names = ("weight", "bias", "running_mean", "running_var")
            tensors = {n: consts[i] for n, i in zip(names, node.input[1:5])}
            records.append(Record("bn", out, tensors, attrs_of(node)))
        elif op == "Mul":
            scale, _ = const_operand(node)
            if scale is None:
                continue  # activations: x * clip(...), x * gate
            bias = bias_add(out)
            if bias is None:
                raise ValueError(f"{path}: not the PP-OCRv4 mobile detector's export (Mul node "
                                 f"{out!r} by a constant is not followed by an Add of a "
                                 f"constant, as a learnable affine block is)")
            records.append(Record("affine", out, {"scale": scale, "bias": bias}))
        elif op == "HardSigmoid":
            records.append(Record("hardsigmoid", out, {}, attrs_of(node)))
    return records


KIND_OF = {nn.Conv2d: "conv", nn.ConvTranspose2d: "conv_transpose", nn.BatchNorm2d: "bn",
           LearnableAffine: "affine", HardSigmoid: "hardsigmoid"}


def _expected_attrs(module: nn.Module) -> dict:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        pads = [int(p) for p in module.padding]
        return {"kernel_shape": list(module.kernel_size), "strides": list(module.stride),
                "pads": pads + pads, "group": module.groups, "dilations": list(module.dilation)}
    return {}


def _copy(name: str, record: Record, target: torch.Tensor, value: np.ndarray, what: str) -> None:
    value = np.array(value, dtype=np.float32)  # a writable copy
    if value.size == target.numel() and value.ndim != target.dim() and target.dim() == 1:
        value = value.reshape(-1)  # scalars stored as shape () or (1,)
    if tuple(value.shape) != tuple(target.shape):
        raise ValueError(f"PP-OCR weights: {name}.{what} has shape {tuple(target.shape)} but "
                         f"graph node {record.node!r} gives {tuple(value.shape)}")
    target.copy_(torch.from_numpy(value))


def load_onnx_weights(model: nn.Module, path: str) -> None:
    """Copy the ONNX export's weights into ``model`` (a
    :class:`~dbnet_fast.model.ppocr.PPOCRDet`), checking each layer."""
    records = read_records(path)
    names = {id(m): n for n, m in model.named_modules()}
    layers = list(model.onnx_layers())
    if len(records) != len(layers):
        raise ValueError(f"PP-OCR weights: {path} has {len(records)} weighted layers, the model "
                         f"{len(layers)}: not the PP-OCRv4 mobile detector's export")
    with torch.no_grad():
        for layer, record in zip(layers, records):
            name = names[id(layer)]
            kind = next(k for t, k in KIND_OF.items() if isinstance(layer, t))
            if kind != record.kind:
                raise ValueError(f"PP-OCR weights: {name} is a {kind} layer but graph node "
                                 f"{record.node!r} is a {record.kind}")
            for attr, expected in _expected_attrs(layer).items():
                found = record.attrs.get(attr)
                same = list(np.atleast_1d(found)) == list(np.atleast_1d(expected))
                if found is not None and not same:
                    raise ValueError(f"PP-OCR weights: {name} has {attr}={expected} but graph "
                                     f"node {record.node!r} has {found}")
            if kind == "hardsigmoid":
                alpha, beta = record.attrs.get("alpha", 0.2), record.attrs.get("beta", 0.5)
                if abs(alpha - layer.slope) > 1e-6 or abs(beta - 0.5) > 1e-6:
                    raise ValueError(f"PP-OCR weights: {name} has slope {layer.slope}, offset 0.5 "
                                     f"but graph node {record.node!r} has {alpha}, {beta}")
                continue
            if kind == "bn":
                eps = record.attrs.get("epsilon", 1e-5)
                if abs(eps - layer.eps) > 1e-9:
                    raise ValueError(f"PP-OCR weights: {name} has eps {layer.eps} but graph "
                                     f"node {record.node!r} has {eps}")
            params = dict(layer.named_parameters(recurse=False))
            params.update(dict(layer.named_buffers(recurse=False)))
            wanted = {n for n, v in params.items() if v is not None and n != "num_batches_tracked"}
            if set(record.tensors) != wanted:
                raise ValueError(f"PP-OCR weights: {name} holds {sorted(wanted)} but graph node "
                                 f"{record.node!r} gives {sorted(record.tensors)}")
            for what, value in record.tensors.items():
                _copy(name, record, params[what], value, what)
