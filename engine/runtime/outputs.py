"""Where the engine's results go: one small protocol with three implementations.

The engine hands every result to each of its outputs with :meth:`ResultOutput.offer` and ends
them all with :meth:`ResultOutput.close` when its input ends. A bounded queue with its drop
policy (:class:`QueueOutput`), the recording socket (:class:`~engine.runtime.recorder.RecordingTap`)
and the newest-result holder (:class:`~engine.runtime.recorder.LatestResult`) all speak it, so
the engine never needs to know which kind of consumer sits behind an output.

A failure travels in the :class:`StreamEnd` given to ``close``: consumers read it from there
instead of reaching into the workers.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

from engine.runtime.frames import Result
from engine.runtime.queues import POLL_INTERVAL, DropPolicy, StreamEnd, put_end, put_latest


class ResultOutput(Protocol):
    def offer(self, result: Result, stop: threading.Event) -> None:
        """Take one result; may wait (back-pressure) until ``stop`` is set."""

    def close(self, end: StreamEnd) -> None:
        """The stream ended; nothing is offered after this."""


class QueueOutput:
    """A bounded queue fed with the named drop policy.

    Args:
        target: the queue a consumer reads.
        policy: LIVE keeps only the newest items; ALL_FRAMES waits for room (back-pressure).
        tag: when given, items are queued as ``(tag, item)`` pairs, so that several cameras can
            share one consumer queue and the consumer still knows which camera each item is from.
    """

    def __init__(self, target: queue.Queue, policy: DropPolicy, tag: str | None = None) -> None:
        self.target = target
        self.policy = policy
        self.tag = tag
        self.dropped = 0
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        """The consumer has stopped reading: never block on this queue again (safe from any thread)."""
        self._abandoned.set()

    def offer(self, result: Result, stop: threading.Event) -> None:
        item = self._wrap(result)
        if self.policy is DropPolicy.LIVE or self._abandoned.is_set():
            self.dropped += put_latest(self.target, item)
            return
        while not stop.is_set() and not self._abandoned.is_set():
            try:
                self.target.put(item, timeout=POLL_INTERVAL)
                return
            except queue.Full:
                continue

    def close(self, end: StreamEnd) -> None:
        policy = DropPolicy.LIVE if self._abandoned.is_set() else self.policy
        # A shared (tagged) queue must never lose another camera's end: it always waits for room,
        # unless the consumer has gone away.
        if self.tag is not None and policy is DropPolicy.LIVE and not self._abandoned.is_set():
            policy = DropPolicy.ALL_FRAMES
        put_end(self.target, self._wrap(end), self._abandoned, policy)

    def _wrap(self, item: Any) -> Any:
        return item if self.tag is None else (self.tag, item)
