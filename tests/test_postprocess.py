"""Post-processing against its oracles: PaddleOCR's own DBPostProcess (from
rapidocr-onnxruntime) on real PP-OCRv4 maps and random maps, OpenCV and
pyclipper for each step, and the polygon reference for output="poly"."""

from __future__ import annotations


import cv2
import numpy as np
import pyclipper
import pytest
import torch
from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess
from shapely.geometry import Polygon

from dbnet_fast.assets import real_maps_path
from dbnet_fast.ops import (
    box_scores,
    contour_scores,
    db_boxes,
    find_contours,
    map_contours,
    min_area_boxes,
    polygon_masks,
    unclip,
)
from dbnet_fast.postprocess import DBPostProcessor
from dbnet_fast.reference.postprocess import polygons_from_map_reference
from dbnet_fast.reference.samples import probability_map

PADDLE = dict(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5)          # PaddleOCR inference settings
RAPID = dict(thresh=0.3, box_thresh=0.5, unclip_ratio=1.6, use_dilation=True)  # RapidOCR's


def paddle_boxes(prob: np.ndarray, dest, **settings):
    boxes, scores = DBPostProcess(**settings)(prob[None, None], dest)
    return np.asarray(boxes, np.float64).reshape(-1, 4, 2), np.asarray(scores, np.float64)


def assert_same_boxes(ours, ours_scores, ref, ref_scores, where=""):
    """Same count; each reference box has one of ours with every vertex within
    1 px (PaddleOCR rounds to integers, we do not) and the score within 1e-3.
    The first corner may differ where two corners tie for leftmost (a box at
    45 degrees): the order then rests on the last bit of float32 arithmetic."""
    ours = np.asarray(ours, np.float64).reshape(-1, 4, 2)
    assert len(ours) == len(ref), f"{where}: {len(ours)} boxes, reference {len(ref)}"
    unused = set(range(len(ours)))
    for box, score in zip(ref, ref_scores):
        gaps = {j: min(np.abs(np.roll(ours[j], r, axis=0) - box).max() for r in range(4)) for j in unused}
        j = min(gaps, key=gaps.get) if gaps else None
        assert j is not None and gaps[j] <= 1.0, f"{where}: no box within 1 px of {box.tolist()}"
        assert abs(float(ours_scores[j]) - score) <= 1e-3, f"{where}: score {ours_scores[j]} vs {score}"
        unused.remove(j)


def real_maps():
    data = np.load(real_maps_path())
    return data, [str(n) for n in data["names"]]


def test_real_maps_equal_paddleocr_recorded_boxes():
    data, names = real_maps()
    for suffix, settings in (("", PADDLE), ("rapidcfg_", RAPID)):
        post = DBPostProcessor(**settings)
        for name in names:
            prob = data[f"prob_{name}"]
            det = post(torch.from_numpy(prob)[None])[0]
            assert_same_boxes(det.boxes.numpy(), det.scores.numpy(), data[f"boxes_{suffix}{name}"],
                              data[f"scores_{suffix}{name}"], f"{suffix}{name}")


@pytest.mark.parametrize("score_mode", ["fast", "slow"])
@pytest.mark.parametrize("settings", [PADDLE, RAPID], ids=["paddle", "rapid"])
def test_real_maps_equal_paddleocr_live(settings, score_mode):
    data, names = real_maps()
    post = DBPostProcessor(**settings, score_mode=score_mode)
    probs = [data[f"prob_{name}"] for name in names]
    for name, prob in zip(names, probs):
        # original size differs from the map: boxes are scaled as PaddleOCR scales them
        dest = tuple(int(v) for v in data[f"orig_shape_{name}"])
        det = post(torch.from_numpy(prob)[None], [dest])[0]
        ref, ref_scores = paddle_boxes(prob, dest, **settings, score_mode=score_mode)
        assert_same_boxes(det.boxes.numpy(), det.scores.numpy(), ref, ref_scores, name)


@pytest.mark.parametrize("seed", range(12))
def test_random_maps_equal_paddleocr(seed):
    rng = np.random.default_rng(seed)
    size = tuple(int(v) for v in rng.integers(64, 400, 2))
    prob = probability_map(rng, size, count=int(rng.integers(1, 40)))
    settings = dict(thresh=float(rng.uniform(0.2, 0.5)), box_thresh=float(rng.uniform(0.3, 0.7)),
                    unclip_ratio=float(rng.uniform(1.2, 2.2)), use_dilation=bool(seed % 2),
                    score_mode=("fast", "slow")[seed % 3 == 0],
                    max_candidates=int(rng.integers(3, 1000)))
    dest = (int(rng.integers(50, 900)), int(rng.integers(50, 900)))
    det = DBPostProcessor(**settings)(torch.from_numpy(prob)[None], [dest])[0]
    ref, ref_scores = paddle_boxes(prob, dest, **settings)
    assert_same_boxes(det.boxes.numpy(), det.scores.numpy(), ref, ref_scores, f"seed {seed}")


def test_batch_equals_single_images_and_threads():
    rng = np.random.default_rng(5)
    probs = np.stack([probability_map(rng, (160, 224)) for _ in range(5)])
    sizes = torch.tensor([[320, 448], [160, 224], [100, 100], [161, 225], [999, 7]])
    batch = db_boxes(torch.from_numpy(probs), sizes)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = [db_boxes(torch.from_numpy(p)[None], s[None]) for p, s in zip(probs, sizes)]
    finally:
        torch.set_num_threads(before)
    assert batch[2].tolist() == [int(s[2]) for s in single]
    assert torch.equal(batch[0], torch.cat([s[0] for s in single]))
    assert torch.equal(batch[1], torch.cat([s[1] for s in single]))


def test_layouts_dtypes_and_sizes():
    prob = torch.from_numpy(probability_map(np.random.default_rng(7), (96, 128)))
    post = DBPostProcessor(box_thresh=0.4)
    reference = post(prob[None])[0]
    for variant in (prob[None, None], prob.half()[None], prob.double()[None], prob.t().contiguous().t()[None]):
        det = post(variant)[0]
        assert len(det) == len(reference)
    # default destination size = map size; boxes stay inside it
    assert len(reference) > 0
    assert float(reference.boxes[..., 0].max()) <= 128 and float(reference.boxes[..., 1].max()) <= 96


# ---- the steps alone, against OpenCV and pyclipper -------------------------------------

@pytest.mark.parametrize("simple", [True, False])
def test_find_contours_equals_opencv(simple):
    rng = np.random.default_rng(11)
    mode = cv2.CHAIN_APPROX_SIMPLE if simple else cv2.CHAIN_APPROX_NONE
    for trial in range(300):
        h, w = (int(v) for v in rng.integers(1, 48 if trial % 3 else 150, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if trial % 3 == 1:
            mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        if trial % 3 == 2:  # wide bars (long straight borders, traced in runs) with notches and holes
            mask[:] = 0
            for _ in range(int(rng.integers(1, 6))):
                y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
                mask[y:y + int(rng.integers(1, 12)), x:x + int(rng.integers(1, w + 1))] = 1
            mask[rng.random((h, w)) < 0.02] = 0
        expected, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, mode)
        points, offsets = find_contours(torch.from_numpy(mask), simple)
        ours = [points[offsets[k]:offsets[k + 1]].numpy() for k in range(offsets.numel() - 1)]
        assert len(ours) == len(expected)
        for a, b in zip(ours, expected):
            np.testing.assert_array_equal(a, b.reshape(-1, 2))


def test_map_contours_equal_contours_of_the_thresholded_map():
    rng = np.random.default_rng(19)
    for trial in range(60):
        size = (int(rng.integers(1, 120)), int(rng.integers(1, 120)))
        prob = probability_map(rng, size, count=int(rng.integers(0, 12))) if min(size) > 8 \
            else rng.random(size, dtype=np.float32)
        thresh = float(rng.uniform(0.1, 0.9))
        bitmap = (prob > np.float32(thresh)).astype(np.uint8)
        for dilate in (False, True):
            mask = cv2.dilate(bitmap, np.ones((2, 2), np.uint8)) if dilate else bitmap
            expected_points, expected_offsets = find_contours(torch.from_numpy(mask))
            points, offsets = map_contours(torch.from_numpy(prob), thresh, dilate)
            assert torch.equal(points, expected_points) and torch.equal(offsets, expected_offsets)
    broken = torch.rand(20, 20)
    broken[3, 4] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        map_contours(broken)


def test_min_area_boxes_equal_opencv():
    rng = np.random.default_rng(12)
    sets = []
    for _ in range(400):
        centre, size = rng.uniform(0, 200, 2), rng.uniform(2, 120, 2)
        corners = cv2.boxPoints((tuple(centre), tuple(size), float(rng.uniform(-90, 90))))
        jitter = rng.integers(-2, 3, (int(rng.integers(4, 40)), 2))
        sets.append(np.round(corners[rng.integers(0, 4, len(jitter))] + jitter).astype(np.int64))
    offsets = torch.tensor(np.cumsum([0] + [len(s) for s in sets]))
    boxes, sides = min_area_boxes(torch.from_numpy(np.concatenate(sets)), offsets)
    for points, box, side in zip(sets, boxes.numpy(), sides.numpy()):
        rect = cv2.minAreaRect(points.astype(np.int32).reshape(-1, 1, 2))
        corners = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
        left = sorted(corners[:2], key=lambda p: p[1])
        right = sorted(corners[2:], key=lambda p: p[1])
        expected = np.array([left[0], right[0], right[1], left[1]])
        np.testing.assert_allclose(box, expected, atol=1e-3)
        assert abs(side - min(rect[1])) < 1e-3


def test_box_and_contour_scores_equal_paddleocr():
    rng = np.random.default_rng(13)
    prob = rng.random((170, 290), dtype=np.float32)
    quads = []
    for trial in range(400):
        centre = rng.uniform(-15, 305, 2)
        size = rng.uniform(0.5, 60 if trial % 2 else 300, 2)  # rows of 64 pixels and more too
        quad = cv2.boxPoints((tuple(centre), tuple(size), float(rng.uniform(0, 180))))
        quads.append(np.round(quad) if trial % 4 == 0 else quad)  # integer corners too
    quads = np.asarray(quads, np.float32)
    ours = box_scores(torch.from_numpy(prob), torch.from_numpy(quads)).numpy()
    expected = [DBPostProcess.box_score_fast(prob, q.copy()) for q in quads]
    # long rows are added four floats at a time in float32: relative error below 2^-23
    np.testing.assert_allclose(ours, expected, rtol=2e-7, atol=0)
    # the same pixels: with integer values every sum is exact (the means may
    # still differ in the last bit: OpenCV divides its own way)
    integers = np.floor(prob * 1000)
    ours = box_scores(torch.from_numpy(integers), torch.from_numpy(quads)).numpy()
    expected = [DBPostProcess.box_score_fast(integers, q.copy()) for q in quads]
    np.testing.assert_allclose(ours, expected, rtol=1e-15, atol=0)

    mask = (cv2.GaussianBlur(rng.random((70, 90)).astype(np.float32), (7, 7), 0) > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    points = torch.from_numpy(np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.int32))
    offsets = torch.tensor(np.cumsum([0] + [len(c) for c in contours]))
    ours = contour_scores(torch.from_numpy(prob), points, offsets).numpy()
    expected = [DBPostProcess(score_mode="slow").box_score_slow(prob, c) for c in contours]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_polygon_masks_equal_fillpoly():
    rng = np.random.default_rng(14)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        n = int(rng.integers(1, 8))
        polygon = rng.integers(-20, 60, (n, 2))
        expected = np.zeros((h, w), np.uint8)
        cv2.fillPoly(expected, [polygon.astype(np.int32)], 1)
        ours = polygon_masks(torch.from_numpy(polygon), torch.tensor([0, n]), (h, w))[0]
        np.testing.assert_array_equal(ours.numpy(), expected.astype(bool))


def test_unclip_equals_pyclipper():
    rng = np.random.default_rng(15)
    quads = np.asarray([cv2.boxPoints((tuple(rng.uniform(0, 500, 2)), tuple(rng.uniform(3, 200, 2)),
                                       float(rng.uniform(-90, 90)))) for _ in range(300)], np.float32)
    ratio = 1.5
    points, offsets = unclip(torch.from_numpy(quads), ratio)
    for k, quad in enumerate(quads):
        shape = Polygon(quad)
        offset = pyclipper.PyclipperOffset()
        offset.AddPath(quad, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        expected = np.asarray(offset.Execute(shape.area * ratio / shape.length)).reshape(-1, 2)
        ours = points[offsets[k]:offsets[k + 1]].numpy()
        hull = lambda p: sorted(map(tuple, cv2.convexHull(p.astype(np.int32)).reshape(-1, 2).tolist()))
        assert hull(ours) == hull(expected)


def test_poly_output_matches_reference_polygons():
    data, names = real_maps()
    rng = np.random.default_rng(16)
    maps = [data[f"prob_{n}"] for n in names] + [probability_map(rng, (256, 320), ring=False) for _ in range(3)]
    post = DBPostProcessor(output="poly", box_thresh=0.6)
    for prob in maps:
        det = post(torch.from_numpy(prob)[None], [(prob.shape[0] * 2, prob.shape[1])])[0]
        ref, ref_scores = polygons_from_map_reference(prob, (prob.shape[0] * 2, prob.shape[1]), box_thresh=0.6)
        assert len(det.boxes) == len(ref)
        for polygon, score, expected, expected_score in zip(det.boxes, det.scores, ref, ref_scores):
            a, b = Polygon(polygon.numpy()), Polygon(expected)
            assert a.intersection(b).area / a.union(b).area >= 0.95
            assert abs(float(score) - expected_score) <= 1e-3


# ---- robustness -----------------------------------------------------------------------

def test_degenerate_maps():
    post = DBPostProcessor(box_thresh=0.5)
    assert len(post(torch.zeros(1, 1, 1))[0]) == 0
    assert len(post(torch.ones(1, 1, 1))[0]) == 0  # one pixel: no box of side >= 3
    assert len(post(torch.zeros(2, 0, 5))[1]) == 0
    full = post(torch.ones(1, 40, 60))[0]
    assert len(full) == 1 and float(full.scores[0]) == 1.0
    np.testing.assert_allclose(full.boxes[0].numpy(), [[0, 0], [60, 0], [60, 40], [0, 40]])
    # a checkerboard: thousands of one-pixel components, more than max_candidates
    board = torch.from_numpy((np.indices((200, 200)).sum(0) % 2).astype(np.float32))
    assert len(DBPostProcessor(max_candidates=10)(board[None])[0]) == 0
    ref, _ = paddle_boxes(board.numpy(), (200, 200), box_thresh=0.5, max_candidates=10)
    assert len(ref) == 0


def test_non_finite_maps_are_refused():
    prob = torch.rand(2, 30, 30)
    for bad in (float("nan"), float("inf"), -float("inf")):
        broken = prob.clone()
        broken[1, 4, 5] = bad
        for output in ("quad", "poly"):
            with pytest.raises(ValueError, match="image 1"):
                DBPostProcessor(output=output)(broken)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="output"):
        DBPostProcessor(output="polygon")
    with pytest.raises(ValueError, match="score_mode"):
        DBPostProcessor(score_mode="exact")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        DBPostProcessor()(torch.rand(2, 3, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        DBPostProcessor()(torch.ones(1, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="sizes"):
        DBPostProcessor()(torch.rand(2, 8, 8), [(8, 8)] * 3)
    with pytest.raises(ValueError, match="unclip_ratio"):
        db_boxes(torch.rand(1, 8, 8), unclip_ratio=-1.0)
    with pytest.raises(ValueError, match="offsets"):
        min_area_boxes(torch.zeros(3, 2, dtype=torch.int64), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="integers"):
        min_area_boxes(torch.tensor([[0.5, 1.0]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="finite"):
        box_scores(torch.rand(8, 8), torch.full((1, 4, 2), float("nan")))
    with pytest.raises(ValueError, match="bitmap"):
        find_contours(torch.zeros(2, 3, 4))


def test_fuzz_random_maps_never_crash():
    rng = np.random.default_rng(17)
    post = DBPostProcessor(box_thresh=0.0, unclip_ratio=3.0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        prob = torch.from_numpy(rng.random((1, h, w), dtype=np.float32) ** float(rng.uniform(0.1, 3)))
        det = post(prob)[0]
        assert torch.isfinite(det.boxes).all() and torch.isfinite(det.scores).all()
