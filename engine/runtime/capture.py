"""The capture worker: owns a video source and turns it into a queue of :class:`Frame` items.

One :class:`Capture` thread supervises the source. The blocking I/O of each connection runs
on a separate, abandonable :class:`ReaderThread`; the supervisor waits for its events with a
deadline (the watchdog), stamps frames onto one monotonic timeline, applies the drop policy,
and reconnects live sources with exponential backoff. The stream always ends with exactly
one :class:`StreamEnd` item in :attr:`Capture.output`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.errors import SourceError
from engine.runtime.frames import Frame
from engine.runtime.queues import POLL_INTERVAL, DropPolicy, StreamEnd, get_item, put_blocking, put_end, put_latest
from engine.runtime.reader_thread import Ended, Failed, Opened, ReaderEvent, ReaderThread
from engine.runtime.readers import RawFrame, make_reader
from engine.runtime.sources import SourceInfo, SourceSpec, parse_source
from engine.runtime.timeline import Backoff, CaptureTimes, PtsClock, Timed
from engine.runtime.worker import Worker

logger = logging.getLogger(__name__)

#: A realtime file that falls further behind its own clock than this is re-anchored instead of
#: being played fast to catch up.
PACING_SLACK = 0.5
_reader_ids = itertools.count()
#: What the watchdog returns when a short wait (not the stall timeout) ran out.
_QUIET = Failed(SourceError("quiet"))


@dataclass(frozen=True)
class CaptureStats:
    """A consistent snapshot of a capture worker's counters.

    Attributes:
        state: ``"connecting"``, ``"live"``, ``"paused"``, ``"reconnecting"``, ``"eof"``, ``"failed"`` or
            ``"stopped"``.
        frames_read: frames decoded from the source, including dropped ones.
        frames_dropped: frames discarded by the LIVE policy because the consumer was behind.
        reconnects: reconnection attempts so far.
        last_error: the most recent error message, if any.
        fps: the source's nominal frame rate, when it declares one.
        width: width of the latest frame (0 before the first one).
        height: height of the latest frame.
        next_retry_in: seconds until the next reconnection attempt, while waiting for one.
        loops: completed passes over a looping file.
    """

    state: str = "connecting"
    frames_read: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    last_error: str | None = None
    fps: float | None = None
    width: int = 0
    height: int = 0
    next_retry_in: float | None = None
    loops: int = 0


@dataclass
class _Outcome:
    """How one connection ended."""

    delivered: int = 0
    stopped: bool = False
    error: SourceError | None = None
    damage: SourceError | None = None


class Capture(Worker):
    """Capture worker thread for files, image folders, cameras and network streams.

    Args:
        source: what to read: a path, an image folder, a camera index or device, or a URL.
        policy: drop policy of :attr:`output`; defaults to LIVE for live sources and for
            ``realtime`` files, ALL_FRAMES otherwise.
        realtime: play files and image folders at their native rate instead of as fast as
            the consumer reads.
        queue_size: capacity of :attr:`output`.
        open_timeout: seconds a connection may take to open before it counts as failed.
        stall_timeout: seconds without a frame after which a connection is abandoned.
        max_reconnects: for live sources, how many reconnection attempts in a row may fail to
            deliver a frame before capture gives up; None retries forever. Files never reconnect.
        backoff_initial: first delay before reconnecting, in seconds; doubles on each failure.
        backoff_max: cap on the reconnection delay, in seconds.
        folder_fps: playback rate of image folders (also sets their timestamps).
        loop: start files and image folders over at their end, on one continuous timeline
            (the recording and the rate controller carry on as if the video were longer).
        name: the camera's name, put before every log line of this capture (several cameras
            log to one stream in a monitor).
        prepare: run on each frame's image as it is delivered; the result travels with the
            frame as :attr:`Frame.network_input` (the detector's letterbox, made here so that
            the engine thread does not).

    Raises:
        SourceError: at once for sources that cannot exist (see :func:`parse_source`).
    """

    def __init__(
        self,
        source: str | int | os.PathLike[str],
        *,
        policy: DropPolicy | None = None,
        realtime: bool = False,
        queue_size: int = 4,
        open_timeout: float = 10.0,
        stall_timeout: float = 5.0,
        max_reconnects: int | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        folder_fps: float = 25.0,
        loop: bool = False,
        name: str | None = None,
        prepare: Callable[[np.ndarray], object] | None = None,
    ) -> None:
        if queue_size < 1 or open_timeout <= 0 or stall_timeout <= 0 or folder_fps <= 0:
            raise ValueError("queue_size, open_timeout, stall_timeout and folder_fps must be positive")
        if max_reconnects is not None and max_reconnects < 0:
            raise ValueError(f"max_reconnects must be None or >= 0, got {max_reconnects}")
        self.spec: SourceSpec = parse_source(source)
        self._log = logging.LoggerAdapter(logger) if name is None else _Prefixed(logger, name)
        self.policy = policy or (DropPolicy.LIVE if self.spec.is_live or realtime else DropPolicy.ALL_FRAMES)
        self.output: queue.Queue[Frame | StreamEnd] = queue.Queue(maxsize=queue_size)
        self._realtime = realtime and not self.spec.is_live
        self._open_timeout = open_timeout
        self._stall_timeout = stall_timeout
        self._max_reconnects = max_reconnects
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._folder_fps = folder_fps
        self._prepare = prepare
        self.set_loop(loop)
        self._playing = threading.Event()
        self._playing.set()
        self._clock = PtsClock(live=self.spec.is_live)
        self._pace_origin: float | None = None
        self._lock = threading.Lock()
        self._stats = CaptureStats()
        self._retry_at: float | None = None
        super().__init__(f"capture:{self.spec.display}")

    @property
    def stats(self) -> CaptureStats:
        """Counters and state, safe to read from any thread."""
        with self._lock:
            retry_at = self._retry_at
            stats = self._stats
        if retry_at is not None:
            stats = dataclasses.replace(stats, next_retry_in=max(0.0, retry_at - time.monotonic()))
        return stats

    def start(self) -> None:
        """Start capturing in the background."""
        self._log.info("capture %s: starting (%s policy)", self.spec.display, self.policy.value)
        super().start()

    def stop(self) -> None:
        """Ask the worker to finish; it ends the output with ``StreamEnd("stopped")``."""
        self._stop.set()

    def set_loop(self, enabled: bool) -> None:
        """Loop a file from its next end on (no effect on live sources)."""
        self._loop = enabled and not self.spec.is_live

    @property
    def can_pause(self) -> bool:
        """Files and image folders hold their position; a live source cannot be held."""
        return not self.spec.is_live

    def pause(self) -> bool:
        """Hold a file at its current frame (no reading, no pacing debt); False for live sources."""
        if not self.can_pause:
            return False
        self._playing.clear()
        return True

    def resume(self) -> None:
        """Continue after :meth:`pause`; realtime playback re-anchors instead of catching up."""
        self._playing.set()

    @property
    def paused(self) -> bool:
        return not self._playing.is_set()

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._stats = dataclasses.replace(self._stats, **changes)

    def _run(self) -> None:
        try:
            end = self._supervise()
        except Exception as exc:
            # A bug here must not leave the consumer waiting for a sentinel that never comes.
            self._log.exception("capture %s: unexpected failure", self.spec.display)
            end = StreamEnd("failed", SourceError(f"{self.spec.display}: capture failed ({exc})"))
        error_text = str(end.error) if end.error else self.stats.last_error
        self._update(state=end.reason, last_error=error_text)
        with self._lock:
            self._retry_at = None
        if end.error is not None:
            self._log.warning("capture: %s", end.error)
        self._log.info("capture %s: finished (%s)", self.spec.display, end.reason)
        dropped = put_end(self.output, end, self._stop, self.policy)
        if not self._stop.is_set():
            # After stop() the consumer no longer reads: frames still queued were in flight
            # when it stopped (at --max-frames, say), not dropped for being late.
            self._count_dropped(dropped)

    def _supervise(self) -> StreamEnd:
        """Run connections until the stream ends, fails for good, or stop() is called."""
        failures_in_row = 0
        source_id = 0
        while True:
            outcome = self._run_connection(source_id)
            if outcome.stopped:
                return StreamEnd("stopped")
            if outcome.error is not None:
                self._update(last_error=str(outcome.error))
            if not self.spec.is_live:
                if self._loop and outcome.error is None and outcome.delivered:
                    self._update(loops=self.stats.loops + 1)
                    source_id += 1
                    continue
                return self._file_end(outcome)
            if outcome.delivered:
                failures_in_row = 0
                self._backoff.reset()
            elif source_id == 0 and not self.spec.is_network:
                # A local camera that cannot be opened at all is a wrong setting, not an outage.
                return StreamEnd("failed", outcome.error)
            if self._max_reconnects is not None and failures_in_row >= self._max_reconnects:
                return self._give_up(outcome)
            failures_in_row += 1
            if not self._wait_before_retry(outcome, failures_in_row):
                return StreamEnd("stopped")
            source_id += 1

    def _file_end(self, outcome: _Outcome) -> StreamEnd:
        if outcome.error is not None:
            return StreamEnd("failed", outcome.error)
        if outcome.delivered == 0:
            return StreamEnd("failed", SourceError(f"{self.spec.display}: contains no decodable video frames"))
        if outcome.damage is not None:
            self._update(last_error=str(outcome.damage))
        return StreamEnd("eof", outcome.damage)

    def _give_up(self, outcome: _Outcome) -> StreamEnd:
        if outcome.error is None:
            return StreamEnd("eof")
        attempts = self.stats.reconnects
        suffix = f" (gave up after {attempts} reconnect{'s' if attempts != 1 else ''})" if attempts else ""
        return StreamEnd("failed", SourceError(f"{outcome.error}{suffix}"))

    def _wait_before_retry(self, outcome: _Outcome, attempt: int) -> bool:
        """Sleep the backoff delay; False when stop() came first."""
        delay = self._backoff.next_delay()
        reason = str(outcome.error) if outcome.error else f"{self.spec.display}: stream ended"
        limit = "" if self._max_reconnects is None else f"/{self._max_reconnects}"
        self._log.warning("capture: %s; reconnecting in %.1f s (attempt %d%s)", reason, delay, attempt, limit)
        with self._lock:
            self._retry_at = time.monotonic() + delay
        self._update(state="reconnecting")
        if self._stop.wait(delay):
            return False
        with self._lock:
            self._retry_at = None
            self._stats = dataclasses.replace(self._stats, reconnects=self._stats.reconnects + 1)
        return True

    def _run_connection(self, source_id: int) -> _Outcome:
        """Open one connection and forward its frames until it ends, breaks or stalls."""
        reader = make_reader(
            self.spec, open_timeout=self._open_timeout, read_timeout=self._stall_timeout, folder_fps=self._folder_fps
        )
        worker = ReaderThread(reader, self.spec.display, name=f"capture-reader-{next(_reader_ids)}")
        self._clock.new_connection()
        self._pace_origin = None
        worker.start()
        outcome = _Outcome()
        try:
            self._pump(worker, outcome, source_id)
        finally:
            worker.abandon()
        return outcome

    def _pump(self, worker: ReaderThread, outcome: _Outcome, source_id: int) -> None:
        timeout, what = self._open_timeout, f"no answer within {self._open_timeout:g} s"
        # Live frames are stamped by when they were captured, not when they arrived (see CaptureTimes).
        times: CaptureTimes[RawFrame] | None = CaptureTimes() if self.spec.is_live else None
        while True:
            release_at = times.release_at() if times is not None else None
            if release_at is not None:
                event = self._await(worker, min(timeout, max(0.0, release_at - time.time())), what, quiet=True)
                if event is _QUIET:  # the burst is over: what is held goes out now
                    if not self._deliver_all(times.flush(), outcome, source_id, live=True):
                        return
                    continue
            else:
                event = self._await(worker, timeout, what)
            if event is None:
                outcome.stopped = True
                return
            if isinstance(event, Opened):
                self._on_opened(event.info)
            elif isinstance(event, RawFrame):
                live = times is not None
                ready = times.add(event, event.pts, time.time()) if live else [Timed(event, event.pts, 0.0, 0.0)]
                if not self._deliver_all(ready, outcome, source_id, live=live):
                    return
            else:
                # The frames still held belong to this connection's recording, whatever ended it.
                if times is not None and not self._deliver_all(times.flush(), outcome, source_id, live=True):
                    return
                if isinstance(event, Ended):
                    outcome.damage = event.damage
                else:
                    outcome.error = event.error
                return
            timeout, what = self._stall_timeout, f"no frame for {self._stall_timeout:g} s (stream stalled)"

    def _deliver_all(self, ready: list[Timed[RawFrame]], outcome: _Outcome, source_id: int, live: bool) -> bool:
        """Deliver and count frames (with their capture times when ``live``); False when stopped."""
        for timed in ready:
            if not self._deliver(timed.item, source_id, first=outcome.delivered == 0, timed=timed if live else None):
                outcome.stopped = True
                return False
            outcome.delivered += 1
        return True

    def _await(self, worker: ReaderThread, timeout: float, what: str, quiet: bool = False) -> ReaderEvent | None:
        """The watchdog: the reader's next event, ``Failed`` after ``timeout``, None on stop().

        With ``quiet``, the timeout is only a pause to act on (``_QUIET`` is returned instead).
        """
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and quiet:
                return _QUIET
            if remaining <= 0:
                self._log.warning("capture %s: %s; abandoning the connection", self.spec.display, what)
                return Failed(SourceError(f"{self.spec.display}: {what}"))
            event = get_item(worker.events, min(POLL_INTERVAL, remaining))
            if event is not None:
                return event
        return None

    def _on_opened(self, info: SourceInfo) -> None:
        self._clock.set_fps(info.fps)
        self._update(fps=info.fps)
        self._log.info(
            "capture %s: opened (%dx%d, %s fps, %s)",
            self.spec.display,
            info.width,
            info.height,
            f"{info.fps:.3g}" if info.fps else "unknown",
            info.codec or self.spec.kind.value,
        )

    def _deliver(self, raw: RawFrame, source_id: int, first: bool, timed: Timed[RawFrame] | None = None) -> bool:
        """Stamp and queue one frame according to the policy; False when stop() interrupted.

        ``timed`` carries a live frame's arrival and estimated capture time; other frames
        arrive now (after any pause: a pause is not capture latency).
        """
        if not self._wait_while_paused():
            return False
        wall = time.time() if timed is None else timed.arrival
        pts = self._clock.convert(raw.pts, wall if timed is None else timed.captured)
        height, width = raw.image.shape[:2]
        with self._lock:
            index = self._stats.frames_read
            self._stats = dataclasses.replace(
                self._stats, frames_read=index + 1, width=width, height=height, state="live"
            )
        if first and source_id > 0:
            self._log.info("capture %s: reconnected, receiving %dx%d", self.spec.display, width, height)
        if self._realtime:
            if not self._pace(pts):
                return False
            wall = time.time()  # a paced file's frame is captured when its time comes, not when read
        prepared = self._prepare(raw.image) if self._prepare is not None else None
        frame = Frame(index=index, pts=pts, wall_time=wall, image=raw.image, source_id=source_id,
                      network_input=prepared)
        if self.policy is DropPolicy.ALL_FRAMES:
            return put_blocking(self.output, frame, self._stop)
        self._count_dropped(put_latest(self.output, frame))
        return True

    def _wait_while_paused(self) -> bool:
        """Block while paused; False when stop() came first."""
        if self._playing.is_set():
            return True
        self._update(state="paused")
        while not self._playing.wait(POLL_INTERVAL):
            if self._stop.is_set():
                return False
        self._pace_origin = None  # resume at the current frame, not where the clock would be
        self._update(state="live")
        return not self._stop.is_set()

    def _count_dropped(self, dropped: int) -> None:
        if dropped:
            with self._lock:
                self._stats = dataclasses.replace(self._stats, frames_dropped=self._stats.frames_dropped + dropped)

    def _pace(self, pts: float) -> bool:
        """Hold a realtime file's frame until its time comes; False when stop() interrupted."""
        now = time.monotonic()
        if self._pace_origin is None or now - (self._pace_origin + pts) > PACING_SLACK:
            self._pace_origin = now - pts
        delay = self._pace_origin + pts - now
        return delay <= 0 or not self._stop.wait(delay)


class _Prefixed(logging.LoggerAdapter):
    """Log lines of one camera: ``gate: capture rtsp://...: opened``."""

    def __init__(self, base: logging.Logger, name: str) -> None:
        super().__init__(base, {"camera": name})
        self.prefix = f"{name}: "

    def process(self, msg, kwargs):
        return self.prefix + str(msg), kwargs


def probe_source(
    source: str | int | os.PathLike[str], *, timeout: float = 10.0, folder_fps: float = 25.0
) -> SourceInfo:
    """Open a source, decode its first frame, and describe it; fails fast on bad input.

    Args:
        source: anything :class:`Capture` accepts.
        timeout: seconds allowed for opening and for the first frame together.
        folder_fps: playback rate assumed for image folders.

    Raises:
        SourceError: the source is missing, unreadable, has no video, or does not answer.
    """
    spec = parse_source(source)
    reader = make_reader(spec, open_timeout=timeout, read_timeout=timeout, folder_fps=folder_fps)
    worker = ReaderThread(reader, spec.display, name=f"probe-reader-{next(_reader_ids)}")
    worker.start()
    deadline = time.monotonic() + timeout
    info: SourceInfo | None = None
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            event = get_item(worker.events, remaining)
            if isinstance(event, Opened):
                info = event.info
            elif isinstance(event, RawFrame) and info is not None:
                height, width = event.image.shape[:2]
                return dataclasses.replace(info, width=width, height=height)
            elif isinstance(event, Failed):
                raise event.error
            elif isinstance(event, Ended):
                raise SourceError(f"{spec.display}: contains no decodable video frames")
        raise SourceError(f"{spec.display}: no frame within {timeout:g} s")
    finally:
        worker.abandon()
