"""Timestamp and retry bookkeeping for capture: one monotonic clock across reconnects.

Sources disagree about time: files start at arbitrary offsets, RTSP clocks start at a random
value on every connection, some frames carry no timestamp at all, and a reconnect restarts
the source clock. :class:`PtsClock` maps all of that onto one timeline in seconds that
starts at 0 and only moves forward, which is what downstream consumers (the writer's
container timestamps in particular) need.
"""

from __future__ import annotations

#: Smallest step between two output timestamps; also the nudge for duplicate timestamps.
#: One millisecond is the resolution of Matroska timestamps.
MIN_STEP = 1e-3
#: A source timestamp that goes back by more than this is a clock reset, not jitter.
BACKWARD_RESET = 1.0
#: For live sources: a jump ahead of the wall clock by more than this is a clock reset.
FORWARD_RESET = 5.0


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
            wall: ``time.time()`` when the frame arrived.

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
