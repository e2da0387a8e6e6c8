"""Calibration: router thresholds for each second-exit share, and the measured cost of each exit."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from engine.model.calibration import Calibration
from engine.model.families import Cascade
from engine.train.evaluate import SHARES, thresholds_for_shares


@torch.no_grad()
def router_scores(model: Cascade, batches: Iterable, max_images: int | None = None) -> np.ndarray:
    """Easiness scores of every image in ``batches`` (``(images, ...)`` tuples)."""
    model.eval()
    scores: list[float] = []
    for images, *_ in batches:
        scores += model.router_score(images).tolist()
        if max_images and len(scores) >= max_images:
            break
    return np.asarray(scores, dtype=np.float64)


@torch.inference_mode()
def exit_latency_ms(model: Cascade, imgsz: int, runs: int = 10) -> tuple[float, float]:
    """Median latency of each whole exit path (stage 1 included) at batch 1, fused, channels-last."""
    import copy

    fused = copy.deepcopy(model).eval().fuse().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, imgsz, imgsz).contiguous(memory_format=torch.channels_last)
    paths = (lambda: fused.exit1(fused.stage1(x)), lambda: fused.exit2(fused.stage1(x)))
    for run in paths:
        run()
    # The two paths take turns, so a burst of load from elsewhere on the machine lands on both alike
    # and cannot make exit 1 look dearer than exit 2.
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for run, spent in zip(paths, times):
            start = time.perf_counter()
            run()
            spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def calibrate(model: Cascade, batches: Iterable, imgsz: int, shares: Sequence[float] = SHARES,
              max_images: int | None = None, latency_runs: int = 10) -> Calibration:
    """The calibration of ``model`` on the images of ``batches`` (labels, if any, are not used)."""
    return calibration_from_scores(model, router_scores(model, batches, max_images), imgsz, shares, latency_runs)


def calibration_from_scores(model: Cascade, scores: np.ndarray, imgsz: int, shares: Sequence[float] = SHARES,
                            latency_runs: int = 10) -> Calibration:
    """Thresholds at ``shares`` from router scores (of any images: a dataset's or a user's own footage),
    and each exit's latency measured at ``imgsz``."""
    if not len(scores):
        raise ValueError("calibration needs at least one image")
    exit1, exit2 = exit_latency_ms(model, imgsz, latency_runs)
    return Calibration(tuple(float(s) for s in shares), tuple(thresholds_for_shares(scores, shares)),
                       exit1_ms=round(exit1, 2), exit2_ms=round(exit2, 2), imgsz=imgsz)
