"""Pipeline -> Qt: a worker object in its own QThread reads the results queue and emits signals.

The worker blocks on the pipeline's results queue (with a short timeout, so that it notices
``stop``) and polls the pipeline's stats about five times a second; both reach the GUI thread
as queued signals. The GUI thread only paints what it receives.

Three details keep the GUI responsive and correct:

* At most :data:`MAX_IN_FLIGHT` results wait in the GUI's event queue. When painting falls
  behind, the worker skips results instead of piling them up, so the picture stays current.
* Every signal carries the generation of the pipeline it came from. A pipeline that was
  replaced (new source, model or recording) may still have signals queued; they are ignored.
* A fresh stats snapshot goes out just before the first result, so the panels never show the
  state from before the first frame ("connecting", no rate) beside that frame.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

from engine.runtime.queues import StreamEnd, get_item

if TYPE_CHECKING:  # engine.runtime.pipeline imports the model code (and torch) at import time
    from engine.runtime.pipeline import Pipeline

logger = logging.getLogger(__name__)

STATS_INTERVAL = 0.2  # seconds between stats snapshots (5 Hz)
MAX_IN_FLIGHT = 2
_POLL = 0.05  # how long one queue read may block before the worker re-checks stop and stats


class _ResultPump(QObject):
    """Runs in the bridge's QThread; the only reader of one pipeline's results queue."""

    result = pyqtSignal(int, object)
    stats = pyqtSignal(int, object)
    ended = pyqtSignal(int, object)

    def __init__(self, pipeline: Pipeline, generation: int) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.generation = generation
        self.skipped = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._shown_any = False

    def stop(self) -> None:
        self._stop.set()

    def release(self) -> None:
        """Called from the GUI thread when it has handled one result."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def _reserve(self) -> bool:
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                return False
            self._in_flight += 1
            return True

    @pyqtSlot()
    def run(self) -> None:
        next_stats = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_stats:
                self.stats.emit(self.generation, self.pipeline.stats)
                next_stats = now + STATS_INTERVAL
            item = get_item(self.pipeline.results, min(_POLL, max(next_stats - now, 0.001)))
            if item is None:
                continue
            if isinstance(item, StreamEnd):
                self.stats.emit(self.generation, self.pipeline.stats)
                self.ended.emit(self.generation, item)
                return
            if self._reserve():
                if not self._shown_any:
                    self._shown_any = True
                    self.stats.emit(self.generation, self.pipeline.stats)
                    next_stats = time.monotonic() + STATS_INTERVAL
                self.result.emit(self.generation, item)
            else:
                self.skipped += 1


class PumpHost(QObject):
    """Runs one pump (a worker object reading a runtime's results) in its own QThread at a time.

    Each attach bumps a generation number that the pump stamps on its signals, so the signals a
    replaced pump still had queued are recognised (:meth:`_current`) and dropped.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self._pump = None
        self._thread: QThread | None = None
        self._stragglers: list[tuple[QThread, QObject]] = []

    @property
    def running(self) -> bool:
        """True while a worker thread is attached and alive."""
        return self._thread is not None and self._thread.isRunning()

    def _next_generation(self) -> int:
        self.detach()
        self._generation += 1
        return self._generation

    def _start(self, pump, name: str) -> None:
        """Run ``pump`` (its signals already connected) in a new thread called ``name``."""
        self._pump = pump
        self._thread = QThread()
        self._thread.setObjectName(name)
        pump.moveToThread(self._thread)
        self._thread.started.connect(pump.run)
        self._thread.start()

    def detach(self, timeout_ms: int = 2000) -> bool:
        """Stop the worker and wait for its thread; True when it ended within ``timeout_ms``."""
        if self._thread is None or self._pump is None:
            return True
        self._pump.stop()
        self._thread.quit()
        finished = self._thread.wait(timeout_ms)
        if not finished:
            # Dropping the last reference to a running QThread aborts the process; keep it.
            logger.warning("%s did not stop within %d ms", self._thread.objectName(), timeout_ms)
            self._stragglers.append((self._thread, self._pump))
        self._pump = self._thread = None
        return finished

    def _current(self, generation: int):
        """The attached pump if ``generation`` is its own (a replaced pump's late signals get None)."""
        pump = self._pump
        return pump if pump is not None and generation == pump.generation else None


class Bridge(PumpHost):
    """Turns the current pipeline's output into GUI-thread signals.

    Signals:
        resultReady(Result): a processed frame.
        statsReady(PipelineStats): a stats snapshot, about five per second.
        streamEnded(StreamEnd): the pipeline's stream ended (eof, failed or stopped).
    """

    resultReady = pyqtSignal(object)
    statsReady = pyqtSignal(object)
    streamEnded = pyqtSignal(object)

    def attach(self, pipeline: Pipeline) -> None:
        """Start reading ``pipeline``'s results (detaching from any previous pipeline first)."""
        generation = self._next_generation()
        pump = _ResultPump(pipeline, generation)
        pump.result.connect(self._on_result)
        pump.stats.connect(self._on_stats)
        pump.ended.connect(self._on_ended)
        self._start(pump, f"gui-bridge-{generation}")

    def _on_result(self, generation: int, result: object) -> None:
        pump = self._current(generation)
        if pump is not None:
            pump.release()
            self.resultReady.emit(result)

    def _on_stats(self, generation: int, stats: object) -> None:
        if self._current(generation) is not None:
            self.statsReady.emit(stats)

    def _on_ended(self, generation: int, end: object) -> None:
        if self._current(generation) is not None:
            self.streamEnded.emit(end)
