"""db_binarize against the peers' ways of writing B = sigmoid(k (P - T)).

Baselines, in the same run: eager `torch.sigmoid(k*(p-t))`, eager
`torch.reciprocal(1+torch.exp(-k*(p-t)))` (MhLiao/DB's form), torch.compile of
each, and a tensor copy that moves the same bytes as our op (the memory limit:
forward reads 2 maps and writes 1, backward reads 2 and writes 2).
"""

from __future__ import annotations

import pytest
import torch

from common import compiled, devices, run
from dbnet_fast.ops import db_binarize

SHAPE = (8, 1, 640, 640)
K = 50.0
MAPS_MOVED = {"forward": 3, "backward": 4, "forward+backward": 7}


def sigmoid_form(p, t):
    return torch.sigmoid(K * (p - t))


def reference_form(p, t):
    return torch.reciprocal(1 + torch.exp(-K * (p - t)))


def ours(p, t):
    return db_binarize(p, t, K)


VARIANTS = {
    "dbnet_fast": lambda: ours,
    "eager sigmoid": lambda: sigmoid_form,
    "eager reference form": lambda: reference_form,
    "compiled sigmoid": lambda: compiled(sigmoid_form, fullgraph=True, dynamic=False),
    "compiled reference form": lambda: compiled(reference_form, fullgraph=True, dynamic=False),
}
COPY = "copy, same bytes"
CASES = [
    (device, dtype)
    for device in devices()
    for dtype in ([torch.float32] if device == "cpu" else [torch.float32, torch.bfloat16])
]


def make_step(variant: str, pass_: str, device: str, dtype: torch.dtype):
    gen = torch.Generator(device="cpu").manual_seed(0)
    p, t, g = (torch.rand(SHAPE, generator=gen).to(device, dtype) for _ in range(3))
    if variant == COPY:
        count = p.numel() * MAPS_MOVED[pass_] // 2  # a copy reads and writes each element
        src = torch.rand(count, generator=gen).to(device, dtype)
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)
    fn = VARIANTS[variant]()
    if pass_ == "forward":

        def forward():
            with torch.no_grad():
                return fn(p, t)

        return forward
    p.requires_grad_(True)
    t.requires_grad_(True)
    if pass_ == "backward":
        out = fn(p, t)
        return lambda: torch.autograd.grad(out, (p, t), g, retain_graph=True)
    return lambda: torch.autograd.grad(fn(p, t), (p, t), g)


@pytest.mark.parametrize("pass_", list(MAPS_MOVED))
@pytest.mark.parametrize("variant", [*VARIANTS, COPY])
@pytest.mark.parametrize("device, dtype", CASES, ids=lambda c: str(c).replace("torch.", ""))
def bench_binarize(benchmark, device, dtype, variant, pass_):
    step = make_step(variant, pass_, device, dtype)
    role = "ours" if variant == "dbnet_fast" else "memory limit" if variant == COPY else "baseline"
    dtype_name = str(dtype).replace("torch.", "")
    group = f"binarize {pass_} {dtype_name} {device} {tuple(SHAPE)}"
    run(benchmark, step, device=device, op="binarize", variant=variant, role=role, group=group)
