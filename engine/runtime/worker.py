"""The small shared surface of every runtime thread: start, stop, join, and a consume loop."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from engine.runtime.queues import StreamEnd, get_item

POLL_SECONDS = 0.1


class Worker:
    """A daemon thread running ``_run``; ``stop()`` sets an event the loop checks regularly."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the worker to finish soon."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to exit; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError

    def _consume(self, source: queue.Queue, handle: Callable[[Any], None]) -> StreamEnd:
        """Hand every item of ``source`` to ``handle`` until a StreamEnd arrives (returned) or stop."""
        while not self._stop.is_set():
            item = get_item(source, POLL_SECONDS)
            if item is None:
                continue
            if isinstance(item, StreamEnd):
                return item
            handle(item)
        return StreamEnd("stopped")
