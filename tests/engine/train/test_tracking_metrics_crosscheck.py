"""The tracking scores eval reports (motrics) agree with motmetrics, an older reference library."""

from __future__ import annotations

import numpy as np
import pytest

motmetrics = pytest.importorskip("motmetrics")


def scene(seed: int = 0, frames: int = 40):
    """Five objects drifting right; the tracker's ids swap once, some boxes are missed, some invented."""
    rng = np.random.default_rng(seed)
    truth, found = [], []
    for t in range(frames):
        ids = np.arange(5)
        boxes = np.array([[10 + 50 * i + t, 20 + 5 * i, 40 + 50 * i + t, 60 + 5 * i] for i in ids], float)
        tracked = ids.copy()
        if t > 20:
            tracked[[1, 2]] = tracked[[2, 1]]
        keep = rng.random(5) > 0.1
        boxes_found, ids_found = boxes[keep] + rng.normal(0, 2, (keep.sum(), 4)), tracked[keep] + 100
        if t % 7 == 0:
            boxes_found, ids_found = np.vstack([boxes_found, [300, 300, 330, 340]]), np.append(ids_found, 999)
        truth.append((ids, boxes))
        found.append((ids_found, boxes_found))
    return truth, found


def iou_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """motmetrics' distance (1 - IoU, NaN below IoU 0.5) for xyxy boxes, written out: its own helper
    uses a NumPy function that NumPy 2 removed."""
    a, b = a[:, None, :], b[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = inter / (area - inter)
    return np.where(iou >= 0.5, 1 - iou, np.nan)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mota_and_idf1_match_motmetrics(seed):
    import motrics

    truth, found = scene(seed)
    ours = motrics.evaluate(motrics.Frames(ids=[t[0] for t in truth], boxes=[t[1] for t in truth]),
                            motrics.Frames(ids=[f[0] for f in found], boxes=[f[1] for f in found]))
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for (true_ids, true_boxes), (ids, boxes) in zip(truth, found):
        accumulator.update(true_ids, ids, iou_distance(true_boxes, boxes))
    reference = motmetrics.metrics.create().compute(accumulator, metrics=["mota", "idf1"], name="scene")
    assert float(ours.clear.mota) == pytest.approx(float(reference["mota"].iloc[0]), abs=1e-4)
    assert float(ours.identity.idf1) == pytest.approx(float(reference["idf1"].iloc[0]), abs=1e-4)
