"""The CUDA quad pipeline (csrc/cuda/postprocess.cu) checked without a GPU:
its kernels run on the CPU one thread after another, in raster, reversed and
shuffled order (csrc/cpu/postprocess_emulate.cpp calls the same host-device
steps), against the CPU pipeline on the real PP-OCRv4 maps (dbnet_fast/assets)
and on random maps; its labelling against cv2.connectedComponents; its
row-wise box scores against box_scores. Then db_boxes on CUDA maps against
the CPU (skipped without a GPU).

The CUDA candidates are the 8-connected components: RETR_LIST's outer
borders, without the borders of holes. On maps where no hole border yields a
box the two pipelines give the same boxes; elsewhere the CUDA boxes are the
CPU pipeline's boxes from outer borders only (`outer_border_boxes`)."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from conftest import CUDA
from dbnet_fast.ops import box_scores, db_boxes, find_contours, min_area_boxes, unclip
from dbnet_fast.assets import real_maps_path
from dbnet_fast.ops.postprocess import (
    _emulated_cuda_boxes,
    _emulated_cuda_labels,
    _row_wise_box_scores,
)
from dbnet_fast.postprocess import DBPostProcessor
from dbnet_fast.reference.samples import probability_map

PADDLE = dict(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)
RAPID = dict(thresh=0.3, box_thresh=0.5, unclip_ratio=1.6, use_dilation=True)
EVERYTHING = dict(thresh=0.3, box_thresh=0.0, unclip_ratio=1.5, min_size=0.0)  # no filter but unclip's
SETTINGS = {"paddle": PADDLE, "rapid": RAPID, "everything": EVERYTHING}
ORDERS = [0, 1, 12345]  # thread orders: raster, reversed, shuffled


def real_maps():
    data = np.load(real_maps_path())
    return {str(n): torch.from_numpy(data[f"prob_{n}"]) for n in data["names"]}


def outer_border_boxes(prob: torch.Tensor, *, thresh=0.3, box_thresh=0.7, unclip_ratio=1.5,
                       max_candidates=1000, use_dilation=False, min_size=3.0):
    """The CPU pipeline of one map (H, W) from its steps, with the hole borders
    of RETR_LIST left out of the candidates (and of max_candidates' count):
    boxes (N, 4, 2) as db_boxes gives them for destination size = map size,
    scores (N,), and how many hole borders would have given a box."""
    bitmap = (prob > np.float32(thresh)).numpy().astype(np.uint8)
    if use_dilation:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    points, offsets = find_contours(torch.from_numpy(bitmap))
    boxes, scores, from_holes, outer = [], [], 0, 0
    for k in range(offsets.numel() - 1):
        contour = points[offsets[k]:offsets[k + 1]]
        x, y = contour[:, 0].double(), contour[:, 1].double()
        hole = float((x * y.roll(-1) - x.roll(-1) * y).sum()) > 0  # holes turn the other way
        if not hole:
            outer += 1
            if outer > max_candidates:
                break
        quad, side = min_area_boxes(contour.long(), torch.tensor([0, len(contour)]))
        if float(side[0]) < min_size:
            continue
        score = float(box_scores(prob, quad)[0])
        if box_thresh > score:
            continue
        grown, grown_offsets = unclip(quad, unclip_ratio)
        if grown.shape[0] == 0:
            continue
        box, side = min_area_boxes(grown, grown_offsets)
        if float(side[0]) < min_size + 2:
            continue
        if hole:
            from_holes += 1
            continue
        boxes.append(box[0])
        scores.append(score)
    if not boxes:
        return torch.zeros(0, 4, 2), torch.zeros(0), from_holes
    boxes = torch.stack(boxes)
    height, width = prob.shape  # to destination pixels (here the map's), as db_boxes
    boxes[..., 0] = (boxes[..., 0] / float(width) * float(width)).clamp(0, width)
    boxes[..., 1] = (boxes[..., 1] / float(height) * float(height)).clamp(0, height)
    return boxes, torch.tensor(scores, dtype=torch.float32), from_holes


@pytest.mark.parametrize("settings", list(SETTINGS))
def test_real_maps_give_the_cpu_boxes(settings):
    """Bit for bit, in the same order: no hole border gives a box on these maps."""
    for name, prob in real_maps().items():
        expected = db_boxes(prob[None], **SETTINGS[settings])
        for order in ORDERS:
            got = _emulated_cuda_boxes(prob[None], seed=order, **SETTINGS[settings])
            where = f"{name}, order {order}"
            assert torch.equal(got[2], expected[2]), f"{where}: counts {got[2]} vs {expected[2]}"
            assert torch.equal(got[0], expected[0]), f"{where}: boxes differ"
            assert torch.equal(got[1], expected[1]), f"{where}: scores differ"


def test_real_maps_batch_with_destination_sizes():
    maps = real_maps()
    height = max(p.shape[0] for p in maps.values())
    width = max(p.shape[1] for p in maps.values())
    batch = torch.zeros(len(maps), height, width)
    for i, prob in enumerate(maps.values()):
        batch[i, : prob.shape[0], : prob.shape[1]] = prob
    dest = torch.tensor([[1080, 1920], [height, width], [37, 2000], [0, 5]])
    expected = db_boxes(batch, dest, **PADDLE)
    got = _emulated_cuda_boxes(batch, dest, seed=3, **PADDLE)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_random_maps_give_the_outer_border_boxes(layout, seed):
    """Random DB-like maps, some words with holes (dense: words merge into
    large blobs; sparse: separate words and many specks of noise): the CPU
    pipeline's boxes from outer borders only, bit for bit; and exactly the
    CPU's boxes when no hole border yields one."""
    rng = np.random.default_rng(seed)
    if layout == "dense":
        size, count, thresh = rng.integers(48, 320, 2), int(rng.integers(1, 40)), rng.uniform(0.2, 0.5)
    else:
        size, count, thresh = rng.integers(160, 480, 2), int(rng.integers(2, 25)), rng.uniform(0.3, 0.6)
    prob = torch.from_numpy(probability_map(rng, tuple(int(v) for v in size), count=count))
    settings = dict(thresh=float(thresh), box_thresh=float(rng.uniform(0.0, 0.7)),
                    unclip_ratio=float(rng.uniform(1.2, 2.5)), use_dilation=bool(seed % 2),
                    max_candidates=int(rng.integers(3, 60)) if seed % 4 == 0 else 1000,
                    min_size=float(rng.choice([0.0, 3.0, 5.0])))
    boxes, scores, from_holes = outer_border_boxes(prob, **settings)
    got = _emulated_cuda_boxes(prob[None], seed=seed, **settings)
    assert torch.equal(got[0], boxes) and torch.equal(got[1], scores), f"seed {seed}"
    if from_holes == 0 and settings["max_candidates"] == 1000:
        expected = db_boxes(prob[None], **settings)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_hole_borders_are_not_candidates():
    # A ring: RETR_LIST lists its outer border and its hole's border, and the
    # hole's box scores high enough to be kept on the CPU.
    prob = torch.zeros(60, 80)
    prob[10:50, 10:70] = 1.0
    prob[20:40, 20:60] = 0.0
    cpu = db_boxes(prob[None], box_thresh=0.05)
    got = _emulated_cuda_boxes(prob[None], box_thresh=0.05)
    assert cpu[2].tolist() == [2] and got[2].tolist() == [1]
    assert torch.equal(got[0][0], cpu[0][1])  # the outer border's box (listed last: found first)


def test_labelling_matches_opencv():
    rng = np.random.default_rng(4)
    shapes = [(1, 1), (1, 70), (70, 1), (33, 31), (64, 64), (97, 130), (200, 45)]
    for h, w in shapes:
        for density in (0.1, 0.45, 0.6, 0.9, 1.0):
            mask = (rng.random((h, w)) < density).astype(np.uint8)
            count, expected = cv2.connectedComponents(mask, connectivity=8)
            for order in ORDERS:
                labels = _emulated_cuda_labels(torch.from_numpy(mask), order).numpy()
                assert ((labels >= 0) == (mask > 0)).all()
                # one label per component, and it is the component's first pixel
                pairs = {(int(a), int(b)) for a, b in zip(labels[mask > 0], expected[mask > 0])}
                assert len(pairs) == count - 1 == len({a for a, _ in pairs}) == len({b for _, b in pairs})
                flat = np.flatnonzero(mask.ravel())
                first = {}
                for index in flat:
                    first.setdefault(int(expected.ravel()[index]), int(index))
                assert all(first[b] == a for a, b in pairs), (h, w, density, order)


def test_row_wise_scores_equal_box_scores():
    """Integer-valued maps make the sums exact: equal means are the same pixels."""
    gen = torch.Generator().manual_seed(8)
    prob = torch.randint(0, 1000, (57, 83), generator=gen).float()
    boxes = torch.rand(3000, 4, 2, generator=gen) * torch.tensor([120.0, 90.0]) - 20
    boxes[:500] = boxes[:500, :1] + torch.rand(500, 4, 2, generator=gen) * 4  # tiny boxes
    ordered, _ = min_area_boxes(boxes.round().long().reshape(-1, 2),
                                torch.arange(0, 4 * len(boxes) + 1, 4))  # rotated rectangles
    for quads in (boxes, ordered):
        assert torch.equal(_row_wise_box_scores(prob, quads), box_scores(prob, quads))
    real = next(iter(real_maps().values()))
    quads = torch.rand(500, 4, 2, generator=gen) * torch.tensor(real.shape[::-1]).float()
    # box_scores adds long runs four floats at a time in float32 (relative
    # error below 2^-23), the row-wise sums every pixel in float64
    torch.testing.assert_close(_row_wise_box_scores(real, quads), box_scores(real, quads),
                               rtol=2e-7, atol=0)


def test_emulation_refuses_non_finite_maps():
    prob = torch.rand(2, 30, 30)
    prob[1, 3, 3] = float("nan")
    for max_candidates in (1000, 0):
        with pytest.raises(ValueError, match="image 1"):
            _emulated_cuda_boxes(prob, max_candidates=max_candidates)
        with pytest.raises(ValueError, match="image 1"):
            db_boxes(prob, max_candidates=max_candidates)


# --- on a GPU ------------------------------------------------------------------


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("settings", list(SETTINGS))
def test_cuda_real_maps_equal_cpu(settings):
    maps = real_maps()
    for name, prob in maps.items():
        expected = db_boxes(prob[None], **SETTINGS[settings])
        got = db_boxes(prob[None].cuda(), **SETTINGS[settings])
        assert all(t.device.type == "cpu" for t in got)
        assert torch.equal(got[2], expected[2]), name
        # geometry: bit for bit up to the device's trigonometry (1-2 ulp)
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-3, msg=name)
        torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6, msg=name)


@CUDA
@pytest.mark.cuda
def test_cuda_batch_equals_emulation():
    rng = np.random.default_rng(2)
    probs = torch.from_numpy(np.stack([probability_map(rng, (192, 256)) for _ in range(6)]))
    dest = torch.tensor([[384, 512], [192, 256], [50, 50], [193, 257], [999, 7], [1, 1]])
    for settings in SETTINGS.values():
        expected = _emulated_cuda_boxes(probs, dest, **settings)
        got = db_boxes(probs.cuda(), dest, **settings)
        assert torch.equal(got[2], expected[2])
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-3)
        torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6)


@CUDA
@pytest.mark.cuda
def test_cuda_edge_cases():
    assert db_boxes(torch.zeros(0, 8, 8, device="cuda"))[2].shape == (0,)
    assert db_boxes(torch.zeros(2, 0, 8, device="cuda"))[2].tolist() == [0, 0]
    assert db_boxes(torch.ones(1, 8, 8, device="cuda"), max_candidates=0)[2].tolist() == [0]
    full = db_boxes(torch.ones(1, 40, 60, device="cuda"), box_thresh=0.5)
    assert full[2].tolist() == [1] and float(full[1][0]) == 1.0
    board = torch.from_numpy((np.indices((200, 200)).sum(0) % 2).astype(np.float32))
    for max_candidates in (10, 1000, 30000):
        settings = dict(max_candidates=max_candidates, min_size=0.0, box_thresh=0.0)
        got = db_boxes(board[None].cuda(), **settings)
        expected = _emulated_cuda_boxes(board[None], **settings)
        assert torch.equal(got[2], expected[2])
    solid = torch.ones(2, 960, 960, device="cuda")  # one huge component per image
    assert db_boxes(solid)[2].tolist() == [1, 1]
    prob = torch.rand(2, 30, 30, device="cuda")
    prob[1, 4, 5] = float("inf")
    with pytest.raises(ValueError, match="image 1"):
        db_boxes(prob)
    with pytest.raises(ValueError, match="image 1"):
        db_boxes(prob, max_candidates=0)
    with pytest.raises(NotImplementedError, match="slow"):
        db_boxes(prob, score_mode="slow")


@CUDA
@pytest.mark.cuda
def test_cuda_postprocessor_keeps_maps_on_the_device():
    maps = real_maps()
    prob = next(iter(maps.values()))
    cpu = DBPostProcessor(**PADDLE)(prob[None, None], [(1000, 2000)])
    cuda = DBPostProcessor(**PADDLE)(prob[None, None].cuda(), [(1000, 2000)])
    assert cuda[0].boxes.device.type == "cpu"
    torch.testing.assert_close(cuda[0].boxes, cpu[0].boxes, rtol=0, atol=1e-2)
    torch.testing.assert_close(cuda[0].scores, cpu[0].scores, rtol=0, atol=1e-6)
