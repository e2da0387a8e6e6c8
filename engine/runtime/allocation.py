"""One exit-2 budget shared by several cameras: how much of it to spend, and on which frames.

The *share* of frames that may take exit 2 comes from the routing mode: the rate controller's
share for a target frame rate (the total over all cameras), or a fixed ``second_fraction``.
The *allocation* turns that share into a router threshold for each camera's next frame:

* ``global``: one threshold over the recent router scores of all cameras pooled, so the frames
  of the whole fleet that the router finds hardest get exit 2 wherever they come from (a calm
  camera may get almost none), except that no camera takes more than :data:`GLOBAL_CAP` times the
  fleet's share of its own frames; what a capped camera leaves goes to the next-hardest frames
  elsewhere. The cap is measured, not cosmetic: the router's scores are not comparable between two
  busy cameras (one scene's scores sit whole logits below another's), so uncapped pooling at a
  quarter budget gave one busy camera all its frames and the other none, and lost the accuracy it
  had gained (scripts/allocation_study.py: +0.42 mAP points over per-camera uncapped, +1.23 capped,
  at a 25 % share on four 320x320 clips).
* ``per-camera``: each camera's own share-quantile, so every camera gets the same share: the
  baseline that ``global`` has to beat.

With one camera both are the same thing, and the same as the single-stream engine's routing.
Fixed thresholds and forced exits ignore the allocation.

Track-aware routing (an experiment, off by default): a frame whose camera saw tracks born or
lost at its previous frame may be *escalated* to exit 2. Escalations are paid out of the same
share: while the recent escalated share is below the budget's share, an escalated frame takes
exit 2 and the router's threshold is set for what is left of the share; beyond it, escalation
requests are ignored. So both policies spend the same exit-2 budget. The class is pure (no threads, no
clock) so it is tested with simulated scores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from engine.model.calibration import Calibration
from engine.runtime.routing import Decision, RoutingMode, RoutingPolicy
from engine.runtime.score_window import ScoreWindow

Allocation = Literal["global", "per-camera"]
ALLOCATIONS: tuple[Allocation, ...] = ("global", "per-camera")

#: Recent router scores kept per camera (the global pool keeps this many per camera).
SCORE_WINDOW = 120
#: A camera's own window must hold this many scores before its quantile is trusted.
MIN_SCORES = 8
#: Recent frames (per camera) over which escalated frames are counted against the share.
ESCALATION_WINDOW = 120
#: ``global``: no camera sends more than this multiple of the fleet's share of its frames to exit 2.
GLOBAL_CAP = 2.0
#: ``second_fraction``: per frame, this part of the gap between the share asked and the exit taken is
#: added to the share asked of the score quantiles (an integral correction, see :meth:`Allocator.observe`).
SHARE_CORRECTION_GAIN = 0.01


class Allocator:
    """Per-frame routing decisions for several cameras under one budget.

    Args:
        mode: the routing mode (``target_fps`` is the total over all cameras).
        allocation: ``global`` or ``per-camera``.
        cameras: the camera names.
        calibration: the model's calibration (initial exit costs; thresholds before any score).
    """

    def __init__(self, mode: RoutingMode, allocation: Allocation, cameras: Sequence[str],
                 calibration: Calibration | None = None) -> None:
        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
        if not cameras:
            raise ValueError("at least one camera is needed")
        self.allocation = allocation
        self.policy = RoutingPolicy(mode, calibration)
        self.calibration = calibration
        self.pooled = ScoreWindow(SCORE_WINDOW * len(cameras))
        self.per_camera = {name: ScoreWindow(SCORE_WINDOW) for name in cameras}
        self.escalated: deque[bool] = deque(maxlen=ESCALATION_WINDOW * len(cameras))
        self._correction: dict[str | None, float] = {}  # second_fraction: per camera, or None for the fleet

    @property
    def mode(self) -> RoutingMode:
        return self.policy.mode

    def set_mode(self, mode: RoutingMode) -> None:
        self.policy.set_mode(mode)
        self._correction.clear()

    def decide(self, camera: str, escalate: bool = False) -> Decision:
        """The threshold (or forced exit) for ``camera``'s next frame.

        Args:
            camera: whose frame.
            escalate: track-aware routing asks for exit 2 (granted within the share; ignored by
                fixed thresholds and forced exits, which have no budget).
        """
        mode = self.policy.mode
        if mode.kind in ("first", "second", "threshold"):
            return self.policy.decide()
        state = self.policy.controller.decide() if mode.kind == "target_fps" else None
        share = state.second_fraction if state is not None else float(mode.value)
        spent = sum(self.escalated) / len(self.escalated) if self.escalated else 0.0
        granted = escalate and spent < share
        self.escalated.append(granted)
        asked = share - spent + self._correction.get(self._correction_key(camera), 0.0)
        threshold = self.threshold_for(camera, min(max(asked, 0.0), 1.0))
        route = "second" if granted else "auto"
        return Decision(threshold, route, None if state is None else replace(state, threshold=threshold))

    def threshold_for(self, camera: str, share: float) -> float:
        """Easiness threshold that sends ``share`` of the recent frames to exit 2 (``score < t``)."""
        if share <= 0.0:
            return 0.0
        if share >= 1.0:
            return 1.0 + 1e-6
        if self.allocation == "global":
            return self._global_threshold(camera, share)
        scores = self.per_camera[camera]
        if len(scores) < MIN_SCORES:
            scores = self.pooled  # a camera that has just started borrows the fleet's scores
        if len(scores) < MIN_SCORES:
            return self._threshold_without_scores(share)
        return scores.quantile(share)

    def _threshold_without_scores(self, share: float) -> float:
        return self.calibration.threshold_for(share) if self.calibration is not None else 0.5

    def _global_threshold(self, camera: str, share: float) -> float:
        """The pooled threshold under the per-camera cap, and ``camera``'s own cap on top of it."""
        if len(self.pooled) < MIN_SCORES:
            return self._threshold_without_scores(share)
        cap = GLOBAL_CAP * share
        if cap >= 1.0:
            return self.pooled.quantile(share)
        windows = [w for w in self.per_camera.values() if len(w)]
        threshold = capped_pool_threshold(windows, self.pooled.sorted, share, cap)
        own = self.per_camera[camera]
        return min(threshold, own.quantile(cap)) if len(own) >= MIN_SCORES else threshold

    def _correction_key(self, camera: str) -> str | None:
        return None if self.allocation == "global" else camera

    def rank(self, camera: str, score: float) -> float | None:
        """Where ``score`` falls among ``camera``'s recent scores, in [0, 1] (mid-rank for ties);
        None until the camera has :data:`MIN_SCORES` of them. What people see as the score."""
        window = self.per_camera[camera]
        return window.rank(score) if len(window) >= MIN_SCORES else None

    def observe(self, camera: str, exit_taken: int, score: float, frame_ms: float, cycle_ms: float | None = None,
                source_interval_ms: float | None = None) -> None:
        """Record one processed frame of ``camera`` (its score, and the engine's time on it).

        With a fixed ``second_fraction``, the share asked of the recent scores' quantiles is corrected
        by the exits actually taken: a quantile of *past* scores sends more (or fewer) than its share of
        the *next* frames to exit 2 whenever the scene drifts (on the four benchmark clips, 0.29-0.33
        instead of 0.25), so the gap is integrated, per camera or over the fleet as the allocation
        spends it. The rate controller needs none: it already steers by what the frames cost.
        """
        if self.policy.mode.kind == "second_fraction":
            key = self._correction_key(camera)
            gap = float(self.policy.mode.value) - (1.0 if exit_taken == 2 else 0.0)
            self._correction[key] = min(max(self._correction.get(key, 0.0) + SHARE_CORRECTION_GAIN * gap, -1.0), 1.0)
        self.pooled.append(score)
        self.per_camera[camera].append(score)
        self.policy.observe(exit_taken, score, frame_ms, cycle_ms, source_interval_ms)


def capped_pool_threshold(windows: Sequence[ScoreWindow], candidates: Sequence[float], share: float,
                          cap: float) -> float:
    """The highest threshold among the ascending ``candidates`` (the pooled recent scores) at which
    the frames below it in all ``windows`` together, each window counting at most ``cap`` of its own
    frames, are no more than ``share`` of all frames.

    Cameras whose frames the router finds hardest fill up to the cap; the rest of the budget goes to
    the hardest frames of the others. A binary search over the pooled scores, each step one bisection
    per camera: tens of microseconds for 16 cameras of 120 scores.
    """
    limits = [int(cap * len(w)) for w in windows]
    budget = share * sum(len(w) for w in windows)

    def spend(threshold: float) -> int:
        return sum(min(w.below(threshold), limit) for w, limit in zip(windows, limits))

    low, high = 0, len(candidates) - 1  # the lowest candidate spends (next to) nothing: the fallback
    if spend(candidates[high]) <= budget:
        return candidates[high]
    while high - low > 1:
        middle = (low + high) // 2
        if spend(candidates[middle]) <= budget:
            low = middle
        else:
            high = middle
    return candidates[low]
