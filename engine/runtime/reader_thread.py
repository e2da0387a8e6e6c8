"""Runs one :class:`FrameReader` on a daemon thread that a watchdog can walk away from.

FFmpeg reads can block forever when a camera accepts the connection and then sends nothing,
and neither FFmpeg's nor PyAV's timeouts catch every such case. Closing the container from
another thread while a read is in progress is not safe either. So each connection gets its
own daemon thread that does every blocking call (open, demux, decode) and reports through a
small queue. The owner waits on that queue with its own deadline; when the deadline passes it
calls :meth:`ReaderThread.abandon` and opens a fresh connection. An abandoned thread closes
its reader as soon as its blocked call returns, and exits.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from engine.errors import SourceError
from engine.runtime.queues import put_blocking
from engine.runtime.readers import FrameReader, RawFrame
from engine.runtime.sources import SourceInfo

logger = logging.getLogger(__name__)

#: Decoded frames a reader may hold ahead of its owner. Small, so that back-pressure from a
#: slow consumer reaches the decoder quickly and 4K pictures do not pile up in memory.
READ_AHEAD = 2


@dataclass(frozen=True)
class Opened:
    """The connection is open; first event of every reader."""

    info: SourceInfo


@dataclass(frozen=True)
class Ended:
    """End of stream; ``damage`` tells that unreadable data was skipped on the way."""

    damage: SourceError | None = None


@dataclass(frozen=True)
class Failed:
    """The connection could not be opened or broke; last event of the reader."""

    error: SourceError


ReaderEvent = Opened | RawFrame | Ended | Failed


class ReaderThread:
    """One connection's blocking I/O, on a daemon thread.

    Events arrive on :attr:`events` in this order: ``Opened``, any number of ``RawFrame``,
    then ``Ended`` or ``Failed`` (or ``Failed`` alone when opening fails).

    Args:
        reader: an unopened reader; this thread becomes its only user.
        label: the source as named in messages.
        name: thread name, for logs and debuggers.
    """

    def __init__(self, reader: FrameReader, label: str, name: str) -> None:
        self.events: queue.Queue[ReaderEvent] = queue.Queue(maxsize=READ_AHEAD)
        self._reader = reader
        self._label = label
        self._abandoned = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start opening and reading."""
        self._thread.start()

    def abandon(self) -> None:
        """Stop caring about this connection; the thread cleans up and exits when it can."""
        self._abandoned.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has exited."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._read_all()
        except SourceError as exc:
            self._post(Failed(exc))
        except Exception as exc:
            # A reader bug must reach the user as one message, and the owner must not wait
            # for events that will never come.
            logger.exception("%s: reader failed", self._label)
            self._post(Failed(SourceError(f"{self._label}: unexpected error while reading ({exc})")))
        finally:
            self._reader.close()
            if self._abandoned.is_set():
                logger.debug("%s: abandoned reader closed", self._label)

    def _read_all(self) -> None:
        info = self._reader.open()
        if not self._post(Opened(info)):
            return
        for raw in self._reader.frames():
            if not self._post(raw):
                return
        self._post(Ended(self._reader.damage))

    def _post(self, event: ReaderEvent) -> bool:
        """Queue ``event`` with back-pressure; False once the owner has abandoned this reader."""
        return put_blocking(self.events, event, self._abandoned)
