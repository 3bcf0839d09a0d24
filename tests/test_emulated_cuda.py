"""The CUDA kernels on the host emulation (dbnet_fast.testing.emulated_cuda):
each kernel family gives the same bits under raster, reversed and random
schedules and on a device with few multiprocessors (grid-stride loops doing
several rounds), the launchers honour the fake device's limits, and the
emulated_cuda API. Each op's CUDA path is also checked against the CPU by the
tests parametrised over devices ("emulated" ids); see also tests/cpp for the
emulator's own tests and the kernels under ASan."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import EMULATION

from dbnet_fast.assets import real_maps_path
from dbnet_fast.ops import _native, db_binarize, db_boxes, db_loss, db_targets_batch
from dbnet_fast.reference.samples import icdar_like, total_text_like
from dbnet_fast.testing import EmulatedDevice, emulated_cuda

pytestmark = [EMULATION, pytest.mark.emulated]

# Each family runs under these schedules on two fake devices: an H100, and one
# with two multiprocessors, whose smaller grids make the grid-stride loops
# take several rounds.
SCHEDULES = ["raster", "reversed", 12345]
DEVICES = [EmulatedDevice(), EmulatedDevice(name="two SMs", multiprocessors=2)]


def under_every_schedule(compute):
    """compute() under each schedule on each device: the same bits under every
    schedule of a device (and across devices, to rounding: sums split over
    other blocks are added in another order). Returns the first result."""
    first = None
    for device in DEVICES:
        results = []
        for schedule in SCHEDULES:
            with emulated_cuda(schedule, device):
                results.append([t.detach().clone() for t in compute()])
        for schedule, result in zip(SCHEDULES[1:], results[1:]):
            for a, b in zip(results[0], result):
                assert a.dtype == b.dtype and torch.equal(a, b), f"schedule {schedule} on {device.name}"
        if first is None:
            first = results[0]
        for a, b in zip(first, results[0]):
            torch.testing.assert_close(b, a, rtol=1e-12, atol=0, msg=f"{device.name} vs {DEVICES[0].name}")
    return first


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_binarize_is_schedule_independent(dtype):
    gen = torch.Generator().manual_seed(1)
    p, t, g = (torch.rand(3, 1, 67, 45, generator=gen).to(dtype) for _ in range(3))

    def compute():
        pp, tt = p.clone().requires_grad_(True), t.clone().requires_grad_(True)
        out = db_binarize(pp, tt)
        return (out, *torch.autograd.grad(out, (pp, tt), g))

    under_every_schedule(compute)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_passes_are_schedule_independent(dtype):
    """The pixel pass, the radix select's passes and steps, the backward: per-block
    partials reduced in a fixed order give the same bits whatever the order."""
    gen = torch.Generator().manual_seed(2)
    shape = (2, 1, 61, 67)
    xp = ((torch.rand(shape, generator=gen) * 2 - 1) * 12).to(dtype)
    xt = ((torch.rand(shape, generator=gen) * 2 - 1) * 12).to(dtype)
    labels = [(torch.rand(shape, generator=gen) < q).to(dtype) for q in (0.2, 0.9, 0.5)]
    thresh_map = (torch.rand(shape, generator=gen, dtype=torch.float64) * 0.4 + 0.3).to(dtype)
    gt, mask, tmask = labels
    xp.view(-1)[:500] = 1.25  # ties at the OHEM threshold
    gt.view(-1)[:500] = 0

    def compute():
        a, b = xp.clone().requires_grad_(True), xt.clone().requires_grad_(True)
        args = (gt, mask, thresh_map, tmask, 50.0, 5.0, 1.0, 10.0, 3.0, 1e-6)
        terms, keys, stats = torch.ops.dbnet_fast.db_loss.default(a, b, *args)
        total, _ = db_loss(a, b, gt, mask, thresh_map, tmask)
        return (terms, keys, stats, *torch.autograd.grad(total, (a, b)))

    terms = under_every_schedule(compute)[0]
    assert torch.isfinite(terms).all()


def test_targets_are_schedule_independent():
    rng = np.random.default_rng(3)
    size = (160, 240)
    batch = [icdar_like(rng, size, 12), total_text_like(rng, size, 4), [], icdar_like(rng, size, 3)]
    ignore = [None, [True, False, False, False], [], [False, True, False]]
    for distance in ("reference", "exact"):
        maps = under_every_schedule(lambda d=distance: db_targets_batch(batch, size, ignore, distance=d))
        assert maps[0].sum() > 0 and maps[3].sum() > 0


def test_post_processing_is_schedule_independent():
    """A real map, as a batch of two with the second flipped (the batch-wide ranks)."""
    data = np.load(real_maps_path())
    prob = torch.from_numpy(data["prob_synth_scene"])
    batch = torch.stack([prob, prob.flip(0)])
    _, _, counts = under_every_schedule(lambda: db_boxes(batch, box_thresh=0.5, use_dilation=True))
    assert counts.tolist()[0] == counts.tolist()[1] > 5


# --- the launchers against the fake device's limits ----------------------------------


def test_candidates_opt_in_counts_the_static_shared_memory():
    """A map whose dynamic shared memory lies within the kernel's static size of
    the 48 KB default must opt in (DESIGN: cudaFuncGetAttributes' sharedSizeBytes):
    before the kernel's first launch the emulator does not know its static size
    yet, so the map runs once cold and once with the size known."""
    gen = torch.Generator().manual_seed(4)
    prob = torch.zeros(1, 736, 1280)
    prob[0, 300:340, 200:900] = 0.9 + 0.1 * torch.rand(40, 700, generator=gen)
    want = db_boxes(prob, unclip_ratio=34.5, box_thresh=0.5)
    with emulated_cuda(device=EmulatedDevice(name="cold start")) as record:
        for _ in range(2):
            got = db_boxes(prob, unclip_ratio=34.5, box_thresh=0.5)
            launch = next(x for x in record()["launches"] if x["kernel"] == "candidates_kernel")
            assert 48 * 1024 - launch["static_shared"] < launch["dynamic_shared"] <= 48 * 1024, launch
            assert got[2].tolist() == want[2].tolist() == [1]
            torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-3)


def test_candidates_shared_memory_beyond_the_device_is_refused():
    prob = torch.zeros(1, 736, 1280)
    prob[0, 300:340, 200:900] = 1.0
    with emulated_cuda(device=EmulatedDevice(name="small shared", shared_optin=64 * 1024)):
        db_boxes(prob, unclip_ratio=60.0)  # about 60 KB: within the opt-in
        with pytest.raises(RuntimeError, match="too large for the CUDA pipeline's buffers"):
            db_boxes(prob, unclip_ratio=100.0)


def test_targets_sync_only_to_size_their_buffers():
    """Offsets are checked on the host before the upload; the launcher's only host
    syncs are the two buffer sizes (none without polygons)."""
    rng = np.random.default_rng(5)
    with emulated_cuda() as record:
        db_targets_batch([icdar_like(rng, (64, 64), 3)], (64, 64))
        done = record()
        assert (done["copies"], done["syncs"]) == (2, 2)
        db_targets_batch([[]], (64, 64))
        assert record()["syncs"] == 0


# --- the API -------------------------------------------------------------------


def test_emulated_cuda_routes_and_restores():
    p = torch.rand(10)
    with emulated_cuda("reversed") as record:
        db_binarize(p, p)
        with emulated_cuda(3) as inner:
            db_binarize(p, p)
            assert len(inner()["launches"]) == 1
        db_binarize(p, p)  # (an inner context starts the record afresh)
        assert [x["kernel"] for x in record()["launches"]] == ["forward_kernel<scalar_t, true>"]
    assert _native._C.emulated is None
    db_binarize(p, p)  # the CPU kernel again


@pytest.mark.parametrize("schedule", ["random", 1.5, True, None])
def test_bad_schedules_are_refused(schedule):
    with pytest.raises((TypeError, ValueError), match="schedule must be"), emulated_cuda(schedule):
        pass
