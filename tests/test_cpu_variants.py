"""Every dispatched variant of the CPU kernels (csrc/core/clones.h: baseline,
AVX2, AVX-512) gives the same bits on the same inputs. Each variant this CPU
runs is forced with DBNET_FAST_CPU_VARIANT in a subprocess that computes every
op whose loops are dispatched and saves what came out; variants the CPU lacks
are skipped. The element math is compiled without contraction (DESIGN.md
section 6), so the contract is bitwise, not merely close."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dbnet_fast.ops as ops

VARIANTS = ["baseline", "avx2", "avx512"]

# Computes each dispatched op on fixed random inputs (and edge cases) and saves
# the results as one .npz: argv[1].
CHILD = r"""
import sys
import numpy as np
import torch
import dbnet_fast.ops as ops
from dbnet_fast.assets import real_maps_path
from dbnet_fast.postprocess import DBPostProcessor
from dbnet_fast.reference.samples import icdar_like, total_text_like

torch.set_num_threads(1)
out = {"variant": np.array(ops.cpu_variant())}
gen = torch.Generator().manual_seed(20)

# db_binarize: odd lengths (vector tails), steep and flat gains, extreme values
p = torch.rand(3, 1, 37, 53, generator=gen, dtype=torch.float64).float()
t = torch.rand(3, 1, 37, 53, generator=gen, dtype=torch.float64).float()
p.view(-1)[:6] = torch.tensor([0.0, 1.0, 3e38, -3e38, 1e-30, 0.5])
t.view(-1)[:6] = torch.tensor([1.0, 0.0, -3e38, 3e38, -1e-30, 0.5])
for k in (0.0, 1.0, 50.0, 1e4):
    pk, tk = p.clone().requires_grad_(), t.clone().requires_grad_()
    b = ops.db_binarize(pk, tk, k)
    gp, gt = torch.autograd.grad(b, (pk, tk), torch.rand(b.shape, generator=gen))
    out[f"binarize k={k}"] = b.detach().numpy()
    out[f"binarize grad k={k}"] = np.stack([gp.numpy(), gt.numpy()])

# db_loss, forward and backward
shape = (2, 1, 45, 61)
xp = (torch.randn(shape, generator=gen) * 4).requires_grad_()
xt = torch.randn(shape, generator=gen).requires_grad_()
gt_map = (torch.rand(shape, generator=gen) > 0.7).float()
mask = (torch.rand(shape, generator=gen) > 0.1).float()
tmap, tmask = torch.rand(shape, generator=gen), (torch.rand(shape, generator=gen) > 0.5).float()
total, parts = ops.db_loss(xp, xt, gt_map, mask, tmap, tmask)
out["loss"] = np.array([total.item()] + [v.item() for v in parts.values()])
grads = torch.autograd.grad(total, (xp, xt))
out["loss grads"] = np.stack([g.numpy() for g in grads])

# db_targets: quads and curved polygons, both distance modes, one ignored
rng = np.random.default_rng(20)
for size in ((640, 640), (97, 131)):
    polygons = icdar_like(rng, size) + total_text_like(rng, size)
    ignore = [i % 7 == 3 for i in range(len(polygons))]
    for distance in ("reference", "exact"):
        maps = ops.db_targets(polygons, size, ignore=ignore, distance=distance)
        out[f"targets {size} {distance}"] = np.stack([m.numpy() for m in maps])

# post-processing: real PP-OCRv4 maps and random blobs, quads and polygons
data = np.load(real_maps_path())
maps = [data[f"prob_{n}"] for n in data["names"]]
noise = torch.rand(1, 1, 41, 41, generator=gen)
maps.append(torch.nn.functional.interpolate(noise, size=(300, 420), mode="bilinear")[0, 0].numpy())
for i, prob in enumerate(maps):
    prob = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))
    for output in ("quad", "poly"):
        for score_mode in ("fast", "slow"):
            post = DBPostProcessor(thresh=0.3, box_thresh=0.4, output=output, score_mode=score_mode,
                                   use_dilation=i % 2 == 1)
            (found,) = post(prob[None])
            boxes = found.boxes if output == "quad" else torch.cat([b.reshape(-1, 2) for b in found.boxes]
                                                                  or [torch.zeros(0, 2)])
            out[f"post {i} {output} {score_mode} boxes"] = boxes.numpy()
            out[f"post {i} {output} {score_mode} scores"] = found.scores.numpy()
    xy, offsets = ops.map_contours(prob, 0.3)
    out[f"contours {i}"] = np.concatenate([xy.numpy().ravel(), offsets.numpy()])
np.savez(sys.argv[1], **out)
"""


def run_variant(variant: str, path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DBNET_FAST_CPU_VARIANT=variant)
    return subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, capture_output=True,
                          text=True, timeout=600)


def test_every_variant_gives_the_same_bits(tmp_path):
    runnable = ops.cpu_variants()
    assert runnable[0] == "baseline" and ops.cpu_variant() in runnable
    results = {}
    for variant in runnable:
        path = tmp_path / f"{variant}.npz"
        done = run_variant(variant, path)
        assert done.returncode == 0, done.stderr[-3000:]
        results[variant] = dict(np.load(path))
        assert str(results[variant].pop("variant")) == variant
    if len(runnable) < 2:
        pytest.skip("this CPU runs only the baseline variant: nothing to compare")
    first, expected = runnable[0], results[runnable[0]]
    for variant in runnable[1:]:
        got = results[variant]
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name].shape == expected[name].shape, (variant, name)
            same = got[name].view(np.uint8) == expected[name].view(np.uint8)
            assert same.all(), f"{name}: {variant} differs from {first} in {(~same).sum()} bytes"


@pytest.mark.parametrize("variant", VARIANTS)
def test_forcing_a_variant(tmp_path, variant):
    env = dict(os.environ, DBNET_FAST_CPU_VARIANT=variant)
    code = "import dbnet_fast.ops as o; print(o.cpu_variant())"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    if variant in ops.cpu_variants():
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split() == [variant]
    else:  # a variant this CPU cannot run is refused at import, with the reason
        assert done.returncode != 0
        assert f"DBNET_FAST_CPU_VARIANT={variant}: this CPU (or build) runs at most" in done.stderr


def test_an_unknown_variant_is_refused():
    env = dict(os.environ, DBNET_FAST_CPU_VARIANT="sse9")
    done = subprocess.run([sys.executable, "-c", "import dbnet_fast"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    assert "ImportError: DBNET_FAST_CPU_VARIANT must be one of auto, baseline, avx2, avx512; got 'sse9'" \
        in done.stderr
