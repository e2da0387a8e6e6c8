"""Pipeline -> Qt: a worker object in its own QThread reads the results queue and emits signals.

The worker blocks on the pipeline's results queue (with a short timeout, so that it notices
``stop``) and polls the pipeline's stats about five times a second; both reach the GUI thread
as queued signals. The GUI thread only paints what it receives.

Two details keep the GUI responsive and correct:

* At most :data:`MAX_IN_FLIGHT` results wait in the GUI's event queue. When painting falls
  behind, the worker skips results instead of piling them up, so the picture stays current.
* Every signal carries the generation of the pipeline it came from. A pipeline that was
  replaced (new source, model or recording) may still have signals queued; they are ignored.
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
                self.result.emit(self.generation, item)
            else:
                self.skipped += 1


class Bridge(QObject):
    """Turns the current pipeline's output into GUI-thread signals.

    Signals:
        resultReady(Result): a processed frame.
        statsReady(PipelineStats): a stats snapshot, about five per second.
        streamEnded(StreamEnd): the pipeline's stream ended (eof, failed or stopped).
    """

    resultReady = pyqtSignal(object)
    statsReady = pyqtSignal(object)
    streamEnded = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self._pump: _ResultPump | None = None
        self._thread: QThread | None = None
        self._stragglers: list[tuple[QThread, _ResultPump]] = []

    @property
    def running(self) -> bool:
        """True while a worker thread is attached and alive."""
        return self._thread is not None and self._thread.isRunning()

    def attach(self, pipeline: Pipeline) -> None:
        """Start reading ``pipeline``'s results (detaching from any previous pipeline first)."""
        self.detach()
        self._generation += 1
        self._pump = _ResultPump(pipeline, self._generation)
        self._thread = QThread()
        self._thread.setObjectName(f"gui-bridge-{self._generation}")
        self._pump.moveToThread(self._thread)
        self._pump.result.connect(self._on_result)
        self._pump.stats.connect(self._on_stats)
        self._pump.ended.connect(self._on_ended)
        self._thread.started.connect(self._pump.run)
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
            logger.warning("the result reader did not stop within %d ms", timeout_ms)
            self._stragglers.append((self._thread, self._pump))
        self._pump = self._thread = None
        return finished

    def _on_result(self, generation: int, result: object) -> None:
        pump = self._pump
        if pump is not None and generation == pump.generation:
            pump.release()
            self.resultReady.emit(result)

    def _on_stats(self, generation: int, stats: object) -> None:
        if self._pump is not None and generation == self._pump.generation:
            self.statsReady.emit(stats)

    def _on_ended(self, generation: int, end: object) -> None:
        if self._pump is not None and generation == self._pump.generation:
            self.streamEnded.emit(end)
