"""BatchNorm folded into the convolution before it, for inference.

In eval mode ``bn(conv(x))`` is an affine map per output channel, so it can be
written into the convolution's weight and bias: ``w' = w * s``,
``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``. The folded
model skips one full pass over every BatchNorm'd feature map. The pairs are
found from the model's call graph (``torch.fx`` tracing), so any module works:
a pair is folded only when the convolution's output feeds that BatchNorm alone
and neither module is called anywhere else.
"""

from __future__ import annotations

import torch
from torch import nn


def _call_counts(graph: torch.fx.Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
    return counts


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, BatchNorm name) pairs of ``model`` that :func:`fold_batchnorm`
    folds. A module that torch.fx cannot trace (input checks, data-dependent
    control flow) is searched through its children instead."""
    shared = _shared_modules(model)
    pairs: list[tuple[str, str]] = []

    def search(module: nn.Module, prefix: str) -> None:
        try:
            graph = torch.fx.Tracer().trace(module)
        except Exception:  # noqa: BLE001 - not traceable as a whole: look inside
            for name, child in module.named_children():
                search(child, f"{prefix}{name}.")
            return
        pairs.extend((prefix + conv, prefix + bn) for conv, bn in _pairs_in(graph, module)
                     if id(module.get_submodule(conv)) not in shared
                     and id(module.get_submodule(bn)) not in shared)

    search(model, "")
    return pairs


def _shared_modules(model: nn.Module) -> set[int]:
    """ids of the modules reachable under more than one name (never folded)."""
    seen: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        seen[id(module)] = seen.get(id(module), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def _pairs_in(graph: torch.fx.Graph, root: nn.Module) -> list[tuple[str, str]]:
    modules = dict(root.named_modules())
    counts = _call_counts(graph)
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, torch.fx.Node) or source.op != "call_module":
            continue
        conv, bn = modules[source.target], modules[node.target]
        if (type(conv) is nn.Conv2d and len(source.users) == 1 and len(node.args) == 1
                and not node.kwargs and counts[source.target] == 1 and counts[node.target] == 1
                and bn.running_mean is not None and bn.running_var is not None):
            pairs.append((source.target, node.target))
    return pairs


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Writes eval-mode ``bn`` into ``conv`` in place (computed in float64)."""
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = shift if conv.bias is None else conv.bias.double() * scale + shift
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


def fold_batchnorm(model: nn.Module) -> int:
    """Folds every foldable Conv2d -> BatchNorm2d pair of ``model`` in place (each
    BatchNorm becomes ``nn.Identity``) and returns how many were folded. For
    inference only: the model no longer trains as before."""
    pairs = foldable_pairs(model)
    for conv_name, bn_name in pairs:
        fold_conv_bn(model.get_submodule(conv_name), model.get_submodule(bn_name))
        parent_name, _, child = bn_name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.Identity())
    return len(pairs)
