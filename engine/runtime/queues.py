"""Bounded-queue helpers that make the drop policy between runtime threads explicit.

Two policies exist and every producer names the one it uses:

* :attr:`DropPolicy.LIVE` - the consumer always gets the most recent item. A full queue
  loses its *oldest* item, and the producer counts the loss. Used for cameras and streams,
  where a late frame is worth less than a fresh one and the source cannot be paused.
* :attr:`DropPolicy.ALL_FRAMES` - nothing is lost; a full queue blocks the producer
  (back-pressure). Used for files, which can simply be read more slowly.

End of stream travels through the same queue as a :class:`StreamEnd` item, so a consumer
sees it after every item that was produced before it.
"""

from __future__ import annotations

import enum
import queue
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.errors import UserError

T = TypeVar("T")

#: How often blocking helpers wake up to look at their stop event (seconds).
POLL_INTERVAL = 0.1


class DropPolicy(enum.Enum):
    """What a producer does when its output queue is full."""

    LIVE = "live"
    ALL_FRAMES = "all_frames"


@dataclass(frozen=True)
class StreamEnd:
    """Sentinel closing a stream of items; nothing follows it in the queue.

    Attributes:
        reason: ``"eof"`` (the source ended), ``"stopped"`` (``stop()`` was called),
            ``"limit"`` (the engine processed the frames it was asked for) or ``"failed"``
            (the source could not be opened or read, reconnects included).
        error: the one-line user-facing error, for ``"failed"`` (the source's, or the engine's
            when it broke); with ``"eof"`` it may tell that the end of a file was damaged (the
            frames before the damage were delivered).
    """

    reason: str
    error: UserError | None = None

    @property
    def failed(self) -> bool:
        """True when the stream ended because of an error."""
        return self.reason == "failed"


def put_latest(target: queue.Queue[T], item: T) -> int:
    """Put without blocking; when ``target`` is full, discard its oldest items first.

    Args:
        target: queue with a single producer (the caller).
        item: item to add.

    Returns:
        How many old items were discarded to make room (0 when there was space).
    """
    dropped = 0
    while True:
        try:
            target.put_nowait(item)
            return dropped
        except queue.Full:
            pass
        try:
            target.get_nowait()
            dropped += 1
        except queue.Empty:
            # The consumer emptied the queue between the two calls; just retry the put.
            continue


def put_blocking(target: queue.Queue[T], item: T, stop: threading.Event) -> bool:
    """Put with back-pressure, waking up regularly so that ``stop`` can interrupt the wait.

    Returns:
        True when the item was queued, False when ``stop`` was set first.
    """
    while not stop.is_set():
        try:
            target.put(item, timeout=POLL_INTERVAL)
            return True
        except queue.Full:
            continue
    return False


def put_end(target: queue.Queue[Any], end: StreamEnd, stop: threading.Event, policy: DropPolicy) -> int:
    """Deliver the end-of-stream sentinel; it is never lost.

    With ALL_FRAMES the queued items are kept and the call waits for room, unless ``stop`` is
    set: a consumer that asked to stop may no longer be reading, so the oldest items are then
    discarded to make room, as they are with LIVE.

    Returns:
        How many queued items were discarded to make room.
    """
    if policy is DropPolicy.ALL_FRAMES and put_blocking(target, end, stop):
        return 0
    return put_latest(target, end)


def get_item(source: queue.Queue[T], timeout: float) -> T | None:
    """Get an item, or None after ``timeout`` seconds, so that callers can re-check their stop event."""
    try:
        return source.get(timeout=timeout)
    except queue.Empty:
        return None
