"""ICDAR 2015 IoU protocol: hand-computed cases and a randomized check against
an independent loop over axis-aligned rectangles (analytic IoU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dbnet_fast.metrics import evaluate_detections


def rect(x0, y0, x1, y1):
    """A quad TL, TR, BR, BL."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def care(*polygons):
    return [(p, False) for p in polygons]


def totals(result):
    return (result["matched"], result["gt_care"], result["det_care"])


# --------------------------------------------------------------------------- IoU threshold


@pytest.mark.parametrize("shift, matched", [(3.3, 1), (3.4, 0)])
def test_iou_just_above_and_below_half(shift, matched):
    # IoU of [0,10]^2 and the same square shifted by s is (10 - s) / (10 + s):
    # 0.5038 for s = 3.3, 0.4925 for s = 3.4.
    result = evaluate_detections([[rect(shift, 0, 10 + shift, 10)]], [care(rect(0, 0, 10, 10))])
    assert totals(result) == (matched, 1, 1)
    assert result["precision"] == result["recall"] == result["hmean"] == matched
    if matched:
        (g, d, iou), = result["per_image"][0]["pairs"]
        assert (g, d) == (0, 0) and iou == pytest.approx(6.7 / 13.3)


def test_iou_exactly_threshold_does_not_match():
    # intersection 1, union 2: IoU exactly 0.5, and the test is strict (>).
    result = evaluate_detections([[rect(0, 0, 1, 1)]], [care(rect(0, 0, 2, 1))])
    assert totals(result) == (0, 1, 1)
    lower = evaluate_detections([[rect(0, 0, 1, 1)]], [care(rect(0, 0, 2, 1))],
                                iou_threshold=0.49)
    assert totals(lower) == (1, 1, 1)
    assert lower["per_image"][0]["pairs"] == [(0, 0, 0.5)]


# --------------------------------------------------------------------------- don't care


def test_dont_care_overlap_rule():
    dont_care = (rect(0, 0, 10, 10), True)
    far_gt = (rect(100, 100, 110, 110), False)
    # Detection with 60% of its area on the don't-care box: removed.
    covered = evaluate_detections([[rect(0, 4, 10, 14)]], [[dont_care, far_gt]])
    assert totals(covered) == (0, 1, 0)
    assert covered["per_image"][0]["det_dont_care"] == [0]
    assert covered["per_image"][0]["gt_dont_care"] == [0]
    assert covered["precision"] == 0.0 and covered["recall"] == 0.0
    # Exactly 50%: not more than ignore_overlap, so it is a (false) care detection.
    half = evaluate_detections([[rect(0, 5, 10, 15)]], [[dont_care, far_gt]])
    assert totals(half) == (0, 1, 1) and half["per_image"][0]["det_dont_care"] == []
    # ... unless the rule is looser.
    loose = evaluate_detections([[rect(0, 5, 10, 15)]], [[dont_care, far_gt]],
                                ignore_overlap=0.4)
    assert totals(loose) == (0, 1, 0)
    # A big detection containing a small don't-care box: only 1% of it is covered,
    # and a don't-care ground truth can never be matched, even with IoU 1.
    big = evaluate_detections([[rect(0, 0, 100, 100)]], [[(rect(0, 0, 10, 10), True)]])
    assert totals(big) == (0, 0, 1)
    exact = evaluate_detections([[rect(0, 0, 10, 10)]], [[(rect(0, 0, 10, 10), True)]])
    assert totals(exact) == (0, 0, 0) and exact["per_image"][0]["pairs"] == []


def test_dont_care_ground_truth_is_not_counted():
    gts = [(rect(0, 0, 10, 10), False), (rect(50, 0, 60, 10), True)]
    dets = [rect(0, 0, 10, 10), rect(50, 0, 60, 10)]
    result = evaluate_detections([dets], [gts])
    assert totals(result) == (1, 1, 1)
    assert result["precision"] == result["recall"] == result["hmean"] == 1.0
    assert result["per_image"][0]["pairs"] == [(0, 0, 1.0)]


# --------------------------------------------------------------------------- matching


def test_one_to_one_matching():
    gt = rect(0, 0, 10, 10)
    two_dets = evaluate_detections([[rect(0, 0, 10, 10), rect(1, 0, 11, 10)]], [care(gt)])
    assert totals(two_dets) == (1, 1, 2)
    assert two_dets["precision"] == 0.5 and two_dets["recall"] == 1.0
    assert two_dets["hmean"] == pytest.approx(2 / 3)
    assert [p[:2] for p in two_dets["per_image"][0]["pairs"]] == [(0, 0)]
    two_gts = evaluate_detections([[gt]], [care(gt, rect(0, 0, 10, 9))])
    assert totals(two_gts) == (1, 2, 1)
    assert two_gts["precision"] == 1.0 and two_gts["recall"] == 0.5


def test_greedy_in_input_order_not_best_iou():
    det = rect(0, 0, 10, 10)
    # GT 0 has IoU 0.6 with the detection, GT 1 has 0.9: GT 0 comes first and takes it.
    result = evaluate_detections([[det]], [care(rect(0, 0, 10, 6), rect(0, 0, 10, 9))])
    (g, d, iou), = result["per_image"][0]["pairs"]
    assert (g, d) == (0, 0) and iou == pytest.approx(0.6)
    assert totals(result) == (1, 2, 1)
    # Detections in order too: the first one over the threshold wins.
    result = evaluate_detections([[rect(0, 0, 10, 6), det]], [care(rect(0, 0, 10, 9))])
    assert [p[:2] for p in result["per_image"][0]["pairs"]] == [(0, 0)]


def test_aggregation_is_global_not_a_mean():
    a = (rect(0, 0, 10, 10), rect(0, 0, 10, 10))  # 1 GT, 1 correct detection
    gts_b = care(rect(0, 0, 10, 10), rect(20, 0, 30, 10), rect(40, 0, 50, 10))
    dets_b = [rect(0, 0, 10, 10), rect(100, 100, 110, 110)]
    result = evaluate_detections([[a[1]], dets_b], [care(a[0]), gts_b])
    assert totals(result) == (2, 4, 3)
    assert result["recall"] == 0.5  # a mean of per-image recalls would be 2/3
    assert result["precision"] == pytest.approx(2 / 3)  # the mean would be 3/4
    assert result["hmean"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    per = result["per_image"]
    assert per[1]["recall"] == pytest.approx(1 / 3) and per[1]["precision"] == 0.5


# --------------------------------------------------------------------------- empty images


def test_empty_images():
    square = rect(0, 0, 10, 10)
    nothing = evaluate_detections([[], []], [[], []])
    assert (nothing["precision"], nothing["recall"], nothing["hmean"]) == (0.0, 0.0, 0.0)
    assert totals(nothing) == (0, 0, 0) and nothing["num_images"] == 2
    assert nothing["per_image"][0]["precision"] == nothing["per_image"][0]["recall"] == 1.0
    no_images = evaluate_detections([], [])
    assert no_images["hmean"] == 0.0 and no_images["per_image"] == []
    # Detections on an image without text: per image P = 0, R = 1; they count globally.
    only_dets = evaluate_detections([[square], [square]], [[], care(square)])
    assert only_dets["per_image"][0]["precision"] == 0.0
    assert only_dets["per_image"][0]["recall"] == 1.0
    assert totals(only_dets) == (1, 1, 2) and only_dets["precision"] == 0.5
    # Missed text on an image without detections.
    only_gt = evaluate_detections([np.zeros((0, 4, 2)), []], [care(square), care(square)])
    assert totals(only_gt) == (0, 2, 0) and only_gt["hmean"] == 0.0
    assert only_gt["per_image"][0]["precision"] == 0.0


# --------------------------------------------------------------------------- geometry


BOW_TIE = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], dtype=np.float64)  # edges cross at (1, 1)
RIGHT_TRIANGLE = np.array([[1, 1], [2, 0], [2, 2]], dtype=np.float64)   # one half of it


def test_self_intersecting_polygons_are_repaired():
    same = evaluate_detections([[BOW_TIE]], [care(BOW_TIE)], invalid="repair")
    assert same["per_image"][0]["pairs"] == [(0, 0, 1.0)]
    # The repaired bow-tie is two unit triangles (area 2), so its IoU with one of
    # them is 1 / 2: not above 0.5, above 0.4.
    half = evaluate_detections([[RIGHT_TRIANGLE]], [care(BOW_TIE)], invalid="repair")
    assert totals(half) == (0, 1, 1)
    half = evaluate_detections([[RIGHT_TRIANGLE]], [care(BOW_TIE)], iou_threshold=0.4,
                               invalid="repair")
    assert half["per_image"][0]["pairs"] == [(0, 0, 0.5)]
    # A bow-tie detection against the 2x2 square: intersection 2, union 4.
    square = evaluate_detections([[BOW_TIE]], [care(rect(0, 0, 2, 2))], iou_threshold=0.49,
                                 invalid="repair")
    assert square["per_image"][0]["pairs"] == [(0, 0, 0.5)]


def test_self_intersecting_polygons_can_be_skipped():
    gts = care(BOW_TIE, rect(10, 10, 20, 20))
    dets = [BOW_TIE, rect(10, 10, 20, 20)]
    result = evaluate_detections([dets], [gts], invalid="skip")
    per = result["per_image"][0]
    assert per["gt_skipped"] == [0] and per["det_skipped"] == [0]
    assert totals(result) == (1, 1, 1) and per["pairs"] == [(1, 1, 1.0)]
    assert (result["gt_skipped"], result["det_skipped"]) == (1, 1)
    assert result["protocol"] == {**result["protocol"], "name": "ICDAR 2015 IoU",
                                  "iou_threshold": 0.5, "ignore_overlap": 0.5, "invalid": "skip"}


def _random_case(rng, words=5):
    """Words on a grid, detections jittered from them; some of either are bow-ties
    (two corners swapped), as a detector or an annotator may give."""
    gts, dets = [], []
    for k in range(words):
        x, y = 30.0 * (k % 3), 20.0 * (k // 3)
        quad = np.array([[x, y], [x + 20, y], [x + 20, y + 10], [x, y + 10]])
        det = quad + rng.uniform(-2, 2, (4, 2))
        if rng.random() < 0.3:
            quad = quad[[0, 2, 1, 3]]
        if rng.random() < 0.3:
            det = det[[0, 2, 1, 3]]
        gts.append((quad, bool(rng.random() < 0.15)))
        if rng.random() < 0.8:
            dets.append(det)
    return dets, gts


def test_default_drops_invalid_polygons_as_the_reference_evaluators():
    """MhLiao/DB's and PaddleOCR's DetectionIoUEvaluator skip every polygon that is not
    valid before evaluating: the default gives exactly the result of evaluating the
    valid polygons only, and differs from "repair" on such cases."""
    from shapely.geometry import Polygon

    rng = np.random.default_rng(19)
    differs = 0
    for _ in range(60):
        dets, gts = zip(*[_random_case(rng, int(rng.integers(1, 7))) for _ in range(3)])
        default = evaluate_detections(dets, gts)
        valid_dets = [[d for d in image if Polygon(d).is_valid] for image in dets]
        valid_gts = [[g for g in image if Polygon(g[0]).is_valid] for image in gts]
        valid_only = evaluate_detections(valid_dets, valid_gts, invalid="repair")
        for key in ("precision", "recall", "hmean", "matched", "gt_care", "det_care"):
            assert default[key] == valid_only[key]
        repaired = evaluate_detections(dets, gts, invalid="repair")
        differs += (repaired["precision"], repaired["recall"]) != (default["precision"],
                                                                   default["recall"])
    assert differs > 0


def test_zero_area_polygons_have_iou_zero():
    line = np.array([[0, 0], [5, 0], [10, 0], [5, 0]], dtype=np.float64)
    two_points = np.array([[0, 0], [10, 10]], dtype=np.float64)
    result = evaluate_detections([[line, two_points, rect(0, 0, 10, 10)]],
                                 [care(line, rect(0, 0, 10, 10))], invalid="repair")
    per = result["per_image"][0]
    assert per["pairs"] == [(1, 2, 1.0)]
    assert totals(result) == (1, 2, 3)
    # By default the collinear polygon (invalid) is dropped; fewer than 3 points counts.
    skipped = evaluate_detections([[line, two_points, rect(0, 0, 10, 10)]],
                                  [care(line, rect(0, 0, 10, 10))])
    assert totals(skipped) == (1, 1, 2) and skipped["per_image"][0]["det_skipped"] == [0]
    # Zero-area detections are never don't-care (their covered fraction is 0).
    inside = evaluate_detections([[line]], [[(rect(-1, -1, 11, 11), True)]], invalid="repair")
    assert totals(inside) == (0, 0, 1)
    # Both of zero area: IoU 0 even with the threshold at 0.
    both = evaluate_detections([[line]], [care(line)], iou_threshold=0.0, invalid="repair")
    assert totals(both) == (0, 1, 1)


def test_input_layouts_agree():
    quads = np.stack([rect(0, 0, 10, 10), rect(20, 0, 30, 10), rect(50, 50, 60, 60)])
    gts = care(rect(1, 0, 11, 10), rect(20, 0, 30, 12))
    want = evaluate_detections([list(quads)], [gts])
    assert totals(want) == (2, 2, 3)
    for layout in (quads, quads.astype(np.float32), torch.from_numpy(quads),
                   [torch.from_numpy(q) for q in quads], [q.tolist() for q in quads],
                   quads.astype(np.int32)):
        got = evaluate_detections([layout], [gts])
        assert got["per_image"][0]["pairs"] == want["per_image"][0]["pairs"]
    # Ground-truth polygons with more points, given as lists, and numpy bool flags.
    octagon = [[2, 0], [8, 0], [10, 2], [10, 8], [8, 10], [2, 10], [0, 8], [0, 2]]
    result = evaluate_detections([[rect(0, 0, 10, 10)]], [[(octagon, np.bool_(False))]])
    (_, _, iou), = result["per_image"][0]["pairs"]
    assert iou == pytest.approx(92 / 100)


def test_argument_errors():
    square = rect(0, 0, 1, 1)
    with pytest.raises(ValueError, match="one entry per image"):
        evaluate_detections([[square]], [])
    with pytest.raises(ValueError, match=r"predictions\[0\]\[0\].*\(K, 2\)"):
        evaluate_detections([[np.zeros((4, 3))]], [[]])
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_detections([[np.full((4, 2), np.nan)]], [[]])
    with pytest.raises(ValueError, match=r"predictions\[0\].*\(N, K, 2\)"):
        evaluate_detections([np.zeros((2, 4))], [[]])
    with pytest.raises(ValueError, match=r"ground_truths\[0\]\[0\].*pair"):
        evaluate_detections([[]], [[square]])
    with pytest.raises(TypeError, match="ignore must be a bool"):
        evaluate_detections([[]], [[(square, "###")]])
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_detections([[]], [[]], iou_threshold=1.5)
    with pytest.raises(TypeError, match="ignore_overlap"):
        evaluate_detections([[]], [[]], ignore_overlap="half")
    with pytest.raises(ValueError, match="invalid"):
        evaluate_detections([[]], [[]], invalid="drop")


# --------------------------------------------------------------------------- randomized


def _rect_iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter, inter / (area(a) + area(b) - inter)


def _oracle(dets, gts, thr=0.5, overlap=0.5):
    """The official per-image loops, on rectangles with exact rational areas."""
    dont_care_dets = set()
    for j, d in enumerate(dets):
        for g, ignore in gts:
            inter, _ = _rect_iou(g, d)
            if ignore and inter / ((d[2] - d[0]) * (d[3] - d[1])) > overlap:
                dont_care_dets.add(j)
                break
    gt_done = {i for i, (_, ignore) in enumerate(gts) if ignore}
    det_done = set(dont_care_dets)
    matched = 0
    for i, (g, _) in enumerate(gts):
        for j, d in enumerate(dets):
            if i not in gt_done and j not in det_done and _rect_iou(g, d)[1] > thr:
                gt_done.add(i)
                det_done.add(j)
                matched += 1
    gt_care = sum(not ignore for _, ignore in gts)
    return matched, gt_care, len(dets) - len(dont_care_dets)


_coord = st.integers(0, 12)
_rects = st.tuples(_coord, _coord, st.integers(1, 8), st.integers(1, 8)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(_rects, max_size=5),
                          st.lists(st.tuples(_rects, st.booleans()), max_size=5)),
                min_size=1, max_size=3))
def test_matches_the_official_loops_on_rectangles(images):
    dets = [[rect(*r) for r in d] for d, _ in images]
    gts = [[(rect(*r), ignore) for r, ignore in g] for _, g in images]
    result = evaluate_detections(dets, gts)
    want = [_oracle(d, g) for d, g in images]
    assert [totals(r) for r in result["per_image"]] == want
    matched, gt_care, det_care = (sum(w[i] for w in want) for i in range(3))
    assert totals(result) == (matched, gt_care, det_care)
    assert result["recall"] == (matched / gt_care if gt_care else 0.0)
    assert result["precision"] == (matched / det_care if det_care else 0.0)
