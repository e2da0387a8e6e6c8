"""Monitor -> Qt: a worker object in its own QThread reads every camera's results and emits signals.

The monitor's results queue is shared by all cameras and its engine blocks when the queue is
full, so the worker reads every item as soon as it arrives; the GUI gets only what it can
paint:

* Each camera has at most :data:`MAX_IN_FLIGHT` results waiting in the GUI's event queue. A
  newer result of a camera whose slots are taken waits in the worker, replacing any older one
  (the newest frame wins), and goes out as soon as the GUI has painted the previous one.
* Every signal carries the generation of the monitor it came from; a replaced monitor's
  queued signals are ignored (as :mod:`app.gui.bridge` does for the single-source pipeline).
* A fresh stats snapshot goes out just before each camera's first result, so that its tile
  never shows "connecting" over its first frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot

from app.gui.bridge import PumpHost
from engine.runtime.frames import Result
from engine.runtime.monitor import Monitor
from engine.runtime.queues import StreamEnd, get_item

logger = logging.getLogger(__name__)

STATS_INTERVAL = 0.2  # seconds between stats snapshots (5 Hz)
MAX_IN_FLIGHT = 1  # per camera: with many tiles, one queued picture each keeps the GUI current
_POLL = 0.02  # how long one queue read may block before the worker re-checks stop, stats and waiting results

#: Called in the worker thread with every result (shown or not), e.g. to write a camera's events.
ResultHandler = Callable[[str, Result], None]


class _CameraPump(QObject):
    """Runs in the bridge's QThread; the only reader of one monitor's results queue."""

    result = pyqtSignal(int, str, object, int)
    stats = pyqtSignal(int, object)
    ended = pyqtSignal(int, str, object)
    finished = pyqtSignal(int)

    def __init__(self, monitor: Monitor, generation: int, handler: ResultHandler | None) -> None:
        super().__init__()
        self.monitor = monitor
        self.generation = generation
        self.handler = handler
        self.skipped = 0
        self.processed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = dict.fromkeys(monitor.camera_names, 0)
        self._waiting: dict[str, Result] = {}
        self._unshown = set(monitor.camera_names)  # cameras none of whose results went out yet
        self._open = {feed.name for feed in monitor.running}  # cameras whose StreamEnd is still to come

    def stop(self) -> None:
        self._stop.set()

    def release(self, camera: str) -> None:
        """Called from the GUI thread when it has handled one of ``camera``'s results."""
        with self._lock:
            self._in_flight[camera] = max(0, self._in_flight[camera] - 1)

    def _reserve(self, camera: str) -> bool:
        with self._lock:
            if self._in_flight[camera] >= MAX_IN_FLIGHT:
                return False
            self._in_flight[camera] += 1
            return True

    def _offer(self, camera: str, result: Result) -> None:
        if camera in self._waiting:
            self.skipped += 1  # replaced by a newer one before the GUI could take it
        self._waiting[camera] = result
        self._flush()

    def _flush(self, last_of: str | None = None) -> None:
        """Send the waiting results that have a free slot; ``last_of``'s final one goes out regardless."""
        for camera in list(self._waiting):
            if self._reserve(camera) or camera == last_of:
                if camera in self._unshown:
                    self._unshown.discard(camera)
                    self._emit_stats()
                self.result.emit(self.generation, camera, self._waiting.pop(camera), self.processed)

    def _emit_stats(self) -> None:
        self.stats.emit(self.generation, {name: self.monitor.stats(name) for name in self.monitor.camera_names})

    @pyqtSlot()
    def run(self) -> None:
        next_stats = 0.0
        while self._open and not self._stop.is_set():
            now = time.monotonic()
            if now >= next_stats:
                self._emit_stats()
                next_stats = now + STATS_INTERVAL
            self._flush()
            entry = get_item(self.monitor.results, min(_POLL, max(next_stats - now, 0.001)))
            if entry is None:
                continue
            camera, item = entry
            if isinstance(item, StreamEnd):
                self._flush(last_of=camera)  # an ended camera keeps showing its very last frame
                self.ended.emit(self.generation, camera, item)
                self._open.discard(camera)
                continue
            self.processed += 1
            if self.handler is not None:
                self.handler(camera, item)
            self._offer(camera, item)
        self._emit_stats()
        self.finished.emit(self.generation)


class CameraBridge(PumpHost):
    """Turns the current monitor's output into GUI-thread signals.

    Signals:
        resultReady(camera, Result, processed): a camera's newest processed frame; ``processed``
            counts the frames processed over all cameras so far.
        statsReady(stats): ``{camera: CameraStats}`` for every camera, about five times a second.
        cameraEnded(camera, StreamEnd): a camera's stream ended (eof, failed or stopped).
        allEnded(): every camera that started has ended.
    """

    resultReady = pyqtSignal(str, object, int)
    statsReady = pyqtSignal(object)
    cameraEnded = pyqtSignal(str, object)
    allEnded = pyqtSignal()

    @property
    def skipped(self) -> int:
        """Results the GUI never showed because a newer one of the same camera replaced them."""
        return self._pump.skipped if self._pump is not None else 0

    def attach(self, monitor: Monitor, handler: ResultHandler | None = None) -> None:
        """Start reading ``monitor``'s results (detaching from any previous monitor first)."""
        generation = self._next_generation()
        pump = _CameraPump(monitor, generation, handler)
        pump.result.connect(self._on_result)
        pump.stats.connect(self._on_stats)
        pump.ended.connect(self._on_ended)
        pump.finished.connect(self._on_finished)
        self._start(pump, f"gui-camera-bridge-{generation}")

    def _on_result(self, generation: int, camera: str, result: object, processed: int) -> None:
        pump = self._current(generation)
        if pump is not None:
            pump.release(camera)
            self.resultReady.emit(camera, result, processed)

    def _on_stats(self, generation: int, stats: object) -> None:
        if self._current(generation) is not None:
            self.statsReady.emit(stats)

    def _on_ended(self, generation: int, camera: str, end: object) -> None:
        if self._current(generation) is not None:
            self.cameraEnded.emit(camera, end)

    def _on_finished(self, generation: int) -> None:
        if self._current(generation) is not None:
            self.allEnded.emit()
