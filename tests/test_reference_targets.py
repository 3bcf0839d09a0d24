"""The float64 label-generation reference (the oracle of db_targets): known
values on a rectangle, its ignore rules, and properties on random polygons."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyclipper")
pytest.importorskip("cv2")

from dbnet_fast.reference.targets import db_targets_reference, segment_distance  # noqa: E402

RECT = [(50, 50), (150, 50), (150, 90), (50, 90)]  # 100 x 40: A = 4000, L = 280, D = 12


@pytest.mark.parametrize("distance", ["reference", "exact"])
def test_rectangle_values(distance):
    maps = db_targets_reference([RECT], (140, 200), distance=distance)
    t = maps["thresh_map"]
    # 0.3 + 0.4 (1 - d / 12) at distance d from the top edge (x = 100 is mid-edge)
    for y, want in [(50, 0.7), (56, 0.5), (44, 0.5), (62, 0.3), (38, 0.3), (47, 0.6)]:
        assert t[y, 100] == pytest.approx(want, abs=1e-6), (y, distance)
    assert t.min() == pytest.approx(0.3) and t.max() == pytest.approx(0.7)
    # shrunk by 12 and dilated by 12, integer polygons filled with their boundary
    assert maps["shrink_map"].sum() == 77 * 17
    assert maps["shrink_map"][62:79, 62:139].all()
    assert 7800 <= maps["thresh_mask"].sum() <= 8100
    assert maps["shrink_mask"].all()


def test_corner_distances_differ_by_mode():
    """The published formula never finds a shorter distance than the exact one
    (where the angle at the pixel is acute it takes the nearer endpoint, though
    the nearest point may lie inside the edge); away from the corners they agree."""
    ref = db_targets_reference([RECT], (140, 200), distance="reference")["thresh_map"]
    exact = db_targets_reference([RECT], (140, 200), distance="exact")["thresh_map"]
    assert np.all(ref <= exact + 1e-6)  # the reference distance is never shorter
    assert np.allclose(ref[52:88, 52:148], exact[52:88, 52:148], atol=1e-6)
    # (45, 42): 5 px left of the left edge's line, 8 px above the top edge's line
    assert exact[45, 42] == pytest.approx(0.3 + 0.4 * (1 - np.hypot(5, 8) / 12), abs=1e-6)


def test_ignored_polygons():
    small = [(10, 10), (40, 10), (40, 15), (10, 15)]  # 5 px high < min_text_size
    tagged = [(100, 100), (160, 100), (160, 130), (100, 130)]
    tiny = [(5, 100), (5.5, 100), (5.5, 101)]  # |area| < 1
    maps = db_targets_reference([small, tagged, tiny], (150, 200), [False, True, False])
    assert maps["shrink_map"].sum() == 0 and maps["thresh_mask"].sum() == 0
    assert np.all(maps["thresh_map"] == np.float32(0.3))
    mask = maps["shrink_mask"]
    assert mask[12, 20] == 0 and mask[110, 120] == 0 and mask[60, 60] == 1


def test_polygons_are_clipped_to_the_image():
    across = [(-30, 20), (60, 20), (60, 50), (-30, 50)]
    outside = [(300, 300), (340, 300), (340, 330), (300, 330)]
    maps = db_targets_reference([across, outside], (100, 100))
    # clipped to x in [0, 60]: A = 1800, L = 180, D = 8.4, so shrunk to x in [8.4, 51.6]
    assert maps["shrink_map"][30:40, 9:51].all() and not maps["shrink_map"][:, :8].any()
    assert maps["shrink_map"][:, 60:].sum() == 0
    assert maps["shrink_mask"][:, :].sum() >= 100 * 100 - 100  # the outside one: a corner line


@pytest.mark.parametrize("distance", ["reference", "exact"])
def test_degenerate_polygons_give_no_nan(distance):
    polygons = [
        [(10, 10), (10, 10), (50, 10), (50, 30), (10, 30)],  # repeated point
        [(60, 10), (80, 10), (100, 10), (100, 30), (60, 30)],  # collinear points
        [(10, 40), (50, 40), (30, 60), (50, 80), (10, 80), (30, 60)],  # self-touching
        [(60, 40), (100, 80), (100, 40), (60, 80)],  # self-intersecting bow tie
        [(0, 0), (0, 0), (0, 0)],
    ]
    maps = db_targets_reference(polygons, (100, 120), distance=distance)
    for name, value in maps.items():
        assert np.isfinite(value).all(), name
        assert value.min() >= 0 and value.max() <= 1, name


def test_exact_distance_against_sampled_segment():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.uniform(-20, 20, 2), rng.uniform(-20, 20, 2)
        xs, ys = rng.uniform(-40, 40, 50), rng.uniform(-40, 40, 50)
        t = np.linspace(0, 1, 20001)[:, None]
        samples = a + t * (b - a)
        want = np.hypot(xs[None] - samples[:, :1], ys[None] - samples[:, 1:2]).min(axis=0)
        got = segment_distance(xs, ys, a, b, "exact")
        assert np.allclose(got, want, atol=2e-3)
        ref = segment_distance(xs, ys, a, b, "reference")
        assert np.all(ref >= got - 1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="distance must be one of"):
        db_targets_reference([RECT], (10, 10), distance="euclid")
    with pytest.raises(ValueError, match="one flag per polygon"):
        db_targets_reference([RECT], (10, 10), [True, False])
    maps = db_targets_reference([], (1, 1))
    assert maps["shrink_mask"].shape == (1, 1) and maps["thresh_map"][0, 0] == np.float32(0.3)
