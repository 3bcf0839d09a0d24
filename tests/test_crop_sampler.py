"""TrainTransform(crop_sampler="mhliao") against a NumPy reference of MhLiao/DB's
RandomCropData.crop_area written here from its description: the same random draws give
the same crops, so the fallback rate and the crop statistics are the same."""

from __future__ import annotations

import numpy as np
import pytest

from dbnet_fast.data import SyntheticTextDataset, TrainTransform
from dbnet_fast.data.transforms import mhliao_crop, transform_polygons


# ----------------------------------------------------------------------------- the reference
# MhLiao/DB's crop_area, step by step as its description gives it; np.random.* calls become
# the same calls on a numpy Generator.

def ref_split_regions(axis):
    """Runs of consecutive values; a run is closed only when the next one starts, so the
    last run is never returned."""
    regions, start = [], 0
    for i in range(1, len(axis)):
        if axis[i] != axis[i - 1] + 1:
            regions.append(axis[start:i])
            start = i
    return regions


def ref_random_select(rng, axis, max_size):
    xx = rng.choice(axis, size=2)
    return np.clip(np.min(xx), 0, max_size - 1), np.clip(np.max(xx), 0, max_size - 1)


def ref_region_wise_random_select(rng, regions, max_size):
    selected = list(rng.choice(len(regions), 2))
    values = [int(rng.choice(regions[index], size=1)[0]) for index in selected]
    return min(values), max(values)


def ref_is_poly_outside_rect(poly, x, y, w, h):
    poly = np.asarray(poly, np.float64)
    if poly[:, 0].max() < x or poly[:, 0].min() > x + w:
        return True
    return poly[:, 1].max() < y or poly[:, 1].min() > y + h


def ref_crop_area(rng, size, polys, max_tries=10, min_crop_side_ratio=0.1):
    h, w = size
    h_array = np.zeros(h, dtype=np.int32)
    w_array = np.zeros(w, dtype=np.int32)
    for points in polys:
        points = np.round(np.asarray(points, np.float64), decimals=0).astype(np.int32)
        w_array[np.min(points[:, 0]):np.max(points[:, 0])] = 1
        h_array[np.min(points[:, 1]):np.max(points[:, 1])] = 1
    h_axis, w_axis = np.where(h_array == 0)[0], np.where(w_array == 0)[0]
    if len(h_axis) == 0 or len(w_axis) == 0:
        return 0, 0, w, h
    h_regions, w_regions = ref_split_regions(h_axis), ref_split_regions(w_axis)
    for _ in range(max_tries):
        if len(w_regions) > 1:
            xmin, xmax = ref_region_wise_random_select(rng, w_regions, w)
        else:
            xmin, xmax = ref_random_select(rng, w_axis, w)
        if len(h_regions) > 1:
            ymin, ymax = ref_region_wise_random_select(rng, h_regions, h)
        else:
            ymin, ymax = ref_random_select(rng, h_axis, h)
        if xmax - xmin < min_crop_side_ratio * w or ymax - ymin < min_crop_side_ratio * h:
            continue
        if any(not ref_is_poly_outside_rect(p, xmin, ymin, xmax - xmin, ymax - ymin)
               for p in polys):
            return int(xmin), int(ymin), int(xmax - xmin), int(ymax - ymin)
    return 0, 0, w, h


# ----------------------------------------------------------------------------- scenes

def quad(x, y, w, h):
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def handmade_scenes():
    """(size, polygons, ignore) that reach each detail of the algorithm."""
    return [
        ((100, 200), [quad(20, 10, 30, 8), quad(120, 60, 40, 10)], [False, False]),
        # a word over the left / top edge: its negative start marks nothing
        ((120, 160), [quad(-6.4, 30, 40, 9), quad(60, -3, 30, 12)], [False, False]),
        # only don't-care words: every try fails, the whole image
        ((90, 90), [quad(10, 10, 30, 8)], [True]),
        # text across every column: no free column, the whole image at once
        ((80, 100), [quad(-0.2, 20, 100.4, 10)], [False]),
        # two free column runs: the last is dropped, so columns are drawn anywhere
        ((60, 300), [quad(100.5, 20, 50, 10)], [False]),
        # coordinates on .5: NumPy's round half to even
        ((64, 64), [quad(10.5, 11.5, 9, 9), quad(40.5, 40.5, 12, 6)], [False, True]),
        ((50, 50), [], []),
    ]


def synthetic_scenes(count=24):
    """Rendered synthetic images through TrainTransform's flip, rotation and scale."""
    data = SyntheticTextDataset(count, size=(192, 256), seed=5, split="train")
    out = []
    for i in range(count):
        image, polygons, ignore, _ = data.render(i)
        out.append((image.shape[:2], polygons, ignore))
    return out


# ----------------------------------------------------------------------------- tests

@pytest.mark.parametrize("seed", range(6))
def test_mhliao_crop_equals_the_reference_draw_for_draw(seed):
    for k, (size, polygons, ignore) in enumerate(handmade_scenes()):
        got_rng, ref_rng = np.random.default_rng([seed, k]), np.random.default_rng([seed, k])
        care = [p for p, flag in zip(polygons, ignore) if not flag]
        for _ in range(3):  # one generator through several crops: the draws stay in step
            got = mhliao_crop(polygons, ignore, size, got_rng)
            assert got == ref_crop_area(ref_rng, size, care), (k, size)
        assert got_rng.random() == ref_rng.random()


def crop_statistics(boxes, scenes):
    """Share of fallbacks (the whole image) and the median side of the crops."""
    fallback = [box == (0, 0, size[1], size[0]) for box, (size, _, _) in zip(boxes, scenes)]
    return np.mean(fallback), np.median([min(box[2], box[3]) for box in boxes])


def test_train_transform_mhliao_sampler_matches_the_reference_on_synthetic_images():
    transform = TrainTransform(size=160, crop_sampler="mhliao")
    ours = TrainTransform(size=160)
    scenes, got, ref, default = [], [], [], []
    for draw in range(4):
        for i, (size, polygons, ignore) in enumerate(synthetic_scenes()):
            rng = np.random.default_rng([draw, i])
            matrix, scaled, box, _ = transform.sample_crop(size, polygons, ignore, rng)
            # the reference takes the same first draws (flip, rotation, scale), then crops
            ref_rng = np.random.default_rng([draw, i])
            ref_rng.random(), ref_rng.uniform(-10, 10), ref_rng.uniform(0.5, 3.0)
            care = [p for p, flag in zip(transform_polygons(polygons, matrix), ignore) if not flag]
            scenes.append((scaled, polygons, ignore))
            got.append(box)
            ref.append(ref_crop_area(ref_rng, scaled, care))
            default.append(ours.sample_crop(size, polygons, ignore,
                                            np.random.default_rng([draw, i]))[2])
    assert got == ref
    rate, side = crop_statistics(got, scenes)
    assert (rate, side) == crop_statistics(ref, scenes)
    # MhLiao's details make it fall back to the whole image far more often than ours
    assert rate > 1.3 * crop_statistics(default, scenes)[0], rate


def test_crop_sampler_is_checked():
    with pytest.raises(ValueError, match="crop_sampler"):
        TrainTransform(crop_sampler="east")
