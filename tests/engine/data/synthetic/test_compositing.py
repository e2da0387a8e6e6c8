"""Painting layers and reading back what stays visible."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.synthetic.compositing import MAX_COLOUR_DISTANCE, Canvas, contrasting_colour, fill_patch


def _square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]], dtype=np.float32)


def _canvas(size: int = 64) -> Canvas:
    return Canvas(np.full((size, size, 3), 100.0, dtype=np.float32))


def test_paint_blends_colour_and_claims_pixels() -> None:
    canvas = _canvas()
    painted = canvas.paint(fill_patch(_square(10, 10, 20)), np.array([200.0, 50.0, 0.0], np.float32), label=1)
    assert painted.bounds is not None
    np.testing.assert_allclose(canvas.image[20, 20], [200.0, 50.0, 0.0], atol=0.5)
    np.testing.assert_allclose(canvas.image[50, 50], [100.0, 100.0, 100.0])
    box, area = canvas.visible_extent(1, painted.bounds)
    assert box == (10, 10, 30, 30)
    assert area == painted.full_area == 400


def test_occluder_shrinks_the_visible_extent() -> None:
    canvas = _canvas()
    below = canvas.paint(fill_patch(_square(10, 10, 20)), np.array([200.0, 0.0, 0.0], np.float32), label=1)
    canvas.paint(fill_patch(_square(20, 0, 40)), np.array([0.0, 0.0, 200.0], np.float32), label=-1)
    box, area = canvas.visible_extent(1, below.bounds)
    assert box == (10, 10, 20, 30)
    assert area == 200 and below.full_area == 400


def test_frame_edge_hides_like_an_occluder() -> None:
    canvas = _canvas()
    painted = canvas.paint(fill_patch(_square(-10, 5, 20)), np.array([255.0, 255.0, 255.0], np.float32), label=3)
    box, area = canvas.visible_extent(3, painted.bounds)
    assert box == (0, 5, 10, 25)
    assert painted.full_area == 400 and area == 200


def test_patch_fully_outside_paints_nothing() -> None:
    canvas = _canvas()
    painted = canvas.paint(fill_patch(_square(100, 100, 10)), np.array([0.0, 0.0, 0.0], np.float32), label=1)
    assert painted.bounds is None and painted.full_area == 100
    assert not canvas.labels.any()


@pytest.mark.parametrize("contrast", [0.05, 0.15, 0.3])
def test_contrasting_colour_hits_the_requested_distance(contrast: float) -> None:
    rng = np.random.default_rng(0)
    under = np.array([120.0, 130.0, 110.0], np.float32)
    for _ in range(20):
        colour = contrasting_colour(rng, under, contrast)
        distance = np.linalg.norm(colour - under) / MAX_COLOUR_DISTANCE
        assert distance == pytest.approx(contrast, abs=0.01)


def test_contrasting_colour_stays_in_the_rgb_cube_when_asked_too_much() -> None:
    rng = np.random.default_rng(1)
    colour = contrasting_colour(rng, np.array([250.0, 5.0, 128.0], np.float32), 1.0)
    assert np.all((colour >= 0) & (colour <= 255))
