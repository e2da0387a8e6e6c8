"""Immutable items that travel between the runtime threads (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.detections import Detections
from engine.tracking.state import TrackingUpdate


@dataclass(frozen=True)
class Frame:
    """One decoded picture.

    Attributes:
        index: position in the source, counting from 0 (counts every decoded frame, also dropped ones).
        pts: presentation time in seconds from the source's start (source clock, not wall clock).
        wall_time: ``time.time()`` when the frame was captured.
        image: ``H x W x 3`` uint8 RGB, C-contiguous.
        source_id: which connection produced it; increases by one on each reconnect.
        network_input: the image already fitted to the detector's input on the capture thread
            (what :meth:`~engine.model.predictor.Predictor.prepare` returns), or None; only the
            engine reads it.
    """

    index: int
    pts: float
    wall_time: float
    image: np.ndarray
    source_id: int = 0
    network_input: object | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class Result:
    """A processed frame: the picture, what the detector found in it, and (when the camera
    tracks) what its tracker made of that; the detections then carry ``track_ids``."""

    frame: Frame
    detections: Detections
    latency_ms: float = 0.0
    extra: dict = field(default_factory=dict)
    tracking: TrackingUpdate | None = None
