"""Issue 22, items 6-9 and 13: what the ops and DBPostProcessor refuse at the
Python door (and the native entry points behind it), and what they must accept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbnet_fast.ops import (
    box_scores,
    contour_scores,
    db_binarize,
    db_boxes,
    db_loss,
    db_targets,
    db_targets_batch,
    find_contours,
    map_contours,
    min_area_boxes,
    polygon_masks,
    unclip,
)
from dbnet_fast.ops._checks import MAX_COORDINATE
from dbnet_fast.ops._native import _C
from dbnet_fast.postprocess import DBPostProcessor

PROB = torch.rand(8, 12, generator=torch.Generator().manual_seed(0))
TRIANGLE = np.array([(0, 0), (10, 0), (10, 10)], np.float32)


def square(lo, hi, dtype=torch.int64) -> torch.Tensor:
    return torch.tensor([[lo, lo], [hi, lo], [hi, hi], [lo, hi]], dtype=dtype)


def blob_bitmap() -> torch.Tensor:
    """A (9, 11) 0/1 map: a ring (with a hole) and a speck."""
    bitmap = torch.zeros(9, 11, dtype=torch.int64)
    bitmap[1:6, 1:7] = 1
    bitmap[3, 3:5] = 0
    bitmap[7, 9] = 1
    return bitmap


# --- item 6: one range rule for point coordinates -------------------------------

OFFSETS = torch.tensor([0, 4])

# (op, argument, call with a (4, 2) point tensor)
POINT_OPS = {
    "contour_scores": ("points", lambda p: contour_scores(PROB, p, OFFSETS)),
    "min_area_boxes": ("points", lambda p: min_area_boxes(p, OFFSETS)),
    "polygon_masks": ("points", lambda p: polygon_masks(p, OFFSETS, (8, 12))),
    "box_scores": ("boxes", lambda p: box_scores(PROB, p[None])),
    "unclip": ("boxes", lambda p: unclip(p[None])),
    "db_targets": ("image 0 polygon 1", lambda p: db_targets([TRIANGLE, p], (16, 16))),
}

HUGE = [square(2**32, 2**32 + 5), square(-(2**31), 2**31), square(-(2**62), 2**62),
        square(-1e30, 1e30, torch.float64), square(0, MAX_COORDINATE + 1),
        square(0, MAX_COORDINATE + 0.5, torch.float64)]
NON_FINITE = [float("nan"), float("inf"), -float("inf")]


def test_the_range_rule_is_the_native_one():
    assert MAX_COORDINATE == _C.max_coordinate == 10**7


@pytest.mark.parametrize("op", list(POINT_OPS))
@pytest.mark.parametrize("points", HUGE, ids=lambda p: f"{p.dtype}-{p.abs().max().item():.3g}")
def test_point_ops_refuse_huge_coordinates(op, points):
    argument, call = POINT_OPS[op]
    with pytest.raises(ValueError, match=rf"^{op}: {argument} has a coordinate beyond 1e7 pixels"):
        call(points)


@pytest.mark.parametrize("op", list(POINT_OPS))
@pytest.mark.parametrize("value", NON_FINITE)
def test_point_ops_refuse_non_finite_coordinates(op, value):
    argument, call = POINT_OPS[op]
    points = square(0, 5, torch.float32)
    points[2, 1] = value
    with pytest.raises(ValueError, match=rf"^{op}: {argument} has a NaN or infinite coordinate"):
        call(points)


@pytest.mark.parametrize("op", list(POINT_OPS))
def test_point_ops_refuse_complex_points(op):
    argument, call = POINT_OPS[op]
    with pytest.raises(TypeError, match=f"^{op}: {argument} must be"):
        call(square(0, 5, torch.complex64))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.float16,
                                   torch.bfloat16, torch.float64])
def test_point_ops_take_every_real_dtype(dtype):
    points = square(0, 5, dtype)
    assert min_area_boxes(points, OFFSETS)[1].tolist() == [5.0]
    mean = PROB[:6, :6].double().mean().item()
    assert contour_scores(PROB, points, OFFSETS).item() == pytest.approx(mean)
    assert polygon_masks(points, OFFSETS, (8, 12)).sum() == 36
    float_box = square(0, 5, torch.float32)[None]
    assert torch.equal(box_scores(PROB, points[None]), box_scores(PROB, float_box))
    assert torch.equal(unclip(points[None])[0], unclip(float_box)[0])
    assert torch.equal(db_targets([points], (16, 16)).shrink_map,
                       db_targets([square(0, 5, torch.float32)], (16, 16)).shrink_map)


def test_coordinates_at_the_limit_are_computed_right():
    limit = MAX_COORDINATE
    far = square(limit - 5, limit)  # wholly outside the map
    assert contour_scores(PROB, far, OFFSETS).tolist() == [0.0]
    assert box_scores(PROB, far[None].float()).tolist() == [0.0]
    assert not polygon_masks(far, OFFSETS, (8, 12)).any()
    # a square covering the canvas, and its box
    masks = polygon_masks(square(-limit, limit), OFFSETS, (8, 12))
    assert masks.all() and masks.shape == (1, 8, 12)
    whole = contour_scores(PROB, square(-limit, limit), OFFSETS).item()
    assert whole == pytest.approx(PROB.double().mean().item())
    boxes, sides = min_area_boxes(square(-limit, limit), OFFSETS)
    assert sides.tolist() == [2.0 * limit]
    assert sorted(boxes[0].abs().flatten().tolist()) == [float(limit)] * 8
    maps = db_targets([TRIANGLE, square(-limit, limit, torch.float32)], (16, 16))
    assert torch.isfinite(maps.thresh_map).all()


def test_unclip_keeps_the_grown_boxes_in_range():
    box = square(0, 10, torch.float32)[None]
    assert unclip(box, 1e5)[0].abs().max() <= MAX_COORDINATE
    for ratio in (1e7, 1e300):
        with pytest.raises(ValueError, match="unclip: a box grown by unclip_ratio .* beyond 1e7"):
            unclip(box, ratio)


def test_native_entry_points_check_the_range_too():
    big = square(-(2**31), 2**31)
    for call in (lambda: _C.min_area_quads(big, OFFSETS),
                 lambda: _C.polygon_masks(big, OFFSETS, 8, 12),
                 lambda: _C.offset_polygons(big, OFFSETS, torch.zeros(1, dtype=torch.float64)),
                 lambda: _C.contour_scores(PROB, square(0, 2**30, torch.int32), OFFSETS),
                 lambda: _C.quad_scores(PROB, torch.full((1, 4, 2), float("nan"))),
                 lambda: _C.quad_scores(PROB, torch.full((1, 4, 2), 2.0**31))):
        with pytest.raises(ValueError, match=r"must be finite and within \+-10000000"):
            call()
    with pytest.raises(ValueError, match="distances must be finite"):
        _C.offset_polygons(square(0, 5), OFFSETS, torch.tensor([1e300], dtype=torch.float64))


# (op: the number of point sets it was given, from the offsets)
CSR_OPS = {
    "contour_scores": lambda o: len(contour_scores(PROB, square(0, 5), o)),
    "min_area_boxes": lambda o: len(min_area_boxes(square(0, 5), o)[1]),
    "polygon_masks": lambda o: len(polygon_masks(square(0, 5), o, (8, 12))),
}


@pytest.mark.parametrize("op", list(CSR_OPS))
def test_csr_offsets_must_be_integers_in_order(op):
    call = CSR_OPS[op]
    for dtype in (torch.int32, torch.int64, torch.uint8, torch.int16):
        assert call(torch.tensor([0, 3, 4], dtype=dtype)) == 2
    fractional = (torch.tensor([0, 3.5, 4]), torch.tensor([0.0, 4.0]), torch.tensor([0, 4]).half())
    for offsets in fractional:
        with pytest.raises(TypeError, match=f"^{op}: offsets must be an integer tensor"):
            call(offsets)
    with pytest.raises(TypeError, match=f"^{op}: offsets must be an integer tensor"):
        call(torch.tensor([False, True]))
    for offsets in ([0, 3, 2, 4], [0, 5], [1, 4]):
        with pytest.raises(ValueError, match=f"^{op}: offsets must start at 0"):
            call(torch.tensor(offsets))


# --- item 7: bitmaps are nonzero-is-text in every real dtype ----------------------

# A value of each dtype that a cast to uint8 turns into 0 (or that is tiny).
WIDE_VALUES = {
    torch.bool: True, torch.uint8: 255, torch.int8: -128, torch.int16: -256, torch.int32: 512,
    torch.int64: 2**40, torch.uint16: 256, torch.uint32: 2**31, torch.uint64: 2**40,
    torch.float16: 2.0**-14, torch.bfloat16: 256.0, torch.float32: -256.0, torch.float64: 1e-300,
}


@pytest.mark.parametrize("dtype", list(WIDE_VALUES), ids=str)
def test_find_contours_tests_nonzero_in_every_real_dtype(dtype):
    bitmap = blob_bitmap()
    expected = find_contours(bitmap.to(torch.uint8))
    assert len(expected[1]) == 4  # the ring's two borders and the speck
    wide = (bitmap.double() * WIDE_VALUES[dtype]).to(dtype)  # (exact in float64)
    for simple in (True, False):
        got = find_contours(wide, simple)
        want = find_contours(bitmap.to(torch.uint8), simple)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_find_contours_counts_nan_as_text():
    bitmap = blob_bitmap().float()
    bitmap[bitmap == 1] = float("nan")
    assert torch.equal(find_contours(bitmap)[1], find_contours(blob_bitmap())[1])


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_bitmaps_refuse_complex(dtype):
    bitmap = blob_bitmap().to(dtype)
    with pytest.raises(TypeError, match="^find_contours: bitmap must be a real"):
        find_contours(bitmap)
    with pytest.raises(TypeError, match="^map_contours: prob must be a floating tensor"):
        map_contours(bitmap)
    with pytest.raises(TypeError, match="^db_boxes: prob must be a floating tensor"):
        db_boxes(bitmap[None])


# --- item 8: DBPostProcessor's settings -------------------------------------------

@pytest.mark.parametrize("setting, value, message", [
    ("thresh", -1, r"thresh must be in \[0, 1\], got -1.0"),
    ("thresh", 2, r"thresh must be in \[0, 1\], got 2.0"),
    ("thresh", float("nan"), "thresh must be finite"),
    ("box_thresh", 2, r"box_thresh must be in \[0, 1\], got 2.0"),
    ("box_thresh", -0.5, r"box_thresh must be in \[0, 1\], got -0.5"),
    ("box_thresh", float("inf"), "box_thresh must be finite"),
    ("box_thresh", "0.5", "box_thresh must be a real number"),
    ("unclip_ratio", 0, "unclip_ratio must be > 0, got 0.0"),
    ("unclip_ratio", -1.5, "unclip_ratio must be > 0"),
    ("unclip_ratio", float("inf"), "unclip_ratio must be finite"),
    ("max_candidates", 0, "max_candidates must be >= 1, got 0"),
    ("max_candidates", -1, "max_candidates must be >= 1"),
    ("max_candidates", 10.0, "max_candidates must be an int"),
    ("max_candidates", True, "max_candidates must be an int"),
    ("min_size", float("nan"), "min_size must be finite"),
])
def test_postprocessor_settings_are_checked(setting, value, message):
    with pytest.raises(ValueError, match=f"^DBPostProcessor: {message}"):
        DBPostProcessor(**{setting: value})


def test_postprocessor_settings_at_the_bounds_are_accepted():
    for thresh in (0, 1, 0.0, 1.0):
        assert DBPostProcessor(thresh=thresh, box_thresh=thresh).thresh == thresh
    assert DBPostProcessor(max_candidates=1, unclip_ratio=1e-3).max_candidates == 1


def test_db_boxes_thresholds_are_in_the_unit_interval():
    prob = PROB[None]
    for name in ("thresh", "box_thresh"):
        for value in (-0.1, 1.5):
            with pytest.raises(ValueError, match=rf"^db_boxes: {name} must be in \[0, 1\]"):
                db_boxes(prob, **{name: value})
    with pytest.raises(ValueError, match=r"^map_contours: thresh must be in \[0, 1\]"):
        map_contours(PROB, 2.0)
    with pytest.raises(TypeError, match="^db_boxes: dest_sizes must be an integer tensor"):
        db_boxes(prob, torch.tensor([[8.5, 12.0]]))


# --- item 9: db_targets' arguments ------------------------------------------------

TARGET_CALLS = {
    "db_targets": lambda **kw: db_targets([TRIANGLE], kw.pop("size", (16, 16)), **kw),
    "db_targets_batch": lambda **kw: db_targets_batch(
        [[TRIANGLE]], kw.pop("size", (16, 16)),
        None if kw.get("ignore") is None else [kw.pop("ignore")], **kw),
}


@pytest.mark.parametrize("entry", list(TARGET_CALLS))
@pytest.mark.parametrize("kwargs, error, message", [
    ({"size": (64.5, 64)}, TypeError,
     r"size must be a \(height, width\) pair of ints, got \(64.5, 64\)"),
    ({"size": (64, True)}, TypeError, "size must be a"),
    ({"size": (64, np.float32(64))}, TypeError, "size must be a"),
    ({"size": (0, 64)}, ValueError, "size must be positive"),
    ({"thresh_min": 0.8, "thresh_max": 0.2}, ValueError,
     "thresh_min must be <= thresh_max, got 0.8 and 0.2"),
    ({"thresh_min": -0.1}, ValueError, r"thresh_min must be in \[0, 1\]"),
    ({"thresh_max": 1.5}, ValueError, r"thresh_max must be in \[0, 1\]"),
    ({"thresh_max": float("nan")}, ValueError, "thresh_max must be finite"),
    ({"min_text_size": -1}, ValueError, "min_text_size must be >= 0, got -1.0"),
    ({"min_text_size": float("inf")}, ValueError, "min_text_size must be finite"),
    ({"ignore": "a"}, TypeError, "image 0: ignore must hold bools, got 'a'"),
    ({"ignore": [1]}, TypeError, "image 0: ignore must hold bools"),
    ({"ignore": [True, False]}, ValueError,
     r"image 0: ignore must have one flag per polygon \(1\)"),
    ({"ignore": True}, ValueError, "image 0: ignore must have one flag per polygon"),
])
def test_target_arguments_are_checked(entry, kwargs, error, message):
    with pytest.raises(error, match=f"^db_targets: {message}"):
        TARGET_CALLS[entry](**kwargs)


def test_target_batch_ignore_is_one_entry_per_image():
    with pytest.raises(TypeError, match="^db_targets: ignore must be None or a sequence"):
        db_targets_batch([[TRIANGLE]], (16, 16), "a")
    with pytest.raises(ValueError, match="^db_targets: ignore must have one entry per image"):
        db_targets_batch([[TRIANGLE]], (16, 16), [None, None])


def test_target_arguments_that_are_accepted():
    plain = db_targets([TRIANGLE], (16, 16), [True])
    for ignore in (np.array([True]), torch.tensor([True]), [np.bool_(True)]):
        assert torch.equal(db_targets([TRIANGLE], (16, 16), ignore).shrink_mask, plain.shrink_mask)
    assert db_targets([], (16, 16), []).shrink_map.shape == (16, 16)
    sized = db_targets([TRIANGLE], (np.int64(16), np.int32(20)))
    assert sized.shrink_map.shape == (16, 20)
    same = db_targets([TRIANGLE], (16, 16), thresh_min=0.5, thresh_max=0.5, min_text_size=0)
    assert torch.equal(same.thresh_map, torch.full((16, 16), 0.5))
    batch = db_targets_batch([[TRIANGLE], []], (16, 16), [[False], None])
    assert batch.shrink_map.shape == (2, 16, 16)


# --- item 13: NumPy scalars, meta tensors -------------------------------------------

def test_numpy_scalars_are_accepted():
    rng = np.random.default_rng(3)
    prob = torch.from_numpy(rng.random((1, 40, 60), dtype=np.float32))
    prob[0, 5:20, 5:40] = 0.9
    plain = DBPostProcessor(thresh=0.5, box_thresh=0.6, unclip_ratio=1.5, max_candidates=100,
                            min_size=3)
    numpy = DBPostProcessor(thresh=np.float64(0.5), box_thresh=np.float64(0.6),
                            unclip_ratio=np.float16(1.5), max_candidates=np.int64(100),
                            min_size=np.int32(3))
    assert type(numpy.thresh) is float and type(numpy.max_candidates) is int
    for a, b in zip(plain(prob), numpy(prob)):
        assert torch.equal(a.boxes, b.boxes) and len(a) > 0
    expected = db_boxes(prob, thresh=0.5, max_candidates=100)
    got = db_boxes(prob, thresh=np.float32(0.5), max_candidates=np.int32(100),
                   min_size=np.float64(3),
                   unclip_ratio=np.int64(2) - np.float32(0.5), box_thresh=np.float64(0.7))
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert torch.equal(map_contours(prob[0], np.float32(0.5))[1], map_contours(prob[0], 0.5)[1])
    box = square(0, 10, torch.float32)[None]
    assert torch.equal(unclip(box, np.float32(1.5))[0], unclip(box, 1.5)[0])
    x = torch.rand(3)
    assert torch.equal(db_binarize(x, x, np.float32(50)), db_binarize(x, x, 50.0))
    logits = torch.randn(1, 8, 8)
    labels = [torch.ones(1, 8, 8)] * 4
    assert torch.equal(db_loss(logits, logits, *labels, k=np.int64(50), eps=np.float32(1e-6))[0],
                       db_loss(logits, logits, *labels, k=50, eps=float(np.float32(1e-6)))[0])
    assert torch.equal(db_targets([TRIANGLE], (16, 16), thresh_min=np.float32(0.25),
                                  min_text_size=np.int64(8)).thresh_map,
                       db_targets([TRIANGLE], (16, 16), thresh_min=0.25).thresh_map)


def test_numpy_bools_and_complex_numbers_are_refused_as_numbers():
    for value in (np.bool_(True), np.complex64(0.5)):
        with pytest.raises(ValueError, match="^DBPostProcessor: thresh must be a real number"):
            DBPostProcessor(thresh=value)
        with pytest.raises(TypeError, match="^db_binarize: k must be a real number"):
            db_binarize(torch.rand(3), torch.rand(3), value)
        with pytest.raises(TypeError, match="^db_boxes: box_thresh must be a real number"):
            db_boxes(PROB[None], box_thresh=value)
    with pytest.raises(ValueError, match="^DBPostProcessor: max_candidates must be an int"):
        DBPostProcessor(max_candidates=np.bool_(True))
    with pytest.raises(TypeError, match="^db_targets: size must be a"):
        db_targets([TRIANGLE], (np.bool_(True), 16))


def meta(shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype, device="meta")


# (op, argument, call): every op that reads data refuses meta tensors by name.
META_CALLS = [
    ("find_contours", "bitmap", lambda: find_contours(meta((4, 4)))),
    ("map_contours", "prob", lambda: map_contours(meta((4, 4)))),
    ("contour_scores", "prob", lambda: contour_scores(meta((4, 4)), square(0, 2), OFFSETS)),
    ("contour_scores", "points", lambda: contour_scores(PROB, square(0, 2).to("meta"), OFFSETS)),
    ("min_area_boxes", "offsets", lambda: min_area_boxes(square(0, 2), OFFSETS.to("meta"))),
    ("box_scores", "boxes", lambda: box_scores(PROB, meta((1, 4, 2)))),
    ("unclip", "boxes", lambda: unclip(meta((1, 4, 2)))),
    ("polygon_masks", "points", lambda: polygon_masks(square(0, 2).to("meta"), OFFSETS, (4, 4))),
    ("db_boxes", "prob", lambda: db_boxes(meta((1, 4, 4)))),
    ("db_boxes", "dest_sizes", lambda: db_boxes(PROB[None], meta((1, 2), torch.int64))),
    ("db_targets", "image 0 polygon 0",
     lambda: db_targets([torch.from_numpy(TRIANGLE).to("meta")], (8, 8))),
    ("db_targets", "device", lambda: db_targets([TRIANGLE], (8, 8), device="meta")),
    ("db_targets", "ignore",
     lambda: db_targets([TRIANGLE], (8, 8), torch.tensor([True], device="meta"))),
    ("DBPostProcessor", "prob", lambda: DBPostProcessor()(meta((1, 1, 4, 4)))),
]


@pytest.mark.parametrize("op, argument, call", META_CALLS,
                         ids=[f"{o}-{a}" for o, a, _ in META_CALLS])
def test_meta_tensors_are_refused_by_name(op, argument, call):
    with pytest.raises(ValueError, match=f"^{op}: {argument} (is a meta tensor|is on meta)"):
        call()


def test_traced_ops_still_take_meta_tensors():
    x = meta((2, 3))
    assert db_binarize(x, x).device.type == "meta"
    assert db_loss(x, x, x, x, x, x)[0].device.type == "meta"
