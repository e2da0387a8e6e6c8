"""A camera's tracker (ByteTrack, :mod:`engine.tracking.byte_track`) with its track ends, and the lane's tracking step.

ByteTrack (Zhang et al., ECCV 2022) associates boxes by IoU with Kalman-predicted tracks, high
scores first, then the low-score boxes left over: the second pass is what keeps an object's
id while its score dips, as it does when a frame leaves through the weaker exit. Association
is class-agnostic, so an id also survives a head calling the same object by another class for
a frame; an object event reports the label seen most often.

The tracker is stepped once per *processed* frame (a live lane may skip frames), so its
``lost_frames`` count processed frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.tracking.byte_track import ByteTrack
from engine.tracking.state import TrackingUpdate
from engine.tracking.zones import ZoneCounter, ZoneSettings

if TYPE_CHECKING:
    from engine.detections import Detections


@dataclass(frozen=True)
class TrackerSettings:
    """ByteTrack's knobs, under our names.

    Attributes:
        activation_score: boxes at or above this score start and extend tracks (lower ones,
            down to 0.1, only extend them).
        lost_frames: processed frames a lost track is kept before it ends.
        match_cost: largest ``1 - IoU`` (fused with the score) accepted in the first association.
    """

    activation_score: float = 0.25
    lost_frames: int = 30
    match_cost: float = 0.8

    def __post_init__(self) -> None:
        if not (math.isfinite(self.activation_score) and 0 < self.activation_score < 1):
            raise ValueError(f"activation_score must be between 0 and 1, got {self.activation_score}")
        if self.lost_frames < 1:
            raise ValueError(f"lost_frames must be at least 1, got {self.lost_frames}")
        if not (math.isfinite(self.match_cost) and 0 < self.match_cost <= 1):
            raise ValueError(f"match_cost must be in (0, 1], got {self.match_cost}")


class ObjectTracker:
    """Attaches track ids to each frame's detections and says which tracks ended.

    Every detection stays in the output (the per-frame events and mAP see what the detector
    found); the ones no track claimed get id ``-1``.
    """

    def __init__(self, settings: TrackerSettings = TrackerSettings()) -> None:
        self._byte_track = ByteTrack(settings.activation_score, settings.lost_frames, settings.match_cost)
        self._open: set[int] = set()
        self._shown: set[int] = set()

    def update(self, det: Detections) -> tuple[Detections, tuple[int, ...], bool]:
        """Step the tracker with one frame.

        Returns:
            The detections with ``track_ids``; the tracks that ended (in id order); whether
            tracks were born or lost (shown at the previous frame, not at this one) at this frame.
        """
        ids = self._byte_track.update(det.boxes, det.scores)
        alive = self._byte_track.live_ids
        shown = {int(i) for i in ids if i >= 0}
        churn = bool(shown - self._open) or bool(self._shown - shown)
        self._shown = shown
        # A track shown once and then dropped by the tracker has ended, whether it was lost for
        # lost_frames frames or removed at once.
        ended = tuple(sorted(i for i in self._open | shown if i not in alive))
        self._open = (self._open | shown) - set(ended)
        return det.with_track_ids(ids), ended, churn

    @property
    def open_tracks(self) -> frozenset[int]:
        return frozenset(self._open)


class LaneTracking:
    """One camera's tracking step, run by the engine thread right after detection.

    Args:
        tracker: the tracker's settings.
        zones: the camera's zones and lines.
    """

    def __init__(self, tracker: TrackerSettings = TrackerSettings(), zones: tuple[ZoneSettings, ...] = ()) -> None:
        self.tracker = ObjectTracker(tracker)
        self.zones = ZoneCounter(zones) if zones else None
        self.churn = False  # the last frame had tracks born or lost

    def update(self, det: Detections, frame_size: tuple[int, int]) -> tuple[Detections, TrackingUpdate]:
        """Track one frame's detections and count them in the zones.

        Raises:
            UserError: a zone does not fit the frame.
        """
        start = time.perf_counter()
        det, ended, self.churn = self.tracker.update(det)
        events, states = self.zones.update(det, frame_size, ended) if self.zones is not None else ((), ())
        elapsed = (time.perf_counter() - start) * 1000
        return det, TrackingUpdate(ended, events, states, self.churn, elapsed)


def lane_tracking(track: bool, tracker: TrackerSettings, zones: tuple[ZoneSettings, ...]) -> LaneTracking | None:
    """A camera's tracking step from its settings (None when it does not track).

    Raises:
        UserError: zones without tracking (zones count tracked objects).
    """
    if not track:
        if zones:
            raise UserError(f"zone {zones[0].name}: zones count tracked objects; turn tracking on")
        return None
    return LaneTracking(tracker, zones)
