"""Refit the router so that its score ranks frames by the accuracy exit 2 adds to them.

The router as DynamicDet trains it learns from detection *losses* summed over a frame's objects,
so a busy frame looks as if exit 2 helped it most, and its scores saturate (many frames tie near
0). Within one stream that ranking is good enough; across cameras it is not: a calm camera whose
frames gain more from exit 2 loses its share to a busy one whose frames gain less. A fleet that
pools its cameras' scores (``allocation: global``) needs scores that mean the same thing on every
camera: what exit 2 adds to this frame's own AP.

The refit keeps the router's architecture (pooled backbone-1 stages, two 1x1 convolutions) and
the detectors untouched. For each training frame it records the router's input (the pooled
features) and the frame's own AP at each exit (:func:`~engine.train.image_ap.image_ap`), then
regresses the router's logit on the standardised gain, negated so that a high score still means
easy. Least squares estimates the *expected* gain given the features, which is what an
allocation that spends a fixed budget should rank by: a single frame's AP gain is noisy (a frame
with one object gains 0 or a lot), its expectation is not. Frames are batched as the detectors
see them at run time (letterboxed at the model's input size), so video frames and stills alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from engine.model.postprocess import letterbox, to_tensor
from engine.train.image_ap import image_ap

logger = logging.getLogger(__name__)

#: Detection thresholds when scoring a frame's AP (COCO keeps low-confidence detections).
AP_CONF, AP_IOU = 0.001, 0.6


@dataclass
class GainSamples:
    """Router inputs and what exit 2 adds, one row per frame that has ground truth."""

    pooled: np.ndarray  # [N, C] the router's input: backbone-1 stages, globally average-pooled
    ap_first: np.ndarray  # [N] the frame's own AP at exit 1
    ap_second: np.ndarray  # [N] ... and at exit 2

    @property
    def gain(self) -> np.ndarray:
        return self.ap_second - self.ap_first

    def __len__(self) -> int:
        return len(self.gain)

    @classmethod
    def concat(cls, parts: Iterable[GainSamples]) -> GainSamples:
        parts = list(parts)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pooled", "ap_first", "ap_second")))


@torch.no_grad()
def collect(model, frames: Iterable[tuple[np.ndarray, np.ndarray]], imgsz: int, batch: int = 8) -> GainSamples:
    """Run ``frames`` (RGB image, ``[M, 5]`` truth: class, x1, y1, x2, y2 in its pixels) through both
    exits; frames without objects are left out (their AP is undefined)."""
    pooled, ap_first, ap_second = [], [], []
    chunk: list[tuple[np.ndarray, np.ndarray]] = []

    def flush() -> None:
        boxed = [letterbox(image, imgsz, model.stride) for image, _ in chunk]
        state = model.stage1(to_tensor([b[0] for b in boxed]))
        aps = []
        for predictions in (model.exit1(state), model.exit2(state)):
            row = []
            for det, (_, box), (_, truth) in zip(model.postprocess(predictions, AP_CONF, AP_IOU, 300), boxed, chunk):
                det = det.numpy().copy()
                det[:, :4] = box.to_original(det[:, :4])
                row.append(image_ap(det, truth))
            aps.append(row)
        features = torch.cat([state.features[n].mean(dim=(2, 3)) for n in model.router.input_names], 1).numpy()
        for i in range(len(chunk)):
            if np.isfinite(aps[0][i]):
                pooled.append(features[i])
                ap_first.append(aps[0][i])
                ap_second.append(aps[1][i])
        chunk.clear()

    for frame in frames:
        chunk.append(frame)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    return GainSamples(np.asarray(pooled, np.float32), np.asarray(ap_first), np.asarray(ap_second))


@dataclass(frozen=True)
class FitResult:
    """How the refit went, on the frames held out of the fit."""

    steps: int
    train_frames: int
    val_frames: int
    val_spearman: float  # rank correlation of predicted and true gain (higher is better)
    val_spearman_before: float  # ... of the router before the refit (its difficulty, 1 - easiness)


def fit_router(router: torch.nn.Module, samples: GainSamples, steps: int = 3000, lr: float = 3e-3,
               weight_decay: float = 1e-3, val_fraction: float = 0.2, seed: int = 0) -> FitResult:
    """Regress ``router``'s logit on minus the standardised gain, in place; keeps the weights of the
    step with the best rank correlation on a held-out part of ``samples``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    cut = round(len(order) * (1 - val_fraction))
    train, val = order[:cut], order[cut:]
    gain = samples.gain
    center, spread = float(np.median(gain[train])), float(gain[train].std()) or 1.0
    x = torch.from_numpy(samples.pooled)[:, :, None, None]
    target = torch.from_numpy(-(gain - center) / spread).float()
    with torch.no_grad():
        before = _spearman(-router.logits_from_pooled(x[val]).numpy(), gain[val])
    optimizer = torch.optim.AdamW(router.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state = -2.0, None
    router.train()
    for step in range(steps):
        loss = torch.nn.functional.mse_loss(router.logits_from_pooled(x[train]), target[train])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == steps - 1:
            with torch.no_grad():
                rho = _spearman(-router.logits_from_pooled(x[val]).numpy(), gain[val])
            if rho > best:
                best, best_state = rho, {k: v.clone() for k, v in router.state_dict().items()}
    router.load_state_dict(best_state)
    router.eval()
    logger.info("router refit: validation rank correlation with exit-2 gain %.3f (before %.3f)", best, before)
    return FitResult(steps, len(train), len(val), round(best, 4), round(before, 4))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0  # a constant side ranks nothing (scipy would warn and give NaN)
    return float(spearmanr(a, b).statistic)
