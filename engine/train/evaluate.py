"""Validation: COCO mAP of each exit, of the router at calibrated shares, and of random routing.

Both exits run on every validation image once; any routing is then a per-image choice
between the two stored prediction sets, so the router curve and the random-routing
baseline cost no extra inference. Boxes are compared in network-input pixels.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.data.collate import image_boxes
from engine.model.families import Cascade

logger = logging.getLogger(__name__)

SHARES = tuple(i / 10 for i in range(11))


@dataclass
class ValidationRun:
    """Per image: final detections of each exit ``[K, 6]`` (xyxy, score, class), ground truth
    ``[M, 5]`` (class, xyxy), and the router's easiness score."""

    first: list[np.ndarray]
    second: list[np.ndarray]
    truth: list[np.ndarray]
    scores: np.ndarray
    difficulty: np.ndarray | None = None


@torch.no_grad()
def run_validation(model: Cascade, batches: Iterable, max_images: int | None = None,
                   conf_threshold: float = 0.001, iou_threshold: float = 0.6) -> ValidationRun:
    """Run both exits on every image of ``batches`` (``(images, targets[M, 6], ...)`` tuples)."""
    model.eval()
    first, second, truth, scores = [], [], [], []
    for images, targets, *_ in batches:
        s1 = model.stage1(images)
        for out, preds in ((first, model.exit1(s1)), (second, model.exit2(s1))):
            # Per image: a tensor from PyTorch, an array from the graph runtimes.
            out += [np.asarray(d) for d in model.postprocess(preds, conf_threshold, iou_threshold, 300)]
        scores += s1.scores.tolist()
        for i in range(len(images)):
            classes, boxes = image_boxes(targets, i)
            truth.append(torch.cat([classes[:, None], boxes], 1).numpy())
        if max_images and len(truth) >= max_images:
            break
    return ValidationRun(first, second, truth, np.asarray(scores, dtype=np.float64))


def coco_map(predictions: Sequence[np.ndarray], truth: Sequence[np.ndarray], num_classes: int) -> dict[str, float]:
    """mAP@0.5:0.95 and mAP@0.5 with pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, detections = [], [], []
    for image_id, (pred, gt) in enumerate(zip(predictions, truth)):
        images.append({"id": image_id, "width": 1, "height": 1})
        for row in gt:
            x1, y1, x2, y2 = (float(v) for v in row[1:5])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(row[0]),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for row in pred:
            x1, y1, x2, y2, score, cls = (float(v) for v in row)
            detections.append({"image_id": image_id, "category_id": int(cls), "bbox": [x1, y1, x2 - x1, y2 - y1],
                               "score": score})
    if not annotations or not detections:
        return {"map": 0.0, "map50": 0.0}
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": i, "name": str(i)} for i in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        gt.createIndex()
        dt = gt.loadRes(detections)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map": float(evaluator.stats[0]), "map50": float(evaluator.stats[1])}


def routed(run: ValidationRun, second_mask: np.ndarray) -> list[np.ndarray]:
    return [s if m else f for f, s, m in zip(run.first, run.second, second_mask)]


def share_mask(scores: np.ndarray, share: float) -> np.ndarray:
    """The ``share`` of images with the lowest easiness scores (the hardest) go to exit 2."""
    count = round(share * len(scores))
    mask = np.zeros(len(scores), bool)
    mask[np.argsort(scores, kind="stable")[:count]] = True
    return mask


def thresholds_for_shares(scores: np.ndarray, shares: Sequence[float] = SHARES) -> list[float]:
    """Easiness thresholds sending each share to exit 2 (``score < t`` goes to exit 2)."""
    ordered = np.sort(scores)
    out = []
    for share in shares:
        if share <= 0:
            out.append(0.0)
        elif share >= 1:
            out.append(float(np.nextafter(1.0, 2.0)))
        else:
            k = round(share * len(ordered))
            low, high = ordered[max(k - 1, 0)], ordered[min(k, len(ordered) - 1)]
            out.append(float((low + high) / 2))
    return out


def evaluate_routing(run: ValidationRun, num_classes: int, shares: Sequence[float] = SHARES,
                     seed: int = 0, random_repeats: int = 3) -> dict:
    """mAP of each exit alone, of the router at each share, and of random routing at the same shares."""
    result = {"exit1": coco_map(run.first, run.truth, num_classes),
              "exit2": coco_map(run.second, run.truth, num_classes)}
    thresholds = thresholds_for_shares(run.scores, shares)
    rng = np.random.default_rng(seed)
    router, random = [], []
    for share, threshold in zip(shares, thresholds):
        router.append({"second_fraction": share, "threshold": threshold,
                       **coco_map(routed(run, share_mask(run.scores, share)), run.truth, num_classes)})
        trials = [coco_map(routed(run, share_mask(rng.random(len(run.scores)), share)), run.truth, num_classes)
                  for _ in range(random_repeats if 0 < share < 1 else 1)]
        random.append({"second_fraction": share, "map": float(np.mean([t["map"] for t in trials])),
                       "map50": float(np.mean([t["map50"] for t in trials]))})
    result["router"] = router
    result["random"] = random
    return result
