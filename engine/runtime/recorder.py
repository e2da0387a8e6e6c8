"""Live-mode fan-out of captured frames, and the recorder that annotates frames for the writer."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from engine.detections import Detections
from engine.render import draw_detections
from engine.runtime.frames import Frame, Result
from engine.runtime.queues import POLL_INTERVAL, DropPolicy, StreamEnd, put_blocking, put_end, put_latest
from engine.runtime.worker import Worker

logger = logging.getLogger(__name__)

#: How long ending a recording waits for its recorder to make room before dropping frames.
END_WAIT_SECONDS = 5.0


class LatestResult:
    """The most recent detections, shared between the engine's consumer and the recorder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._result: Result | None = None

    def set(self, result: Result) -> None:
        with self._lock:
            self._result = result

    def get(self) -> Result | None:
        with self._lock:
            return self._result

    def offer(self, result: Result, stop: threading.Event) -> None:
        """The :class:`~engine.runtime.outputs.ResultOutput` side: keep ``result`` as the newest."""
        self.set(result)

    def close(self, end: StreamEnd) -> None:
        """Nothing to end: the last result stays readable."""


class RecordingTap:
    """The socket a recording plugs into while the pipeline runs.

    The stage that feeds recordings (the fan-out in live mode, the engine in all-frames mode)
    offers every item here; without a recording attached the offer costs a lock and nothing
    else. Attaching and detaching happen on other threads (the GUI's record toggle), so a
    detach waits for an offer in progress and then ends the detached queue itself: the
    recorder behind it always sees exactly one :class:`StreamEnd`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue | None = None
        self._closed: StreamEnd | None = None

    def attach(self, target: queue.Queue) -> None:
        """Send the next items to ``target``; ends it at once if the stream has already ended."""
        with self._lock:
            if self._closed is None:
                self._queue = target
                return
        _end_recording(target, self._closed)

    def detach(self, end: StreamEnd) -> None:
        """Stop feeding the current recording and end its queue with ``end``."""
        with self._lock:
            target, self._queue = self._queue, None
            if target is not None:
                _end_recording(target, end)

    def offer(self, item: Frame | Result, stop: threading.Event) -> None:
        """Hand ``item`` to the attached recording, waiting while it is behind (no drops)."""
        with self._lock:
            if self._queue is not None:
                put_blocking(self._queue, item, stop)

    def close(self, end: StreamEnd) -> None:
        """The stream ended: end the attached recording, and any attached later."""
        with self._lock:
            self._closed = end
            target, self._queue = self._queue, None
            if target is not None:
                _end_recording(target, end)


def _end_recording(target: queue.Queue, end: StreamEnd) -> None:
    """Queue ``end`` behind every frame; a recorder that stopped reading loses the oldest instead."""
    deadline = time.monotonic() + END_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            target.put(end, timeout=POLL_INTERVAL)
            return
        except queue.Full:
            continue
    put_latest(target, end)


class FanOut(Worker):
    """Live mode: every captured frame goes to the recording; the engine only ever sees the newest.

    Frames the engine had no time for are dropped from its queue and counted here.
    """

    def __init__(self, source: queue.Queue, engine_input: queue.Queue, tap: RecordingTap) -> None:
        self.source = source
        self.engine_input = engine_input
        self.tap = tap
        self.dropped = 0
        super().__init__("fanout")

    def _run(self) -> None:
        end = self._consume(self.source, self._forward)
        put_end(self.engine_input, end, self._stop, DropPolicy.LIVE)
        self.tap.close(end)

    def _forward(self, frame: Frame) -> None:
        self.tap.offer(frame, self._stop)
        self.dropped += put_latest(self.engine_input, frame)


@dataclass(frozen=True)
class AnnotatedFrame:
    """What the writer receives: the drawn picture at its source timestamp."""

    image: np.ndarray
    pts: float


class Recorder(Worker):
    """Draws detections on frames and hands them to the writer's input queue.

    Items are :class:`Result` (all-frames mode: each frame with its own detections) or
    :class:`Frame` (live mode: drawn with the most recent detections, so the recording keeps
    every captured frame at its own timestamp even when detection runs slower than the camera).
    """

    def __init__(self, input: queue.Queue, writer_input: queue.Queue, latest: LatestResult,
                 classes: tuple[str, ...] = ()) -> None:
        self.input = input
        self.writer_input = writer_input
        self.latest = latest
        self._classes = tuple(classes)  # replaced whole by set_classes; read once per frame
        self.frames_recorded = 0
        super().__init__("recorder")

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    def set_classes(self, classes: tuple[str, ...]) -> None:
        """Draw only these classes (all when empty) from the next frame on; safe from any thread."""
        self._classes = tuple(classes)  # one reference swap: the recorder sees the old or the new tuple

    def _run(self) -> None:
        end = self._consume(self.input, self._annotate)
        put_end(self.writer_input, end, self._stop, DropPolicy.ALL_FRAMES)

    def _annotate(self, item: Frame | Result) -> None:
        frame, det, latency = self._pair(item)
        image = frame.image if det is None else draw_detections(
            frame.image, det.filter_classes(self._classes), latency_ms=latency)
        if put_blocking(self.writer_input, AnnotatedFrame(image, frame.pts), self._stop):
            self.frames_recorded += 1

    def _pair(self, item: Frame | Result) -> tuple[Frame, Detections | None, float | None]:
        if isinstance(item, Result):
            return item.frame, item.detections, item.latency_ms
        latest = self.latest.get()
        if latest is None or latest.frame.size != item.size:  # none yet, or the resolution changed
            return item, None, None
        return item, latest.detections, latest.latency_ms
