"""Per-image AP: perfect, empty and partial detections, and agreement with pycocotools."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.train.evaluate import coco_map
from engine.train.image_ap import image_ap

TRUTH = np.array([[0, 10, 10, 50, 50], [1, 60, 60, 90, 100], [0, 100, 20, 140, 70]], np.float32)


def detections(rows) -> np.ndarray:
    return np.asarray(rows, np.float32).reshape(-1, 6)


def test_perfect_detections_score_one_and_none_zero() -> None:
    perfect = detections([[*t[1:], 0.9, t[0]] for t in TRUTH])
    assert image_ap(perfect, TRUTH) == pytest.approx(1.0)
    assert image_ap(detections([]), TRUTH) == 0.0


def test_image_without_truth_is_nan() -> None:
    assert math.isnan(image_ap(detections([[0, 0, 10, 10, 0.5, 0]]), np.zeros((0, 5), np.float32)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools_on_one_image(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for cls, x1, y1, x2, y2 in TRUTH:
        for _ in range(3):  # near misses, duplicates and shifted boxes at random scores
            jitter = rng.normal(0, 4, 4)
            rows.append([x1 + jitter[0], y1 + jitter[1], x2 + jitter[2], y2 + jitter[3], rng.random(), cls])
    rows.append([200, 200, 230, 230, 0.95, 1])  # a confident false positive
    predictions = detections(rows)
    expected = coco_map([predictions], [TRUTH], num_classes=2)["map"]
    assert image_ap(predictions, TRUTH) == pytest.approx(expected, abs=1e-6)
