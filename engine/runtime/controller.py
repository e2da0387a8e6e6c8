"""The frame-rate controller: moves the router threshold so processing holds a target rate.

Model: a frame costs ``c1`` ms when it leaves at exit 1 and ``c2`` ms at exit 2 (running
averages of the measured per-frame engine time, updated live). For a budget ``B = 1000 / F``
the feasible share of exit-2 frames is ``p = (B - c1) / (c2 - c1)``. The threshold is the
``p``-quantile of recent router scores, so the hardest ``p`` of frames (lowest easiness) get
the second detector. A slow integral term on the measured time between results corrects what
the cost model misses (decoding, NMS, drawing, other load on the machine, and waiting for a
live source's next frame).

A live source caps the rate at its own frame rate, so the budget is never taken shorter than
the source's frame interval: asking for 60 fps from a 30 fps camera spends the 33 ms of each
frame on the best exit that fits instead of chasing an impossible rate with exit 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.runtime.score_window import ScoreWindow


@dataclass(frozen=True)
class ControllerState:
    """What the controller decided last, for display and logs."""

    target_fps: float
    second_fraction: float
    threshold: float
    exit1_ms: float
    exit2_ms: float
    frame_ms: float
    reachable: bool
    pace: bool


def _clip(value: float, low: float, high: float) -> float:
    return min(max(float(value), low), high)  # np.clip costs microseconds per scalar, every frame


class RateController:
    """Args:
        target_fps: frames per second to hold.
        exit1_ms, exit2_ms: initial per-frame costs (e.g. from the model's calibration).
        score_window: how many recent router scores the quantile is taken over.
        cost_smoothing: weight of a new measurement in the running cost averages.
        feedback_gain: integral gain on the relative time error, per frame.
    """

    def __init__(self, target_fps: float, exit1_ms: float = 30.0, exit2_ms: float = 60.0,
                 score_window: int = 120, cost_smoothing: float = 0.1, feedback_gain: float = 0.02) -> None:
        self.set_target(target_fps)
        self.costs = {1: max(exit1_ms, 0.1), 2: max(exit2_ms, 0.1)}
        self.scores = ScoreWindow(score_window)
        self.alpha = cost_smoothing
        self.gain = feedback_gain
        self.correction = 0.0  # integral term, in units of exit-2 share
        self.frame_ms = self.costs[1]
        self.source_interval_ms: float | None = None  # a live source's frame interval, when known
        self._share = 0.0

    def set_target(self, target_fps: float) -> None:
        if not math.isfinite(target_fps) or target_fps <= 0:
            raise ValueError(f"target fps must be positive, got {target_fps}")
        self.target_fps = float(target_fps)

    @property
    def budget_ms(self) -> float:
        """Time per frame the target allows."""
        return 1000.0 / self.target_fps

    @property
    def usable_ms(self) -> float:
        """Time per frame that can actually be spent: the budget, or a slower source's interval."""
        return max(self.budget_ms, self.source_interval_ms or 0.0)

    def observe(self, exit_taken: int, score: float, frame_ms: float, cycle_ms: float | None = None,
                source_interval_ms: float | None = None) -> None:
        """Record one processed frame.

        Args:
            exit_taken: 1 or 2.
            score: the frame's router score.
            frame_ms: the engine's time on the frame (updates that exit's cost).
            cycle_ms: wall time since the previous result, waits included (the feedback's
                measure); ``frame_ms`` when not given.
            source_interval_ms: a live source's current frame interval, if known.
        """
        self.scores.append(score)
        self.costs[exit_taken] += self.alpha * (frame_ms - self.costs[exit_taken])
        self.frame_ms += self.alpha * (frame_ms - self.frame_ms)
        if source_interval_ms is not None:
            self.source_interval_ms = source_interval_ms
        # Integral feedback on the time per frame relative to the budget; it only acts within
        # the feasible range and is bounded (per frame and in total) so a transient, such as
        # a pause, cannot wind it up.
        measured = frame_ms if cycle_ms is None else cycle_ms
        error = _clip((self.usable_ms - measured) / self.usable_ms, -1.0, 1.0)
        if 0.0 < self._share < 1.0 or (self._share == 0.0 and error > 0) or (self._share == 1.0 and error < 0):
            self.correction = _clip(self.correction + self.gain * error, -0.5, 0.5)

    def model_share(self) -> float:
        """Exit-2 share the cost model alone predicts for the target."""
        c1, c2 = self.costs[1], self.costs[2]
        if c2 <= c1 + 1e-6:
            return 1.0 if c2 <= self.usable_ms else 0.0
        return _clip((self.usable_ms - c1) / (c2 - c1), 0.0, 1.0)

    def decide(self) -> ControllerState:
        """The share and threshold for the next frame."""
        share = _clip(self.model_share() + self.correction, 0.0, 1.0)
        self._share = share
        threshold = self.threshold_for(share)
        reachable = self.costs[1] <= self.budget_ms * 1.02 and self.usable_ms <= self.budget_ms * 1.02
        pace = self.costs[2] < self.budget_ms
        return ControllerState(self.target_fps, share, threshold, self.costs[1], self.costs[2], self.frame_ms,
                               reachable, pace)

    def threshold_for(self, share: float) -> float:
        """Easiness threshold sending ``share`` of recent frames to exit 2 (``score < t``)."""
        if share <= 0.0:
            return 0.0
        if share >= 1.0 or not self.scores:
            return 1.0 + 1e-6 if share >= 1.0 else 0.5
        return self.scores.quantile(share)
