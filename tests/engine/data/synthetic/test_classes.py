"""Object classes: distinct outlines that render as solid, centred shapes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.data.synthetic.classes import CLASS_NAMES, SHAPE_CLASSES, ObjectSpec, transform_outline


def _mask(class_id: int, radius: float = 30.0) -> np.ndarray:
    """Binary mask of a class drawn upright and unstretched, centred in a 80 x 80 frame."""
    patch = ObjectSpec(class_id, (40.0, 40.0), radius, 1.0, 0.0, (255.0, 255.0, 255.0)).patch()
    frame = np.zeros((80, 80), dtype=bool)
    h, w = patch.alpha.shape
    frame[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w] = patch.alpha >= 128
    return frame


def test_class_list_is_a_sensible_size_with_unique_names() -> None:
    assert 6 <= len(CLASS_NAMES) <= 12
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert tuple(shape.name for shape in SHAPE_CLASSES) == CLASS_NAMES


@pytest.mark.parametrize("class_id", range(len(SHAPE_CLASSES)))
def test_every_class_renders_a_centred_shape_within_its_radius(class_id: int) -> None:
    mask = _mask(class_id)
    rows, cols = np.nonzero(mask)
    assert mask.sum() > 0.2 * np.pi * 30**2
    assert abs(rows.mean() - 40) < 8 and abs(cols.mean() - 40) < 8
    assert rows.min() >= 40 - 31 and rows.max() <= 40 + 31
    assert cols.min() >= 40 - 31 and cols.max() <= 40 + 31


def test_outlines_differ_between_classes() -> None:
    masks = [_mask(k) for k in range(len(SHAPE_CLASSES))]
    for a, b in itertools.combinations(range(len(masks)), 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.9, f"{CLASS_NAMES[a]} and {CLASS_NAMES[b]} look alike (IoU {iou:.2f})"


def test_ring_has_a_hole_and_circle_does_not() -> None:
    assert not _mask(CLASS_NAMES.index("ring"))[40, 40]
    assert _mask(CLASS_NAMES.index("circle"))[40, 40]


def test_transform_scales_rotates_and_translates() -> None:
    point = np.array([[1.0, 0.0]], dtype=np.float32)
    placed = transform_outline(point, center=(10.0, 20.0), radius=5.0, aspect=1.0, angle_deg=90.0)
    # A positive angle turns counter-clockwise on screen, where y points down.
    np.testing.assert_allclose(placed, [[10.0, 15.0]], atol=1e-5)
    stretched = transform_outline(point, center=(0.0, 0.0), radius=1.0, aspect=4.0, angle_deg=0.0)
    np.testing.assert_allclose(stretched, [[2.0, 0.0]], atol=1e-5)
