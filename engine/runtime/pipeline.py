"""Wiring of the streaming runtime: capture -> (fan-out) -> engine -> results, and the recorder.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.model.calibration import Calibration
from engine.runtime.capture import Capture, CaptureStats
from engine.runtime.inference import EngineStats, InferenceEngine
from engine.runtime.queues import DropPolicy
from engine.runtime.recorder import FanOut, LatestResult, Recorder
from engine.runtime.routing import RoutingMode
from engine.runtime.writer import Writer, WriterStats

if TYPE_CHECKING:  # the predictor brings torch; torch-free importers (the GUI) only need the types
    from engine.model.predictor import Predictor

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class PipelineStats:
    capture: CaptureStats
    engine: EngineStats
    writer: WriterStats | None
    frames_dropped: int
    frames_recorded: int


class Pipeline:
    """Start, stop, change routing while running, read results and stats."""

    def __init__(self, config: PipelineConfig, predictor: Predictor, calibration: Calibration | None = None) -> None:
        self.config = config
        self.capture = Capture(config.source, realtime=config.realtime, queue_size=config.capture_queue,
                               stall_timeout=config.stall_timeout, max_reconnects=config.max_reconnects)
        self.live = self.capture.policy is DropPolicy.LIVE
        self.results: queue.Queue = queue.Queue(maxsize=config.results_queue)
        self.writer = Writer(config.record) if config.record else None
        self.latest = LatestResult()
        recorder_input: queue.Queue | None = queue.Queue(maxsize=16) if self.writer else None
        result_policy = DropPolicy.LIVE if config.live_results else DropPolicy.ALL_FRAMES
        outputs = [(self.results, result_policy)]
        if self.live:
            engine_input: queue.Queue = queue.Queue(maxsize=1)
            self.fanout: FanOut | None = FanOut(self.capture.output, engine_input, recorder_input)
        else:
            engine_input = self.capture.output
            self.fanout = None
            if recorder_input is not None:
                outputs.append((recorder_input, DropPolicy.ALL_FRAMES))
        self.engine = InferenceEngine(predictor, engine_input, outputs, config.mode, calibration,
                                      latest=self.latest)
        self.recorder = Recorder(recorder_input, self.writer.input, self.latest, config.classes) \
            if self.writer and recorder_input is not None else None
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every worker (the writer first, so an unwritable path fails before capture opens)."""
        if self.writer:
            self.writer.start()
        for worker in (self.recorder, self.engine, self.fanout, self.capture):
            if worker is not None:
                worker.start()
        self._started = True

    def set_mode(self, mode: RoutingMode) -> None:
        self.engine.set_mode(mode)

    def stop(self) -> None:
        """Ask every worker to finish, in pipeline order; the recording is flushed by the writer."""
        self.capture.stop()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait for the workers in pipeline order; True when all ended. Stragglers are told to stop."""
        if not self._started:
            return True
        ok = True
        order = [self.capture, self.fanout, self.engine, self.recorder, self.writer]
        for worker in order:
            if worker is None:
                continue
            if not worker.join(timeout):
                logger.warning("%s did not stop within %.0f s; stopping it", type(worker).__name__, timeout)
                worker.stop()
                ok = worker.join(timeout) and ok
        return ok

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop and join. A consumer that stops reading results must call this (or drain)."""
        self.stop()
        self._drain_results()
        return self.join(timeout)

    def _drain_results(self) -> None:
        # A blocked engine put would otherwise wait for a consumer that has gone away.
        self.engine.outputs = [(q, DropPolicy.LIVE) for q, _ in self.engine.outputs]
        try:
            while True:
                self.results.get_nowait()
        except queue.Empty:
            pass

    @property
    def stats(self) -> PipelineStats:
        dropped = self.capture.stats.frames_dropped + (self.fanout.dropped if self.fanout else 0)
        return PipelineStats(self.capture.stats, self.engine.stats, self.writer.stats if self.writer else None,
                             dropped, self.writer.stats.frames_written if self.writer else 0)
