"""What a camera's tracking adds to a processed frame (plain values; no tracking library imported)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ZoneKind = Literal["polygon", "line"]
ZoneEventKind = Literal["enter", "leave", "in", "out"]


@dataclass(frozen=True)
class ZoneEvent:
    """A tracked object entered or left a polygon zone, or crossed a counting line (``in``/``out``)."""

    zone: str
    event: ZoneEventKind
    track_id: int
    label: str


@dataclass(frozen=True)
class ZoneState:
    """A zone or line after one frame.

    Attributes:
        name: the zone's name.
        kind: ``polygon`` or ``line``.
        points: its vertices in image pixels.
        inside: polygon: tracked objects inside now, per class label.
        crossed_in, crossed_out: line: crossings so far in each direction.
    """

    name: str
    kind: ZoneKind
    points: tuple[tuple[float, float], ...]
    inside: dict[str, int] = field(default_factory=dict)
    crossed_in: int = 0
    crossed_out: int = 0

    def summary(self) -> str:
        """``gate: 2 star, 1 circle`` or ``door: in 3 · out 1``, as the GUI writes it."""
        if self.kind == "line":
            return f"{self.name}: in {self.crossed_in} · out {self.crossed_out}"
        counts = ", ".join(f"{n} {label}" for label, n in sorted(self.inside.items()) if n) or "empty"
        return f"{self.name}: {counts}"


@dataclass(frozen=True)
class TrackingUpdate:
    """The tracker's view of one processed frame, beside its detections' ``track_ids``.

    Attributes:
        ended: tracks the tracker gave up on at this frame (they will not come back).
        zone_events: enter/leave and line crossings at this frame.
        zones: every zone's state after this frame.
        churn: tracks were born or lost at this frame (what track-aware routing reads).
        tracker_ms: time spent tracking and counting this frame.
    """

    ended: tuple[int, ...] = ()
    zone_events: tuple[ZoneEvent, ...] = ()
    zones: tuple[ZoneState, ...] = ()
    churn: bool = False
    tracker_ms: float = 0.0
