"""Boxes and labels drawn over the video: labels lie over every box line and never over each other."""

from __future__ import annotations

import itertools

import numpy as np

from engine.detections import Detections


def _shade_of(rgb: tuple[int, ...], color: tuple[int, ...]) -> bool:
    """Whether ``rgb`` is ``color`` darkened (label text is dark, antialiased into the label)."""
    pixel, base = np.array(rgb[:3], float), np.array(color[:3], float)
    t = float(pixel @ base / (base @ base))
    return float(np.linalg.norm(pixel - t * base)) < 25


def _paint(det: Detections, width: int = 300, height: int = 200):
    from PyQt6.QtCore import QRectF
    from PyQt6.QtGui import QImage, QPainter

    from app.gui.overlay import ImageMapping, paint_detections

    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(0)
    painter = QPainter(image)
    try:
        labels = paint_detections(painter, det, ImageMapping.fit(width, height, QRectF(0, 0, width, height)))
    finally:
        painter.end()
    return image, labels


def test_box_lines_never_cross_a_label(qapp):
    from app.gui.theme import class_qcolor

    # The second box's left edge (x = 80) runs down through the first box's label, just above box 1.
    det = Detections(np.array([[50, 80, 150, 180], [80, 30, 250, 120]], np.float32), np.array([0.9, 0.8], np.float32),
                     np.array([0, 1]), ("circle", "square"), 1, 0.8, 0.5)
    image, labels = _paint(det)
    first = labels[0]
    assert first.bottom() == 80 and first.left() < 80 < first.right()
    label_color = class_qcolor(0).getRgb()
    for y in range(int(first.top()) + 2, int(first.bottom()) - 1):
        assert _shade_of(image.pixelColor(80, y).getRgb(), label_color), y


def test_labels_of_overlapping_boxes_do_not_cover_each_other(qapp):
    """Six detections of one spot (a pile of shapes) and two overlapping ones at the picture's top."""
    boxes = [[100, 100, 220, 190], [104, 102, 230, 195], [98, 106, 215, 190], [110, 98, 225, 192],
             [102, 110, 218, 193], [106, 104, 222, 196], [150, 2, 240, 60], [165, 8, 260, 70]]
    det = Detections(np.array(boxes, np.float32), np.linspace(0.95, 0.5, len(boxes)).astype(np.float32),
                     np.arange(len(boxes)) % 6, ("circle", "square", "triangle", "star", "plus", "hexagon"), 1, 0.8,
                     0.5, track_ids=np.arange(1, len(boxes) + 1))
    _, labels = _paint(det, 320, 200)
    assert len(labels) == len(boxes)
    for first, second in itertools.combinations(labels, 2):
        assert not first.intersects(second), (first, second)
