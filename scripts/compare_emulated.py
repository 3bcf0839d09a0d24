"""Each op's CUDA kernels on the device against their host emulation
(dbnet_fast.testing.emulated_cuda) on the same inputs: the GPU half of
DESIGN.md section 6, run by scripts/gpu_check.sh. Prints a markdown table (and
writes JSON with --json); exits 1 when a row fails.

``--reference cpu`` compares the emulation with the CPU kernels instead: no GPU
needed (the tests run it so, as the script's dry run).

    python scripts/compare_emulated.py [--reference cuda|cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np
import torch

from dbnet_fast.assets import real_maps_path
from dbnet_fast.ops import db_binarize, db_boxes, db_loss, db_targets_batch
from dbnet_fast.reference.samples import icdar_like, total_text_like
from dbnet_fast.testing import emulated_cuda


@dataclass
class Case:
    name: str
    run: callable      # device -> list of tensors
    tolerances: list   # per output: None (the same bits) or (rtol, atol)


def binarize(dtype):
    gen = torch.Generator().manual_seed(1)
    p, t, g = (torch.rand(4, 1, 97, 131, generator=gen).to(dtype) for _ in range(3))

    def run(device):
        pp, tt = p.to(device).requires_grad_(True), t.to(device).requires_grad_(True)
        out = db_binarize(pp, tt)
        return [out, *torch.autograd.grad(out, (pp, tt), g.to(device))]

    exact = dtype != torch.float64  # (float64 calls exp, which may differ by an ulp)
    return Case(f"db_binarize {str(dtype)[6:]}", run, [None if exact else (1e-13, 0.0)] * 3)


def loss():
    gen = torch.Generator().manual_seed(2)
    shape = (2, 1, 160, 160)
    xp, xt = ((torch.rand(shape, generator=gen) * 2 - 1) * 12 for _ in range(2))
    gt, mask, tmask = ((torch.rand(shape, generator=gen) < q).float() for q in (0.2, 0.9, 0.5))
    tmap = torch.rand(shape, generator=gen) * 0.4 + 0.3

    def run(device):
        a, b = xp.to(device).requires_grad_(True), xt.to(device).requires_grad_(True)
        labels = [x.to(device) for x in (gt, mask, tmap, tmask)]
        _, keys, _ = torch.ops.dbnet_fast.db_loss.default(a, b, *labels, 50.0, 5.0, 1.0, 10.0, 3.0, 1e-6)
        total, terms = db_loss(a, b, *labels)
        return [keys, torch.stack([total, *terms.values()]), *torch.autograd.grad(total, (a, b))]

    # keys: the pixel math, bit for bit; the sums: another summation order
    return Case("db_loss float32", run, [None, (1e-6, 0.0), (1e-5, 1e-9), (1e-5, 1e-9)])


def targets():
    rng = np.random.default_rng(3)
    size = (320, 480)
    batch = [icdar_like(rng, size) for _ in range(3)] + [total_text_like(rng, size) for _ in range(3)]
    return Case("db_targets", lambda device: list(db_targets_batch(batch, size, device=device)), [(0.0, 1e-5)] * 4)


def boxes():
    data = np.load(real_maps_path())
    maps = [torch.from_numpy(data[f"prob_{name}"]) for name in data["names"]]
    batch = torch.zeros(len(maps), max(m.shape[0] for m in maps), max(m.shape[1] for m in maps))
    for i, m in enumerate(maps):
        batch[i, : m.shape[0], : m.shape[1]] = m

    def run(device):
        got = db_boxes(batch.to(device), box_thresh=0.6, unclip_ratio=1.5)
        return [got[2], got[0], got[1]]

    # the device's trigonometry may differ by an ulp from the host's
    return Case("db_boxes real maps", run, [None, (0.0, 1e-3), (0.0, 1e-6)])


def compare(case: Case, reference: str) -> dict:
    expected = [t.detach().cpu() for t in case.run(reference)]
    with emulated_cuda(12345):
        emulated = [t.detach().cpu() for t in case.run("cpu")]
    worst, ok = 0.0, True
    for a, b, tolerance in zip(expected, emulated, case.tolerances):
        if a.shape != b.shape or a.dtype != b.dtype:
            ok = False
            continue
        if a.numel():
            worst = max(worst, float((a.double() - b.double()).abs().max()))
        if tolerance is None:
            ok = ok and torch.equal(a, b)
        else:
            ok = ok and torch.allclose(b.double(), a.double(), rtol=tolerance[0], atol=tolerance[1])
    return {"case": case.name, "outputs": len(expected), "max_abs_diff": worst, "ok": ok}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args(argv)
    if args.reference == "cuda" and not torch.cuda.is_available():
        print("compare_emulated: no CUDA device (use --reference cpu for the dry run)", file=sys.stderr)
        return 1
    cases = [binarize(torch.float32), binarize(torch.float16), binarize(torch.bfloat16), binarize(torch.float64),
             loss(), targets(), boxes()]
    rows = [compare(case, args.reference) for case in cases]
    print(f"| case | outputs | max abs diff ({args.reference} vs emulated) | result |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['outputs']} | {row['max_abs_diff']:.3g} | {'ok' if row['ok'] else 'FAIL'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"reference": args.reference, "rows": rows}, f, indent=2)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
