"""db_targets against the float64 reference on random ICDAR-like and
Total-Text-like images and on edge cases, the batch and CUDA paths, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CUDA, DEVICES, GPUS, on
from dbnet_fast.ops import DBTargets, db_targets, db_targets_batch
from dbnet_fast.reference.samples import icdar_like, total_text_like

pytest.importorskip("pyclipper")
pytest.importorskip("cv2")
from dbnet_fast.reference import db_targets_reference  # noqa: E402

MASKS = ("shrink_map", "shrink_mask", "thresh_mask")
# The masks reproduce pyclipper's offset (integer coordinates, round joins,
# Clipper's rounded intersections) and cv2.fillPoly's rasterisation; what
# differs is a few boundary pixels where Clipper rounds otherwise (about 0.01%
# of a 640 x 640 image). The issue asks for 99.5% on every image.
MASK_AGREEMENT = 0.995


def compare(polygons, size, ignore=None, device="cpu", **options):
    ours = db_targets(polygons, size, ignore, device=device, **options)
    ref = db_targets_reference(polygons, size, ignore, **options)
    thresh = ours.thresh_map.cpu().numpy()
    assert np.isfinite(thresh).all()
    close = np.abs(thresh - ref["thresh_map"]) <= 1e-3
    assert close.mean() >= 0.999, f"thresh_map: {close.mean():.5f} of pixels within 1e-3"
    for name in MASKS:
        agree = (getattr(ours, name).cpu().numpy() == ref[name]).mean()
        assert agree >= MASK_AGREEMENT, f"{name}: {agree:.5f} of pixels agree"
    return ours, ref


@pytest.mark.parametrize("distance", ["reference", "exact"])
@pytest.mark.parametrize("kind", [icdar_like, total_text_like], ids=["icdar", "totaltext"])
def test_random_images_match_the_reference(distance, kind):
    """Fixed seeds and fresh ones; dense images too. Every image meets the
    issue's 99.5%, and all together are nearly exact."""
    seeds = list(range(6)) + [int(s) for s in np.random.SeedSequence().generate_state(4)]
    agree = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        size = (int(rng.integers(560, 720)), int(rng.integers(560, 720)))
        polygons = kind(rng, size, int(rng.integers(10, 60)))
        ignore = list(rng.random(len(polygons)) < 0.1)
        ours, ref = compare(polygons, size, ignore, distance=distance)
        agree.append(min((getattr(ours, name).numpy() == ref[name]).mean() for name in MASKS))
    assert np.mean(agree) >= 0.999, f"mean agreement {np.mean(agree):.5f} (seeds {seeds})"


@pytest.mark.parametrize(
    "polygons",
    [
        [],
        [[(10, 10), (10, 10), (60, 10), (60, 40), (10, 40)]],            # repeated point
        [[(10, 10), (35, 10), (60, 10), (60, 40), (10, 40)]],            # collinear points
        [[(10, 10), (60, 10), (35, 30), (60, 50), (10, 50), (35, 30)]],  # self-touching
        [[(10, 10), (60, 50), (60, 10), (10, 50)]],                      # self-intersecting
        [[(20, 20), (21, 20), (21, 21), (20, 21)]],                      # a 1-px box
        [[(500, 500), (600, 500), (600, 560), (500, 560)]],              # entirely outside
        [[(-50, -50), (300, -50), (300, 300), (-50, 300)]],              # covers the image
        [[(30, 30), (40, 30)], [(5, 5)]],                                # fewer than 3 points
        [[(70, 10), (140, 30), (95, 45), (130, 70), (60, 60)]],          # clipped: folds on the border
        [[(10, 10), (90, 10), (90, 70), (70, 70), (70, 30), (30, 30), (30, 70), (10, 70)]],  # U
        [[(0, 0), (99, 79), (0, 79), (99, 0)], [(40, 20), (60, 20), (60, 60), (40, 60)]],  # overlaps
    ],
    ids=["empty", "repeated", "collinear", "self-touching", "bow-tie", "1px", "outside",
         "covering", "degenerate", "border-fold", "U", "crossing"],
)
@pytest.mark.parametrize("distance", ["reference", "exact"])
def test_edge_cases(polygons, distance):
    compare([np.array(p, dtype=np.float32) for p in polygons], (80, 100), distance=distance)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (4000, 4000)])
def test_canvas_sizes(size):
    rng = np.random.default_rng(1)
    maps, _ = compare(icdar_like(rng, size, 5) if size[0] > 100 else [[(0, 0), (1, 0), (1, 1)]],
                      size)
    assert maps.thresh_map.shape == size


@pytest.mark.parametrize("device", DEVICES)
def test_batch_equals_single_images(device):
    rng = np.random.default_rng(2)
    size = (160, 240)
    batch = [icdar_like(rng, size, 12), total_text_like(rng, size, 4), [], icdar_like(rng, size, 3)]
    ignore = [None, [True, False, False, False], [], [False, True, False]]
    maps = db_targets_batch(batch, size, ignore, device=device)
    assert isinstance(maps, DBTargets)
    assert all(m.shape == (4, *size) and m.device.type == device for m in maps)
    for b, polygons in enumerate(batch):
        single = db_targets(polygons, size, ignore[b])
        for name in DBTargets._fields:
            got = getattr(maps, name)[b].cpu()
            torch.testing.assert_close(got, getattr(single, name), atol=1e-5, rtol=0)


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(3)
    batch = [icdar_like(rng, (200, 200), 10) for _ in range(4)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = db_targets_batch(batch, (200, 200))
        torch.set_num_threads(max(2, before))
        many = db_targets_batch(batch, (200, 200))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, many):
        assert torch.equal(a, b)


def test_options_are_honoured():
    rect = [np.array([(50, 50), (150, 50), (150, 90), (50, 90)], np.float32)]
    compare(rect, (140, 200), shrink_ratio=0.6, thresh_min=0.1, thresh_max=0.9, min_text_size=3)
    maps = db_targets(rect, (140, 200), min_text_size=41)  # 40 px high: now too small
    assert maps.shrink_map.sum() == 0 and maps.shrink_mask[70, 100] == 0


def test_fuzz_native_core_never_crashes():
    """Random garbage polygons (huge, tiny, folded, duplicated) through the C++ core:
    finite maps in range, and the same on repeat."""
    rng = np.random.default_rng(np.random.SeedSequence().entropy)
    for _ in range(300):
        size = (int(rng.integers(1, 60)), int(rng.integers(1, 60)))
        polygons = []
        for _ in range(int(rng.integers(0, 6))):
            n = int(rng.integers(1, 12))
            scale = 10.0 ** rng.uniform(-1, 6)
            points = rng.normal(0, scale, (n, 2)) + rng.uniform(0, 60, 2)
            if rng.random() < 0.2:
                points[rng.integers(0, n)] = points[0]
            polygons.append(np.clip(points, -9e6, 9e6).astype(np.float32))
        ignore = list(rng.random(len(polygons)) < 0.2)
        maps = db_targets(polygons, size, ignore, distance=str(rng.choice(["reference", "exact"])))
        for value in maps:
            assert torch.isfinite(value).all() and value.min() >= 0 and value.max() <= 1


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("distance", ["reference", "exact"])
def test_cuda_equals_cpu(gpu, distance):
    rng = np.random.default_rng(4)
    size = (320, 480)
    batch = [icdar_like(rng, size) for _ in range(3)] + [total_text_like(rng, size) for _ in range(3)]
    cpu = db_targets_batch(batch, size, distance=distance)
    with on(gpu):
        device = db_targets_batch(batch, size, distance=distance, device=gpu)
    for a, b in zip(cpu, device):
        assert (a - b.cpu()).abs().max() <= 1e-5


# --- bad input -----------------------------------------------------------------


def test_bad_input_is_named():
    good = np.array([(0, 0), (10, 0), (10, 10)], np.float32)
    with pytest.raises(ValueError, match="polygon 1 has a NaN or infinite coordinate"):
        db_targets([good, np.array([(0, 0), (np.nan, 1), (2, 2)])], (10, 10))
    with pytest.raises(ValueError, match=r"polygon 0 must have shape \(N, 2\)"):
        db_targets([np.zeros((4, 3))], (10, 10))
    with pytest.raises(ValueError, match="polygon 0 has no points"):
        db_targets([np.zeros((0, 2))], (10, 10))
    with pytest.raises(ValueError, match="one flag per polygon"):
        db_targets([good], (10, 10), [True, False])
    with pytest.raises(ValueError, match="size must be positive"):
        db_targets([good], (0, 10))
    with pytest.raises(TypeError, match="size must be"):
        db_targets([good], 10)
    with pytest.raises(ValueError, match="distance must be one of"):
        db_targets([good], (10, 10), distance="manhattan")
    with pytest.raises(ValueError, match="shrink_ratio must be in"):
        db_targets([good], (10, 10), shrink_ratio=1.0)
    with pytest.raises(ValueError, match="beyond 1e7"):
        db_targets([good * 1e8], (10, 10))


def test_native_entry_point_checks_offsets():
    from dbnet_fast.ops._native import _C

    points = torch.zeros(4, 2)
    ignore = torch.zeros(1, dtype=torch.bool)
    images = torch.tensor([0, 1])
    with pytest.raises(RuntimeError, match="must start at 0 and end at 4"):
        _C.targets(points, torch.tensor([0, 5]), images, ignore, 8, 8, 0.4, 0.3, 0.7, 8.0, False)
    with pytest.raises(RuntimeError, match="must not decrease"):
        _C.targets(points, torch.tensor([0, 3, 2, 4]), torch.tensor([0, 3]),
                   torch.zeros(3, dtype=torch.bool), 8, 8, 0.4, 0.3, 0.7, 8.0, False)


@CUDA
@pytest.mark.cuda
def test_cuda_entry_point_checks_the_offsets_on_the_host():
    """The CUDA path takes the offsets and flags as CPU tensors: checked where
    they are, then uploaded (never read back from the device)."""
    from dbnet_fast.ops._native import _C

    points = torch.zeros(4, 2, device="cuda")
    ignore = torch.zeros(1, dtype=torch.bool)
    with pytest.raises(RuntimeError, match="must be CPU tensors"):
        _C.targets(points, torch.tensor([0, 4], device="cuda"), torch.tensor([0, 1]), ignore, 8, 8, 0.4, 0.3,
                   0.7, 8.0, False)
    maps = _C.targets(points, torch.tensor([0, 4]), torch.tensor([0, 1]), ignore, 8, 8, 0.4, 0.3, 0.7, 8.0, False)
    assert maps.is_cuda and maps.shape == (4, 1, 8, 8)


def test_target_builder_in_dataloader_workers():
    import pickle

    from dbnet_fast.data import DBTargetBuilder

    builder = DBTargetBuilder(distance="exact")
    assert pickle.loads(pickle.dumps(builder)) == builder
    threads = torch.get_num_threads()
    builder([np.array([(0, 0), (20, 0), (20, 20)])], (32, 32))
    assert torch.get_num_threads() == threads  # the main process keeps its threads

    class Samples(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            rng = np.random.default_rng(index)
            polygons = icdar_like(rng, (96, 128), 6)
            maps = builder(polygons, (96, 128))._asdict()
            maps["threads"] = torch.get_num_threads()
            return maps

    loader = torch.utils.data.DataLoader(Samples(), batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["thresh_map"].shape == (2, 96, 128)
    assert batches[0]["threads"].tolist() == [1, 1]
    want = db_targets(icdar_like(np.random.default_rng(3), (96, 128), 6), (96, 128),
                      distance="exact")
    torch.testing.assert_close(batches[1]["shrink_map"][1], want.shrink_map)
    with pytest.raises(ValueError, match="distance must be one of"):
        DBTargetBuilder(distance="nearest")
