"""The per-frame box work, compiled (Numba): class-aware NMS of one image's dense predictions and
its boxes taken back through the letterbox, right after the network; the tracker's IoU costs.

The first two run on every frame right after the network, when the CPU's caches hold the
network's data instead of NumPy's and OpenCV's code: there each library call costs 15-25
microseconds, and the NumPy/OpenCV path (score filter, class maxima, box conversion,
``cv2.dnn.NMSBoxesBatched``, the kept rows written out) took 0.40-0.60 ms of CPU per frame on
the demo. Compiled into a single loop over the rows it takes 0.08 ms (5.6x less, identical
detections on 300 demo outputs). Undoing the letterbox likewise takes 0.04 ms instead of 0.10
for its five NumPy calls.

Both keep the GIL: a worker that dropped it for these few dozen microseconds waited up to the
engine's switch interval to win it back from the tracking and capture threads. Held, the
post-processing share of the engine's time fell from 2.6 % to 1.4 % and the workers' time in
the network rose from 0.903 to 0.908 of the whole (demo, 2 workers, 12 interleaved runs).

The compiled code is cached beside this module (Numba's ``cache=True``), so only the first start
on a machine compiles it (a few seconds; ``make setup`` does it: :func:`compile_now`).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def nms_rows(pred: np.ndarray, conf_threshold: float, iou_threshold: float, max_detections: int,
             max_candidates: int) -> np.ndarray:
    """``[A, 5 + C]`` float32 rows (cx, cy, w, h, objectness, class probabilities) -> ``[K, 6]``
    float32 detections (x1, y1, x2, y2, score, class id), highest score first.

    A row is a candidate when its score (objectness x its best class probability) is above
    ``conf_threshold``; at most ``max_candidates`` of the best are considered. Going down the
    scores, a box is kept unless it overlaps a kept box of its class with an IoU above
    ``iou_threshold`` (torchvision's ``batched_nms`` and OpenCV's ``NMSBoxesBatched`` rule; equal
    scores keep their row order, as OpenCV's stable sort does).
    """
    count, width = pred.shape
    rows = np.empty(count, np.int64)
    scores = np.empty(count, np.float32)
    classes = np.empty(count, np.int64)
    found = 0
    for i in range(count):
        objectness = pred[i, 4]
        if objectness <= conf_threshold:  # the score is at most the objectness
            continue
        best, best_class = pred[i, 5] * objectness, 0
        for c in range(6, width):
            value = pred[i, c] * objectness
            if value > best:
                best, best_class = value, c - 5
        if best > conf_threshold:
            rows[found], scores[found], classes[found] = i, best, best_class
            found += 1
    order = np.argsort(-scores[:found], kind="mergesort")[:max_candidates]
    boxes = np.empty((found, 4), np.float32)
    for j in range(found):
        r = rows[j]
        half_w, half_h = pred[r, 2] * np.float32(0.5), pred[r, 3] * np.float32(0.5)
        boxes[j, 0], boxes[j, 1] = pred[r, 0] - half_w, pred[r, 1] - half_h
        boxes[j, 2], boxes[j, 3] = pred[r, 0] + half_w, pred[r, 1] + half_h
    kept = np.empty(min(len(order), max_detections), np.int64)
    n_kept = 0
    for a in order:
        if n_kept == len(kept):
            break
        x1, y1 = np.float64(boxes[a, 0]), np.float64(boxes[a, 1])
        x2, y2 = np.float64(boxes[a, 2]), np.float64(boxes[a, 3])
        area = (x2 - x1) * (y2 - y1)
        keep = True
        for t in range(n_kept):
            b = kept[t]
            if classes[b] != classes[a]:
                continue
            w = min(x2, np.float64(boxes[b, 2])) - max(x1, np.float64(boxes[b, 0]))
            h = min(y2, np.float64(boxes[b, 3])) - max(y1, np.float64(boxes[b, 1]))
            if w <= 0.0 or h <= 0.0:
                continue
            inter = w * h
            union = area + (np.float64(boxes[b, 2]) - boxes[b, 0]) * (np.float64(boxes[b, 3]) - boxes[b, 1]) - inter
            if union > 0.0 and inter / union > iou_threshold:
                keep = False
                break
        if keep:
            kept[n_kept] = a
            n_kept += 1
    out = np.empty((n_kept, 6), np.float32)
    for t in range(n_kept):
        a = kept[t]
        out[t, 0], out[t, 1], out[t, 2], out[t, 3] = boxes[a, 0], boxes[a, 1], boxes[a, 2], boxes[a, 3]
        out[t, 4], out[t, 5] = scores[a], classes[a]
    return out


@numba.njit(cache=True)
def boxes_to_original(boxes: np.ndarray, pad_x: float, pad_y: float, inverse_scale: float, width: float,
                      height: float) -> np.ndarray:
    """``[K, 4]`` xyxy boxes in network-input pixels -> a new float32 array in original pixels
    (``(input - pad) / scale``), clipped to the ``width`` x ``height`` image."""
    out = np.empty((boxes.shape[0], 4), np.float32)
    for i in range(boxes.shape[0]):
        for j in range(4):
            x = (boxes[i, j] - (pad_x if j % 2 == 0 else pad_y)) * inverse_scale
            out[i, j] = min(max(x, 0.0), width if j % 2 == 0 else height)
    return out


@numba.njit(cache=True)
def iou_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - IoU`` of every float64 xyxy box in ``a`` against every one in ``b``, as float32.

    The tracker's association matrices (:mod:`engine.tracking.byte_track`), five a frame with a
    few boxes each: NumPy spent a dozen small calls on each, this one loop takes 15 % off the
    tracker's time on the demo (0.93 -> 0.79 ms a frame). The arithmetic is NumPy's, step for
    step (float64, the quotient rounded to float32), so the costs and the ids are bit-identical.
    """
    rows, cols = a.shape[0], b.shape[0]
    out = np.empty((rows, cols), np.float32)
    for i in range(rows):
        area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
        for j in range(cols):
            width = min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0])
            height = min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1])
            inter = max(width, 0.0) * max(height, 0.0)
            union = area_a + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - inter
            iou = np.float32(inter / union) if union > 0 else np.float32(0.0)
            out[i, j] = np.float32(1.0) - iou
    return out


def compile_now() -> None:
    """Compile the kernels (or load them from the cache) now instead of on the first frame: setup
    calls this, so that a first run does not pause for the compilation."""
    nms_rows(np.zeros((1, 6), np.float32), 0.5, 0.5, 1, 1)
    for boxes in (np.zeros((1, 4), np.float32), np.zeros((1, 6), np.float32)[:, :4]):  # whole rows, or a view
        boxes_to_original(boxes, 0.0, 0.0, 1.0, 1.0, 1.0)
    iou_cost(np.zeros((1, 4)), np.zeros((1, 4)))
