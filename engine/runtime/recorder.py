"""Live-mode fan-out of captured frames, and the recorder that annotates frames for the writer."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import numpy as np

from engine.detections import Detections
from engine.render import draw_detections
from engine.runtime.frames import Frame, Result
from engine.runtime.queues import DropPolicy, put_blocking, put_end, put_latest
from engine.runtime.worker import Worker

logger = logging.getLogger(__name__)


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


class FanOut(Worker):
    """Live mode: every captured frame goes to the recorder; the engine only ever sees the newest.

    Frames the engine had no time for are dropped from its queue and counted here.
    """

    def __init__(self, source: queue.Queue, engine_input: queue.Queue, recorder_input: queue.Queue | None) -> None:
        self.source = source
        self.engine_input = engine_input
        self.recorder_input = recorder_input
        self.dropped = 0
        super().__init__("fanout")

    def _run(self) -> None:
        end = self._consume(self.source, self._forward)
        put_end(self.engine_input, end, self._stop, DropPolicy.LIVE)
        if self.recorder_input is not None:
            put_end(self.recorder_input, end, self._stop, DropPolicy.ALL_FRAMES)

    def _forward(self, frame: Frame) -> None:
        if self.recorder_input is not None:
            put_blocking(self.recorder_input, frame, self._stop)
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
        self.classes = classes
        self.frames_recorded = 0
        super().__init__("recorder")

    def _run(self) -> None:
        end = self._consume(self.input, self._annotate)
        put_end(self.writer_input, end, self._stop, DropPolicy.ALL_FRAMES)

    def _annotate(self, item: Frame | Result) -> None:
        frame, det, latency = self._pair(item)
        image = frame.image if det is None else draw_detections(
            frame.image, det.filter_classes(self.classes), latency_ms=latency)
        if put_blocking(self.writer_input, AnnotatedFrame(image, frame.pts), self._stop):
            self.frames_recorded += 1

    def _pair(self, item: Frame | Result) -> tuple[Frame, Detections | None, float | None]:
        if isinstance(item, Result):
            return item.frame, item.detections, item.latency_ms
        latest = self.latest.get()
        if latest is None or latest.frame.size != item.size:  # none yet, or the resolution changed
            return item, None, None
        return item, latest.detections, latest.latency_ms
