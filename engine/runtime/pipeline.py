"""Wiring of the single-stream runtime: capture -> (fan-out) -> engine -> results, and the recorder.

It is the one-camera case of the multi-camera machinery: the same
:class:`~engine.runtime.shared_engine.SharedEngine` with one lane, whose outputs are the
results queue, the newest-result holder and (all-frames mode) the recording tap.

All-frames mode (files by default): every frame is processed in order with back-pressure, and
the recording gets each frame with its own detections. Live mode (cameras, streams, files with
``realtime``): the engine always takes the newest frame; the recording gets every captured
frame drawn with the latest detections. The GUI and the CLI are both just consumers of
:attr:`Pipeline.results`.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.model.calibration import Calibration
from engine.runtime.allocation import Allocator
from engine.runtime.capture import Capture, CaptureStats
from engine.runtime.outputs import QueueOutput, ResultOutput
from engine.runtime.queues import DropPolicy, StreamEnd
from engine.runtime.recorder import FanOut, LatestResult, RecordingTap
from engine.runtime.recording import Recording, join_or_stop
from engine.runtime.routing import RoutingMode
from engine.runtime.shared_engine import EngineStats, Lane, SharedEngine
from engine.runtime.writer import Writer, WriterStats
from engine.tracking.tracker import TrackerSettings, lane_tracking
from engine.tracking.zones import ZoneSettings

if TYPE_CHECKING:  # the predictor brings torch; torch-free importers (the GUI) only need the types
    from engine.model.predictor import Predictor

logger = logging.getLogger(__name__)

#: The one lane's name (it appears in nothing the user sees).
LANE = "stream"


@dataclass(frozen=True)
class PipelineConfig:
    """Runtime settings (the ``run`` command's options, the GUI's source and record choices)."""

    source: str
    mode: RoutingMode
    realtime: bool = False
    record: str | None = None
    classes: tuple[str, ...] = ()
    stall_timeout: float = 5.0
    max_reconnects: int | None = None
    capture_queue: int = 4
    results_queue: int = 8
    live_results: bool = False  # consumer only wants the newest result (GUI)
    loop: bool = False  # files start over at their end (the GUI's demo)
    max_frames: int | None = None  # process this many frames, then end ("limit")
    track: bool = True  # attach track ids (and count zones) right after detection
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    zones: tuple[ZoneSettings, ...] = ()
    track_routing: bool = False  # escalate frames after track births or losses (an experiment)


@dataclass(frozen=True)
class PipelineStats:
    capture: CaptureStats
    engine: EngineStats
    writer: WriterStats | None
    frames_dropped: int
    frames_recorded: int
    paused: bool = False


class Pipeline:
    """Start, stop, pause, change routing or recording while running, read results and stats."""

    def __init__(self, config: PipelineConfig, predictor: Predictor, calibration: Calibration | None = None) -> None:
        self.config = config
        self.capture = Capture(config.source, realtime=config.realtime, queue_size=config.capture_queue,
                               stall_timeout=config.stall_timeout, max_reconnects=config.max_reconnects,
                               loop=config.loop, prepare=predictor.capture_prepare)
        self.live = self.capture.policy is DropPolicy.LIVE
        self.results: queue.Queue = queue.Queue(maxsize=config.results_queue)
        self.latest = LatestResult()
        # Live mode records every captured frame (from the fan-out); all-frames mode records each
        # processed frame with its own detections (from the engine).
        self.tap = RecordingTap()
        result_policy = DropPolicy.LIVE if config.live_results else DropPolicy.ALL_FRAMES
        if self.live:
            engine_input: queue.Queue = queue.Queue(maxsize=1)
            self.fanout: FanOut | None = FanOut(self.capture.output, engine_input, self.tap)
        else:
            engine_input = self.capture.output
            self.fanout = None
        self._results_output = QueueOutput(self.results, result_policy)
        outputs: list[ResultOutput] = [self.latest, self._results_output]
        if not self.live:
            outputs.append(self.tap)
        lane = Lane(LANE, engine_input, outputs, live=self.live, max_frames=config.max_frames,
                    tracking=lane_tracking(config.track, config.tracker, config.zones),
                    track_routing=config.track_routing)
        self.engine = SharedEngine(predictor, [lane], Allocator(config.mode, "global", [LANE], calibration))
        self.classes = config.classes
        self._recording = Recording(config.record, self.latest, config.classes) if config.record else None
        self._finished_recordings: list[Recording] = []
        self._started = False
        self._lock = threading.Lock()

    @property
    def writer(self) -> Writer | None:
        """The writer of the current (or, once stopped, the last) recording."""
        with self._lock:
            if self._recording is not None:
                return self._recording.writer
            return self._finished_recordings[-1].writer if self._finished_recordings else None

    @property
    def recording(self) -> bool:
        with self._lock:
            return self._recording is not None

    def start(self) -> None:
        """Start every worker (the recording first, so an unwritable path fails before capture opens)."""
        if self._recording is not None:
            self._recording.start()
            self.tap.attach(self._recording.input)
        for worker in (self.engine, self.fanout, self.capture):
            if worker is not None:
                worker.start()
        self._started = True

    def set_mode(self, mode: RoutingMode) -> None:
        self.engine.set_mode(mode)

    def set_classes(self, classes: tuple[str, ...]) -> None:
        """Draw only these classes in recordings (all when empty), from the next frame on."""
        self.classes = tuple(classes)
        with self._lock:
            if self._recording is not None:
                self._recording.recorder.set_classes(self.classes)

    def set_loop(self, enabled: bool) -> None:
        """Start a file over at its end (from the next end on)."""
        self.capture.set_loop(enabled)

    def pause(self) -> bool:
        """Hold a file where it is; False for live sources, which cannot be held (they keep running)."""
        return self.capture.pause()

    def resume(self) -> None:
        if self.capture.paused:
            self.engine.reset_rate()
        self.capture.resume()

    def start_recording(self, path: str) -> None:
        """Record from the next frame on, to a new file, without interrupting anything else.

        Raises:
            UserError: the path cannot be written (nothing changes then).
            RuntimeError: a recording is already running.
        """
        recording = Recording(path, self.latest, self.classes)
        with self._lock:
            if self._recording is not None:
                raise RuntimeError("a recording is already running")
            recording.start()
            self._recording = recording
        self.tap.attach(recording.input)

    def stop_recording(self, timeout: float = 10.0) -> WriterStats | None:
        """Finish the current recording (flushed and closed) and return its writer's final stats."""
        with self._lock:
            recording, self._recording = self._recording, None
            if recording is not None:
                self._finished_recordings.append(recording)
        if recording is None:
            return None
        self.tap.detach(StreamEnd("stopped"))
        recording.join(timeout)
        return recording.writer.stats

    def stop(self) -> None:
        """Ask every worker to finish, in pipeline order; the recording is flushed by the writer."""
        self.capture.resume()  # a paused capture would otherwise sit on its last frame
        self.capture.stop()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait for the workers in pipeline order; True when all ended. Stragglers are told to stop."""
        if not self._started:
            return True
        ok = all([join_or_stop(w, timeout) for w in (self.capture, self.fanout, self.engine) if w is not None])
        with self._lock:
            recordings = [*self._finished_recordings, *([self._recording] if self._recording else [])]
        for recording in recordings:
            ok = recording.join(timeout) and ok
        return ok

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop and join. A consumer that stops reading results must call this (or drain)."""
        self.stop()
        self._drain_results()
        return self.join(timeout)

    def _drain_results(self) -> None:
        # A blocked engine put would otherwise wait for a consumer that has gone away.
        self._results_output.abandon()
        try:
            while True:
                self.results.get_nowait()
        except queue.Empty:
            pass

    @property
    def stats(self) -> PipelineStats:
        dropped = self.capture.stats.frames_dropped + (self.fanout.dropped if self.fanout else 0)
        writer = self.writer
        with self._lock:
            recorded = sum(r.writer.stats.frames_written for r in self._finished_recordings)
        writer_stats = writer.stats if writer else None
        if writer is not None and self.recording:
            recorded += writer_stats.frames_written
        engine = self.engine.lane_stats(LANE)
        dropped += engine.frames_skipped
        return PipelineStats(self.capture.stats, engine, writer_stats, dropped, recorded,
                             paused=self.capture.paused)
