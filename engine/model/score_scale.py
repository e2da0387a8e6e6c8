"""The router's score on a scale people can read and set.

The router ends in a sigmoid trained towards 0 or 1, so its raw easiness scores saturate: on the
bundled model half the calibrated thresholds lie below 1e-3 and the top fifth of frames sits at
0.98 and above. A badge then reads ``score 0.000 < 0.000`` and a chart of scores is a flat line.

:class:`ScoreScale` re-centres and re-scales the router's logit, ``s' = sigmoid((logit(s) - c) / w)``,
with ``c`` the logit of the median calibration score and ``w`` chosen so that the calibration set's
10th and 90th percentiles land near 0.1 and 0.9. The map is strictly increasing, so it changes no
decision: thresholds are mapped with the scores, shares and quantiles stay exactly what they were.
It is derived from the thresholds a calibration already stores (they *are* the score quantiles), so
model files need nothing new.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from engine.model.calibration import Calibration

#: Raw scores are clipped this far inside (0, 1) before taking the logit (float32 saturates).
EPS = 1e-12
#: Inputs up to this size are mapped in plain floats (see ScoreScale.apply).
SMALL = 16
#: math.exp overflows above this; the readable score there is 0.
MAX_EXP = 700.0
#: logit(0.9): where the calibration's 90th percentile should land.
LOGIT_90 = math.log(9.0)


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class ScoreScale:
    """``readable = sigmoid((logit(raw) - center) / width)``; the identity is center 0, width 1."""

    center: float = 0.0
    width: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.width) and self.width > 0):
            raise ValueError(f"score scale needs a finite center and a positive width, got {self}")

    def apply(self, raw: np.ndarray | float) -> np.ndarray:
        """Readable scores of raw router scores (any shape)."""
        raw = np.asarray(raw, np.float64)
        if raw.size > SMALL:
            return 1.0 / (1.0 + np.exp(-(logit(raw) - self.center) / self.width))
        # A frame's batch, right after stage 1, where each of the eight NumPy calls above costs
        # 10-25 microseconds with the CPU's caches taken by the network (0.09 ms a frame): floats.
        readable = np.array([self._readable(p) for p in raw.ravel().tolist()], np.float64).reshape(raw.shape)
        return readable if raw.ndim else readable[()]

    def _readable(self, p: float) -> float:
        p = min(max(p, EPS), 1 - EPS)
        z = -(math.log(p) - math.log1p(-p) - self.center) / self.width
        return 0.0 if z > MAX_EXP else 1.0 / (1.0 + math.exp(z))

    @classmethod
    def from_quantiles(cls, fractions: Sequence[float], thresholds: Sequence[float]) -> ScoreScale:
        """The scale whose 10/50/90 % raw-score quantiles (interpolated from the table) read 0.1/0.5/0.9."""
        low, mid, high = (float(np.interp(q, fractions, thresholds)) for q in (0.1, 0.5, 0.9))
        center = float(logit(mid))
        spread = float(logit(high) - logit(low))
        return cls(center, spread / (2 * LOGIT_90) if spread > 1e-9 else 1.0)


def readable_calibration(calibration: Calibration | None) -> tuple[ScoreScale, Calibration | None]:
    """The scale a calibration implies, and the calibration with its thresholds on that scale."""
    if calibration is None or len(calibration.thresholds) < 3:
        return ScoreScale(), calibration
    scale = ScoreScale.from_quantiles(calibration.second_fractions, calibration.thresholds)
    mapped = tuple(float(t) if t <= 0.0 or t >= 1.0 else float(scale.apply(t)) for t in calibration.thresholds)
    return scale, replace(calibration, thresholds=mapped)
