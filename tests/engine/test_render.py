"""Box labels on recordings: placed clear of each other and of the badge, and never crossed by a box line."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from engine.detections import Detections
from engine.render import FONT, class_color, draw_detections, place_label


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_a_label_goes_above_its_box_then_inside_then_below():
    bounds, badge = (0, 0, 640, 360), (8, 8, 308, 32)
    assert place_label(60, 14, (400, 100, 450, 150), bounds, badge) == (399, 86, 459, 100)
    assert place_label(60, 14, (100, 40, 150, 90), bounds, badge)[1] == 40  # the badge is above: inside
    assert place_label(60, 14, (100, 10, 150, 60), bounds, badge)[1] == 60  # the badge covers the top: below


@pytest.mark.parametrize("count", [2, 4, 8])
def test_labels_of_piled_up_boxes_stack_instead_of_covering_each_other(count):
    """Boxes that nearly coincide (one object found as several classes) fill the three usual
    places of a label quickly; the rest stack next to them."""
    bounds, taken = (0, 0, 640, 360), []
    for index in range(count):
        box = (200 + 2 * index, 150 + index, 300 + 2 * index, 250)
        label = place_label(70, 14, box, bounds, taken=taken)
        assert bounds[0] <= label[0] and label[2] <= bounds[2] and bounds[1] <= label[1] and label[3] <= bounds[3]
        taken.append(label)
    assert not any(_overlap(a, b) for a, b in itertools.combinations(taken, 2))


def test_stacked_labels_stay_as_near_their_box_as_there_is_room():
    bounds = (0, 0, 640, 360)
    taken = [place_label(70, 14, (200, 150, 300, 250), bounds)]  # above the box: 136 to 150
    taken.append(place_label(70, 14, (200, 150, 300, 250), bounds, taken=taken))  # inside its top
    taken.append(place_label(70, 14, (200, 150, 300, 250), bounds, taken=taken))  # below it
    fourth = place_label(70, 14, (200, 150, 300, 250), bounds, taken=taken)
    assert fourth[1] == 122  # on top of the first label, the nearest free place


def _shade_of(pixel: np.ndarray, color: tuple[int, int, int]) -> bool:
    """Whether ``pixel`` is ``color`` darkened (label text is black, antialiased into the label)."""
    color_vector = np.array(color, float)
    t = float(np.dot(pixel, color_vector) / np.dot(color_vector, color_vector))
    return float(np.linalg.norm(pixel - t * color_vector)) < 25


def test_recorded_labels_lie_over_every_box_line():
    """A box drawn after another box's label must not cut through that label."""
    image = np.zeros((200, 300, 3), np.uint8)
    # The second box's left edge (x = 80) runs down through the first box's label, just above box 1.
    boxes = np.array([[50, 80, 150, 180], [80, 30, 250, 120]], np.float32)
    det = Detections(boxes, np.array([0.9, 0.8], np.float32), np.array([0, 1]), ("circle", "square"), 1, 0.8, 0.5)
    out = draw_detections(image, det, badge=False).astype(float)
    (width, height), base = cv2.getTextSize(det.captions()[0], FONT, 0.35 * 0.8, 1)  # the scale of a 200-px image
    _, top, _, bottom = place_label(width + 2, height + base + 2, tuple(boxes[0]), (0, 0, 300, 200))
    assert bottom == 80  # the first label is above its box, where the second box's edge passes
    for y in range(round(top) + 1, round(bottom) - 1):
        assert _shade_of(out[y, 80], class_color(0)), (y, out[y, 80])
