"""db_loss against the DB loss as the peers write it (MhLiao/DB's
BalanceCrossEntropyLoss + DiceLoss + MaskL1Loss: ~30 kernels, a torch.topk over
the negatives and host syncs), eager and under torch.compile, plus a copy that
moves the memory floor's bytes (6 maps read, 2 gradients written)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common import compiled, devices, run
from dbnet_fast.ops import db_loss

SHAPE = (8, 1, 640, 640)
EPS = 1e-6


def peer_loss(xp, xt, gt, mask, thresh_map, thresh_mask, k=50.0, ratio=3.0):
    prob, thresh = torch.sigmoid(xp), torch.sigmoid(xt)
    binary = torch.reciprocal(1 + torch.exp(-k * (prob - thresh)))
    positive = (gt * mask).byte()
    negative = ((1 - gt) * mask).byte()
    positive_count = int(positive.float().sum())
    negative_count = min(int(negative.float().sum()), int(positive_count * ratio))
    loss = F.binary_cross_entropy(prob, gt, reduction="none")
    positive_loss = loss * positive.float()
    negative_loss, _ = torch.topk((loss * negative.float()).view(-1), negative_count)
    bce = (positive_loss.sum() + negative_loss.sum()) / (positive_count + negative_count + EPS)
    intersection = (binary * gt * mask).sum()
    union = (binary * mask).sum() + (gt * mask).sum() + EPS
    dice = 1 - 2.0 * intersection / union
    l1 = (torch.abs(thresh - thresh_map) * thresh_mask).sum() / (thresh_mask.sum() + EPS)
    return 5 * bce + dice + 10 * l1


def ours(*maps):
    return db_loss(*maps)[0]


def compiled_peer(*maps):
    return compiled(peer_loss)(*maps)  # graph breaks at the host syncs, as the peers' code has


VARIANTS = {"dbnet_fast": ours, "eager reference": peer_loss, "compiled reference": compiled_peer}
COPY = "copy, memory floor"
PASSES = ("forward", "forward+backward")


def make_maps(device):
    gen = torch.Generator().manual_seed(0)
    xp = (torch.rand(SHAPE, generator=gen) * 30 - 15).to(device)
    xt = (torch.rand(SHAPE, generator=gen) * 30 - 15).to(device)
    gt = (torch.rand(SHAPE, generator=gen) < 0.1).float().to(device)
    mask = (torch.rand(SHAPE, generator=gen) < 0.98).float().to(device)
    thresh_map = (torch.rand(SHAPE, generator=gen) * 0.4 + 0.3).to(device)
    thresh_mask = (torch.rand(SHAPE, generator=gen) < 0.3).float().to(device)
    return xp, xt, gt, mask, thresh_map, thresh_mask


def make_step(variant, pass_, device):
    maps = make_maps(device)
    if variant == COPY:
        maps_moved = 6 if pass_ == "forward" else 8
        src = torch.rand(maps[0].numel() * maps_moved // 2, device=device)
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)
    fn = VARIANTS[variant]
    if pass_ == "forward":

        def forward():
            with torch.no_grad():
                return fn(*maps)

        return forward
    xp, xt = (m.clone().requires_grad_(True) for m in maps[:2])
    return lambda: torch.autograd.grad(fn(xp, xt, *maps[2:]), (xp, xt))


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("variant", [*VARIANTS, COPY])
@pytest.mark.parametrize("device", devices())
def bench_loss(benchmark, device, variant, pass_):
    step = make_step(variant, pass_, device)
    role = "ours" if variant == "dbnet_fast" else "memory limit" if variant == COPY else "baseline"
    group = f"db_loss {pass_} float32 {device} {tuple(SHAPE)}"
    run(benchmark, step, device=device, op="db_loss", variant=variant, role=role, group=group)
