"""The CUDA quad pipeline (csrc/cuda/postprocess.cu) against the CPU pipeline,
on a GPU and on the host emulation of its kernels ("emulated" ids; without a
GPU these are the ones that run), under several schedules: on the real
PP-OCRv4 maps of dbnet_fast/assets and on random maps. The labelling kernels
are checked against a flood fill, and the whole pipeline under ASan, by the
native tests (tests/cpp/test_kernels.cpp).

The CUDA candidates are the 8-connected components: RETR_LIST's outer
borders, without the borders of holes. On maps where no hole border yields a
box the two pipelines give the same boxes; elsewhere the CUDA boxes are the
CPU pipeline's boxes from outer borders only (`outer_border_boxes`)."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from conftest import CUDA, EMULATION, GPUS, on
from dbnet_fast.ops import box_scores, db_boxes, find_contours, min_area_boxes, unclip
from dbnet_fast.assets import real_maps_path
from dbnet_fast.postprocess import DBPostProcessor
from dbnet_fast.reference.samples import probability_map
from dbnet_fast.testing import emulated_cuda

PADDLE = dict(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)
RAPID = dict(thresh=0.3, box_thresh=0.5, unclip_ratio=1.6, use_dilation=True)
EVERYTHING = dict(thresh=0.3, box_thresh=0.0, unclip_ratio=1.5, min_size=0.0)  # no filter but unclip's
SETTINGS = {"paddle": PADDLE, "rapid": RAPID, "everything": EVERYTHING}
SCHEDULES = ["reversed", 12345]  # of the emulation (a GPU has its own)


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


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("settings", list(SETTINGS))
def test_real_maps_give_the_cpu_boxes(gpu, settings):
    """In the same order, boxes within 1e-3 px of the CPU's (bit for bit in the
    emulation; a GPU's trigonometry may differ by an ulp), scores within 1e-6:
    no hole border gives a box on these maps."""
    for name, prob in real_maps().items():
        expected = db_boxes(prob[None], **SETTINGS[settings])
        for schedule in SCHEDULES:
            with on(gpu, schedule):
                got = db_boxes(prob[None].to(gpu), **SETTINGS[settings])
            where = f"{name}, schedule {schedule}"
            assert all(t.device.type == "cpu" for t in got)
            assert torch.equal(got[2], expected[2]), f"{where}: counts {got[2]} vs {expected[2]}"
            torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-3, msg=where)
            torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6, msg=where)
            if gpu != "cuda":
                assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1]), where


@pytest.mark.parametrize("gpu", GPUS)
def test_real_maps_batch_with_destination_sizes(gpu):
    maps = real_maps()
    height = max(p.shape[0] for p in maps.values())
    width = max(p.shape[1] for p in maps.values())
    batch = torch.zeros(len(maps), height, width)
    for i, prob in enumerate(maps.values()):
        batch[i, : prob.shape[0], : prob.shape[1]] = prob
    dest = torch.tensor([[1080, 1920], [height, width], [37, 2000], [0, 5]])
    expected = db_boxes(batch, dest, **PADDLE)
    with on(gpu, 3):
        got = db_boxes(batch.to(gpu), dest, **PADDLE)
    assert torch.equal(got[2], expected[2])
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-3)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("gpu", GPUS)
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_random_maps_give_the_outer_border_boxes(gpu, layout, seed):
    """Random DB-like maps, some words with holes (dense: words merge into
    large blobs; sparse: separate words and many specks of noise): the CPU
    pipeline's boxes from outer borders only; and exactly the CPU's boxes when
    no hole border yields one (emulated: bit for bit, under a schedule per seed)."""
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
    with on(gpu, ["raster", "reversed"][seed] if seed < 2 else seed):
        got = db_boxes(prob[None].to(gpu), **settings)
    exact = gpu != "cuda"
    assert got[2].tolist() == [len(boxes)], f"seed {seed}"
    torch.testing.assert_close(got[0], boxes, rtol=0, atol=0 if exact else 1e-3)
    torch.testing.assert_close(got[1], scores, rtol=0, atol=0 if exact else 1e-6)
    if from_holes == 0 and settings["max_candidates"] == 1000:
        expected = db_boxes(prob[None], **settings)
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0 if exact else 1e-3)


@pytest.mark.parametrize("gpu", GPUS)
def test_hole_borders_are_not_candidates(gpu):
    # A ring: RETR_LIST lists its outer border and its hole's border, and the
    # hole's box scores high enough to be kept on the CPU.
    prob = torch.zeros(60, 80)
    prob[10:50, 10:70] = 1.0
    prob[20:40, 20:60] = 0.0
    cpu = db_boxes(prob[None], box_thresh=0.05)
    with on(gpu):
        got = db_boxes(prob[None].to(gpu), box_thresh=0.05)
    assert cpu[2].tolist() == [2] and got[2].tolist() == [1]
    assert torch.equal(got[0][0], cpu[0][1])  # the outer border's box (listed last: found first)


@pytest.mark.parametrize("gpu", GPUS)
def test_non_finite_maps_are_refused(gpu):
    prob = torch.rand(2, 30, 30)
    prob[1, 3, 3] = float("nan")
    prob[1, 4, 5] = float("inf")
    for max_candidates in (1000, 0):
        with pytest.raises(ValueError, match="image 1"):
            db_boxes(prob, max_candidates=max_candidates)
        with on(gpu), pytest.raises(ValueError, match="image 1"):
            db_boxes(prob.to(gpu), max_candidates=max_candidates)


@pytest.mark.parametrize("gpu", GPUS)
def test_edge_cases(gpu):
    board = torch.from_numpy((np.indices((200, 200)).sum(0) % 2).astype(np.float32))
    with on(gpu):
        assert db_boxes(torch.zeros(0, 8, 8).to(gpu))[2].shape == (0,)
        assert db_boxes(torch.zeros(2, 0, 8).to(gpu))[2].tolist() == [0, 0]
        assert db_boxes(torch.ones(1, 8, 8).to(gpu), max_candidates=0)[2].tolist() == [0]
        full = db_boxes(torch.ones(1, 40, 60).to(gpu), box_thresh=0.5)
        assert full[2].tolist() == [1] and float(full[1][0]) == 1.0
        for max_candidates in (10, 1000, 30000):  # a checkerboard is one 8-connected component
            got = db_boxes(board[None].to(gpu), max_candidates=max_candidates, min_size=0.0, box_thresh=0.0)
            assert got[2].tolist() == [1]
        solid = torch.ones(2, 960, 960).to(gpu)  # one huge component per image
        assert db_boxes(solid)[2].tolist() == [1, 1]
        with pytest.raises(NotImplementedError, match="slow"):
            db_boxes(torch.rand(2, 30, 30).to(gpu), score_mode="slow")


@pytest.mark.parametrize("gpu", GPUS)
def test_postprocessor_keeps_maps_on_the_device(gpu):
    maps = real_maps()
    prob = next(iter(maps.values()))
    cpu = DBPostProcessor(**PADDLE)(prob[None, None], [(1000, 2000)])
    with on(gpu):
        device = DBPostProcessor(**PADDLE)(prob[None, None].to(gpu), [(1000, 2000)])
    assert device[0].boxes.device.type == "cpu"
    torch.testing.assert_close(device[0].boxes, cpu[0].boxes, rtol=0, atol=1e-2)
    torch.testing.assert_close(device[0].scores, cpu[0].scores, rtol=0, atol=1e-6)


@CUDA
@EMULATION
@pytest.mark.cuda
def test_cuda_batch_equals_emulation():
    """The device against its host emulation on the same inputs."""
    rng = np.random.default_rng(2)
    probs = torch.from_numpy(np.stack([probability_map(rng, (192, 256)) for _ in range(6)]))
    dest = torch.tensor([[384, 512], [192, 256], [50, 50], [193, 257], [999, 7], [1, 1]])
    for settings in SETTINGS.values():
        with emulated_cuda():
            expected = db_boxes(probs, dest, **settings)
        got = db_boxes(probs.cuda(), dest, **settings)
        assert torch.equal(got[2], expected[2])
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-3)
        torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6)
