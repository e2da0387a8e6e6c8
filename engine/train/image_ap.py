"""COCO-style average precision of one image: what exit 2 adds to a single frame.

Dataset mAP is not a sum over images, but the per-image AP (mAP@0.5:0.95 of one image's
detections against its own ground truth, averaged over the classes present in that image)
tracks it closely enough to rank frames by what the second exit would add. The matching
follows pycocotools: detections in descending score order, each taking the unmatched ground
truth box it overlaps most at or above the IoU threshold; precision is made monotone and read
at 101 recall points.
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of ``[K, 4]`` and ``[M, 4]`` xyxy boxes: ``[K, M]``."""
    top_left = np.maximum(boxes[:, None, :2], others[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    area = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(-1)
    area_other = np.clip(others[:, 2:] - others[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area[:, None] + area_other[None, :] - inter, 1e-9)


def _class_ap(pred_boxes: np.ndarray, pred_scores: np.ndarray, truth_boxes: np.ndarray) -> float:
    """AP of one class in one image, averaged over :data:`IOU_THRESHOLDS`."""
    order = np.argsort(-pred_scores, kind="stable")
    if not len(order):
        return 0.0
    ious = box_iou(pred_boxes[order], truth_boxes)  # [K, M]
    levels = len(IOU_THRESHOLDS)
    matched = np.zeros((levels, len(truth_boxes)), bool)
    hits = np.zeros((levels, len(order)), bool)
    rows = np.arange(levels)
    for k in range(len(order)):
        # [T, M]: overlap with each still-free ground truth box, -1 where taken or below threshold
        free = np.where(~matched & (ious[k][None, :] >= IOU_THRESHOLDS[:, None]), ious[k][None, :], -1.0)
        best = free.argmax(1)
        found = free[rows, best] >= 0
        matched[rows[found], best[found]] = True
        hits[:, k] = found
    true_positives = np.cumsum(hits, 1)
    precision = true_positives / np.arange(1, len(order) + 1)[None, :]
    recall = true_positives / len(truth_boxes)
    # Monotone precision envelope, read at each recall point (0 beyond the highest recall).
    envelope = np.maximum.accumulate(precision[:, ::-1], 1)[:, ::-1]
    total = 0.0
    for level in range(levels):
        at = np.searchsorted(recall[level], _RECALL_POINTS, side="left")
        valid = at < len(order)
        total += float(envelope[level, at[valid]].sum()) / len(_RECALL_POINTS)
    return total / levels


def image_ap(predictions: np.ndarray, truth: np.ndarray, max_detections: int = 100) -> float:
    """mAP@0.5:0.95 of one image.

    Args:
        predictions: ``[K, 6]`` detections (x1, y1, x2, y2, score, class).
        truth: ``[M, 5]`` ground truth (class, x1, y1, x2, y2), in the same pixels.
        max_detections: detections kept per image, highest scores first (COCO keeps 100).

    Returns:
        The mean over the classes present in ``truth`` of each class's AP, or NaN for an
        image without ground truth (COCO leaves such images out of a class's AP as well).
    """
    if not len(truth):
        return float("nan")
    predictions = predictions[np.argsort(-predictions[:, 4], kind="stable")[:max_detections]]
    classes = np.unique(truth[:, 0].astype(np.int64))
    values = []
    for cls in classes:
        mine = predictions[predictions[:, 5].astype(np.int64) == cls]
        values.append(_class_ap(mine[:, :4], mine[:, 4], truth[truth[:, 0].astype(np.int64) == cls, 1:5]))
    return float(np.mean(values))
