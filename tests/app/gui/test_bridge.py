"""The bridges on fake runtimes: the panels get a stats snapshot taken no earlier than the first
result they show beside it."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from engine.detections import Detections
from engine.runtime.capture import CaptureStats
from engine.runtime.frames import Frame, Result
from engine.runtime.monitor import CameraStats
from engine.runtime.pipeline import PipelineStats
from engine.runtime.shared_engine import EngineStats

WAIT_MS = 5_000


def a_result() -> Result:
    return Result(Frame(0, 0.0, 0.0, np.zeros((8, 8, 3), np.uint8)), Detections.empty(("a",)), 5.0)


class FakeRuntime:
    """A source that connects, then delivers one result; its stats say which of the two it is at."""

    def __init__(self) -> None:
        self.results: queue.Queue = queue.Queue()
        self.delivered = threading.Event()

    def capture_stats(self) -> CaptureStats:
        return CaptureStats(state="live", fps=25.0) if self.delivered.is_set() else CaptureStats()

    def engine_stats(self) -> EngineStats:
        return EngineStats(frames_processed=int(self.delivered.is_set()))

    def deliver(self, item) -> None:
        self.delivered.set()
        self.results.put(item)


class FakePipeline(FakeRuntime):
    @property
    def stats(self) -> PipelineStats:
        return PipelineStats(self.capture_stats(), self.engine_stats(), None, 0, 0)


@dataclass
class _Feed:
    name: str


@dataclass
class FakeMonitor(FakeRuntime):
    camera_names: list[str] = field(default_factory=lambda: ["gate"])

    def __post_init__(self) -> None:
        super().__init__()
        self.running = [_Feed(name) for name in self.camera_names]

    def stats(self, name: str) -> CameraStats:
        return CameraStats(name, self.capture_stats(), self.engine_stats(), 0, 0, None)


def _record(signals: list, kind: str):
    return lambda *args: signals.append((kind, args[-1] if kind == "stats" else None))


def test_the_first_result_comes_after_stats_that_include_it(qtbot):
    from app.gui.bridge import Bridge

    bridge, pipeline, signals = Bridge(), FakePipeline(), []
    bridge.statsReady.connect(_record(signals, "stats"))
    bridge.resultReady.connect(_record(signals, "result"))
    bridge.attach(pipeline)
    try:
        qtbot.waitUntil(lambda: len(signals) > 0, timeout=WAIT_MS)  # the connecting state, before any frame
        pipeline.deliver(a_result())
        qtbot.waitUntil(lambda: ("result", None) in signals, timeout=WAIT_MS)
    finally:
        bridge.detach()
    before = signals[:signals.index(("result", None))]
    last = before[-1][1]
    assert last.capture.state == "live" and last.engine.frames_processed == 1


def test_a_camera_tile_gets_fresh_stats_with_its_first_result(qtbot):
    from app.gui.camera_bridge import CameraBridge

    bridge, monitor, signals = CameraBridge(), FakeMonitor(), []
    bridge.statsReady.connect(_record(signals, "stats"))
    bridge.resultReady.connect(lambda camera, result, processed: signals.append(("result", None)))
    bridge.attach(monitor)
    try:
        qtbot.waitUntil(lambda: len(signals) > 0, timeout=WAIT_MS)
        monitor.deliver(("gate", a_result()))
        qtbot.waitUntil(lambda: ("result", None) in signals, timeout=WAIT_MS)
    finally:
        bridge.detach()
    before = signals[:signals.index(("result", None))]
    assert before[-1][1]["gate"].state == "live"
