"""Router thresholds measured on a validation set, stored with the model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """Attributes:
        second_fractions: shares of images sent to exit 2, ascending (0.0 ... 1.0).
        thresholds: the easiness threshold giving each share (``score < t`` goes to exit 2).
        exit1_ms / exit2_ms: measured latency of each whole path (stage 1 included), batch 1.
        imgsz: input size the figures were measured at.
    """

    second_fractions: tuple[float, ...]
    thresholds: tuple[float, ...]
    exit1_ms: float = 0.0
    exit2_ms: float = 0.0
    imgsz: int = 0

    def __post_init__(self) -> None:
        if len(self.second_fractions) != len(self.thresholds) or not self.thresholds:
            raise ValueError("second_fractions and thresholds need the same, non-zero length")

    def threshold_for(self, second_fraction: float) -> float:
        """Threshold that sends about ``second_fraction`` of images to exit 2 (linear interpolation)."""
        p = min(max(second_fraction, 0.0), 1.0)
        xs, ys = self.second_fractions, self.thresholds
        if p <= xs[0]:
            return ys[0]
        for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
            if p <= x1:
                return y0 if x1 == x0 else y0 + (y1 - y0) * (p - x0) / (x1 - x0)
        return ys[-1]
