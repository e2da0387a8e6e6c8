"""Timestamp and retry bookkeeping for capture: one monotonic clock across reconnects.

Sources disagree about time: files start at arbitrary offsets, RTSP clocks start at a random
value on every connection, some frames carry no timestamp at all, and a reconnect restarts
the source clock. :class:`PtsClock` maps all of that onto one timeline in seconds that
starts at 0 and only moves forward, which is what downstream consumers (the writer's
container timestamps in particular) need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

#: Smallest step between two output timestamps; also the nudge for duplicate timestamps.
#: One millisecond is the resolution of Matroska timestamps.
MIN_STEP = 1e-3
#: A source timestamp that goes back by more than this is a clock reset, not jitter.
BACKWARD_RESET = 1.0
#: For live sources: a jump ahead of the wall clock by more than this is a clock reset.
FORWARD_RESET = 5.0
#: Most frames (and seconds) a live connection's first frames are held while they arrive in a burst.
MAX_HOLD_FRAMES = 32
MAX_HOLD_SECONDS = 2.0
#: A burst is over when no frame followed the last held one for this long (seconds): release
#: the held frames then, or a source that sends one frame and pauses would have it held for good.
HOLD_QUIET_SECONDS = 0.25


class PtsClock:
    """Converts per-connection source timestamps into one monotonic timeline.

    Args:
        live: live sources fall back to the wall clock for missing timestamps and for the gap
            across a reconnect; files fall back to ``1 / fps``.
        fps: nominal frame rate used to estimate missing timestamps in files.
    """

    def __init__(self, live: bool, fps: float | None = None) -> None:
        self._live = live
        self._frame_step = 1.0 / fps if fps and fps > 0 else 1.0 / 25.0
        self._offset: float | None = None
        self._last_out: float | None = None
        self._last_wall = 0.0

    def set_fps(self, fps: float | None) -> None:
        """Update the nominal rate (known once a connection is open)."""
        if fps and fps > 0:
            self._frame_step = 1.0 / fps

    def new_connection(self) -> None:
        """Forget the source clock: the next timestamp starts a new connection's clock."""
        self._offset = None

    def convert(self, source_pts: float | None, wall: float) -> float:
        """Map one frame's source timestamp (seconds, or None) onto the output timeline.

        Args:
            source_pts: the frame's timestamp on the source clock, None when missing.
            wall: ``time.time()`` when the frame was captured: its arrival, or for live
                connections the estimate of :class:`CaptureTimes` (the gap across a
                reconnect is measured between these).

        Returns:
            Seconds since the first frame, strictly greater than the previous result.
        """
        if self._last_out is None:
            out = 0.0
            if source_pts is not None:
                self._offset = -source_pts
        elif source_pts is None:
            out = self._last_out + self._estimated_step(wall)
        elif self._offset is None:
            out = self._continue_after_gap(self._last_out, source_pts, wall)
        else:
            out = source_pts + self._offset
            if self._is_clock_reset(self._last_out, out, wall):
                out = self._continue_after_gap(self._last_out, source_pts, wall)
            elif out < self._last_out + MIN_STEP:
                out = self._last_out + MIN_STEP
        self._last_out = out
        self._last_wall = wall
        return out

    def _estimated_step(self, wall: float) -> float:
        step = wall - self._last_wall if self._live else self._frame_step
        return max(step, MIN_STEP)

    def _continue_after_gap(self, last_out: float, source_pts: float, wall: float) -> float:
        # Re-anchor the source clock so that this frame follows the previous one by the
        # estimated gap (the real outage duration for live sources).
        out = last_out + self._estimated_step(wall)
        self._offset = out - source_pts
        return out

    def _is_clock_reset(self, last_out: float, out: float, wall: float) -> bool:
        if out < last_out - BACKWARD_RESET:
            return True
        return self._live and out - last_out > (wall - self._last_wall) + FORWARD_RESET


@dataclass(frozen=True)
class Timed(Generic[T]):
    """An item of a live connection with its arrival and its estimated capture time (both ``time.time()``)."""

    item: T
    source_pts: float | None
    arrival: float
    captured: float


class CaptureTimes(Generic[T]):
    """When each frame of one live connection was captured, on the wall clock.

    Opening an RTSP stream, FFmpeg reads about a second of packets to learn the stream's
    format and then hands them over at once: the first frames arrive up to a second after
    they were captured, a few milliseconds apart although their timestamps are a frame
    interval apart. Stamping the connection's first frame at its arrival would move its
    whole timeline late by that second, once per reconnect. The source clock is right; only
    its offset to the wall clock is unknown, and the frame that arrived soonest after its
    capture bounds it best: ``offset = min(arrival - pts)``. So the first frames are held
    until one arrives at the source's pace (its arrival gap at least half its timestamp
    gap: the burst is over), then all are released with ``captured = pts + offset``.

    Frames without a timestamp take the time one frame before the next timestamped one, or
    their arrival; a source whose first two frames both lack timestamps is not held at all.
    A source clock that goes back (a reset) re-anchors the offset on that frame's arrival.
    """

    def __init__(self, max_hold_frames: int = MAX_HOLD_FRAMES, max_hold_seconds: float = MAX_HOLD_SECONDS) -> None:
        self._max_frames = max_hold_frames
        self._max_seconds = max_hold_seconds
        self._held: list[Timed[T]] = []
        self._settled = False
        self._offset: float | None = None
        self._step: float | None = None  # smallest timestamp gap seen: the frame interval
        self._last: tuple[float, float] | None = None  # (pts, arrival) of the latest timestamped frame

    def add(self, item: T, source_pts: float | None, arrival: float) -> list[Timed[T]]:
        """Take one frame; returns the frames whose capture time is now known, in order."""
        paced = self._observe(source_pts, arrival)
        if self._settled:
            return [self._timed(item, source_pts, arrival)]
        self._held.append(Timed(item, source_pts, arrival, arrival))
        missing = sum(t.source_pts is None for t in self._held)
        if paced or missing >= 2 or len(self._held) >= self._max_frames \
                or arrival - self._held[0].arrival >= self._max_seconds:
            return self.flush()
        return []

    def release_at(self) -> float | None:
        """When the held frames are due for release without a next frame (``time.time()``); None when none are held."""
        return self._held[-1].arrival + HOLD_QUIET_SECONDS if self._held else None

    def flush(self) -> list[Timed[T]]:
        """Release the held frames with the best estimate so far (also at the end of a connection)."""
        self._settled = True
        released: list[Timed[T]] = []
        following: float | None = None  # capture time of the next held frame
        for held in reversed(self._held):
            if held.source_pts is not None and self._offset is not None:
                captured = held.source_pts + self._offset
            elif following is not None:
                captured = following - (self._step or MIN_STEP)
            else:
                captured = held.arrival
            following = min(captured, held.arrival)
            released.append(Timed(held.item, held.source_pts, held.arrival, following))
        self._held = []
        return released[::-1]

    def _observe(self, source_pts: float | None, arrival: float) -> bool:
        """Update the offset with one arrival; True when the frame came at the source's pace."""
        if source_pts is None:
            return False
        paced = False
        if self._last is not None:
            pts_gap, arrival_gap = source_pts - self._last[0], arrival - self._last[1]
            if pts_gap < 0:
                self._offset = None  # the source clock was reset: anchor on this frame
            elif pts_gap > 0:
                self._step = pts_gap if self._step is None else min(self._step, pts_gap)
                paced = arrival_gap >= 0.5 * pts_gap
        delay = arrival - source_pts
        self._offset = delay if self._offset is None else min(self._offset, delay)
        self._last = (source_pts, arrival)
        return paced

    def _timed(self, item: T, source_pts: float | None, arrival: float) -> Timed[T]:
        if source_pts is None or self._offset is None:
            return Timed(item, source_pts, arrival, arrival)
        return Timed(item, source_pts, arrival, min(source_pts + self._offset, arrival))


class Backoff:
    """Exponential retry delays: ``initial``, doubling up to ``maximum``; reset after success.

    Args:
        initial: first delay in seconds.
        maximum: cap on the delay in seconds.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 8.0) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial} and {maximum}")
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        """The delay to wait now; the following one will be twice as long (up to the cap)."""
        delay = self._next
        self._next = min(self._next * 2.0, self._maximum)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay (after a connection delivered frames)."""
        self._next = self._initial
