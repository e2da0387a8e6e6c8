"""Wiring of a multi-camera monitor: one capture (and recording) per camera, one shared engine.

Per camera: a :class:`~engine.runtime.capture.Capture` thread with its own reconnects and
watchdog; in live mode a :class:`~engine.runtime.recorder.FanOut` that sends every captured
frame to the recording and only the newest to the engine; a recording if asked for. All
cameras feed one :class:`~engine.runtime.shared_engine.SharedEngine`, whose results reach the
consumer through one bounded queue of ``(camera, item)`` pairs, each camera's results ending
with its own :class:`StreamEnd` (which carries the camera's failure, if any).

A camera whose source cannot exist at all (a missing file) fails alone: it is reported with
its name and the others go on.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import SourceError
from engine.model.calibration import Calibration
from engine.runtime.allocation import Allocation, Allocator
from engine.runtime.capture import Capture, CaptureStats
from engine.runtime.monitor_config import CameraSettings
from engine.runtime.outputs import QueueOutput, ResultOutput
from engine.runtime.queues import DropPolicy
from engine.runtime.recorder import FanOut, LatestResult, RecordingTap
from engine.runtime.recording import Recording, join_or_stop
from engine.runtime.routing import RoutingMode
from engine.runtime.shared_engine import EngineStats, Lane, SharedEngine
from engine.tracking.tracker import lane_tracking

if TYPE_CHECKING:
    from engine.model.predictor import Predictor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraStats:
    """What a camera did so far (the summary and the metrics read this)."""

    name: str
    capture: CaptureStats
    lane: EngineStats
    frames_dropped: int
    frames_recorded: int
    failure: str | None

    @property
    def state(self) -> str:
        if self.failure is not None:
            return "failed"
        return self.capture.state


class CameraFeed:
    """One camera's capture side: the capture, the live fan-out and the recording.

    Raises nothing for a source that cannot exist: the feed is then *failed* from the start
    (:attr:`failure`) and takes no part in the run.
    """

    def __init__(self, settings: CameraSettings, prepare: Callable[[np.ndarray], object] | None = None) -> None:
        self.settings = settings
        self.failure: str | None = None
        self._prepare = prepare
        self._lane: Lane | None = None
        self.latest = LatestResult()
        self.tap = RecordingTap()
        self.fanout: FanOut | None = None
        self.recording: Recording | None = None
        try:
            self.capture: Capture | None = Capture(
                settings.source, realtime=settings.realtime, stall_timeout=settings.stall_timeout,
                max_reconnects=settings.max_reconnects, loop=settings.loop, name=settings.name,
                prepare=self._prepare_if_wanted if prepare is not None else None)
        except SourceError as exc:
            self.capture = None
            self.failure = str(exc)
            return
        self.live = self.capture.policy is DropPolicy.LIVE
        if self.live:
            self.engine_input: queue.Queue = queue.Queue(maxsize=1)
            self.fanout = FanOut(self.capture.output, self.engine_input, self.tap)
        else:
            self.engine_input = self.capture.output
        if settings.record:
            self.recording = Recording(settings.record, self.latest, settings.classes)

    @property
    def name(self) -> str:
        return self.settings.name

    def lane(self, consumer: ResultOutput) -> Lane:
        """The engine's view of this camera; its results go to ``consumer`` too."""
        outputs: list[ResultOutput] = [self.latest, consumer]
        if not self.live:
            outputs.append(self.tap)  # all-frames recordings get each frame with its own detections
        settings = self.settings
        tracking = lane_tracking(settings.track, settings.tracker, settings.zones)
        self._lane = Lane(self.name, self.engine_input, outputs, live=self.live, max_fps=settings.fps,
                          tracking=tracking, track_routing=settings.track_routing)
        return self._lane

    def _prepare_if_wanted(self, image: np.ndarray) -> object:
        """The capture thread's hook: prepare ``image`` for the network only where the engine may
        take it (a camera capped below its source rate skips most frames; see
        :meth:`Lane.wants_prepared`)."""
        lane = self._lane
        if lane is not None and not lane.wants_prepared(time.perf_counter()):
            return None
        return self._prepare(image)

    def start_recording(self) -> None:
        """Open the recording (fails here, with one line, when the path cannot be written)."""
        if self.recording is not None:
            self.recording.start()
            self.tap.attach(self.recording.input)

    def start_capture(self) -> None:
        for worker in (self.fanout, self.capture):
            if worker is not None:
                worker.start()

    def stop(self) -> None:
        if self.capture is not None:
            self.capture.stop()

    def join(self, timeout: float) -> bool:
        ok = all([join_or_stop(w, timeout) for w in (self.capture, self.fanout) if w is not None])
        return ok

    def join_recording(self, timeout: float) -> bool:
        return self.recording.join(timeout) if self.recording is not None else True


class Monitor:
    """Start, stop and read a multi-camera run.

    Args:
        cameras: the cameras' settings.
        predictor: the model and its backend (used by the engine thread only).
        mode: the routing mode; ``target_fps`` is the total over all cameras.
        allocation: ``global`` or ``per-camera``.
        calibration: the model's calibration, if any.
        results_queue: capacity of :attr:`results`.
        max_batch: most cameras' frames per model call (see :class:`SharedEngine`).
    """

    def __init__(self, cameras: Sequence[CameraSettings], predictor: Predictor, mode: RoutingMode,
                 allocation: Allocation = "global", calibration: Calibration | None = None,
                 results_queue: int = 64, max_batch: int = 1) -> None:
        self.feeds = [CameraFeed(settings, predictor.capture_prepare) for settings in cameras]
        for feed in self.feeds:
            if feed.failure is not None:
                logger.warning("%s: %s", feed.name, feed.failure)
        self.results: queue.Queue = queue.Queue(maxsize=results_queue)
        self.running = [feed for feed in self.feeds if feed.failure is None]
        self._consumers = {feed.name: QueueOutput(self.results, DropPolicy.ALL_FRAMES, tag=feed.name)
                           for feed in self.running}
        lanes = [feed.lane(self._consumers[feed.name]) for feed in self.running]
        names = [feed.name for feed in self.running] or ["-"]
        self.allocator = Allocator(mode, allocation, names, calibration)
        self.engine = SharedEngine(predictor, lanes, self.allocator, max_batch=max_batch)
        self._started = False

    @property
    def camera_names(self) -> list[str]:
        return [feed.name for feed in self.feeds]

    def start(self) -> None:
        """Open every recording first (a bad path fails before anything runs), then run."""
        for feed in self.running:
            feed.start_recording()
        self.engine.start()
        for feed in self.running:
            feed.start_capture()
        self._started = True

    def set_mode(self, mode: RoutingMode) -> None:
        self.engine.set_mode(mode)

    def stop(self) -> None:
        """Ask every capture to finish; the engine and the recordings follow their ends."""
        for feed in self.running:
            feed.stop()

    def join(self, timeout: float = 10.0) -> bool:
        if not self._started:
            return True
        ok = all([feed.join(timeout) for feed in self.running])
        ok = join_or_stop(self.engine, timeout) and ok
        return all([feed.join_recording(timeout) for feed in self.running]) and ok

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop and join. A consumer that stops reading results must call this."""
        self.stop()
        for consumer in self._consumers.values():
            consumer.abandon()
        _drain(self.results)
        return self.join(timeout)

    def stats(self, name: str) -> CameraStats:
        feed = next(f for f in self.feeds if f.name == name)
        if feed.capture is None:
            return CameraStats(name, CaptureStats(state="failed", last_error=feed.failure), EngineStats(), 0, 0,
                               feed.failure)
        capture = feed.capture.stats
        lane = self.engine.lane_stats(name)
        dropped = capture.frames_dropped + (feed.fanout.dropped if feed.fanout else 0) + lane.frames_skipped
        recorded = feed.recording.writer.stats.frames_written if feed.recording is not None else 0
        return CameraStats(name, capture, lane, dropped, recorded, lane.error)


def _drain(target: queue.Queue) -> None:
    try:
        while True:
            target.get_nowait()
    except queue.Empty:
        pass
