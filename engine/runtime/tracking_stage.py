"""Tracking off the engine thread.

The tracker holds the GIL for most of its 0.6-2 ms a frame (5 to 50 objects), while inference
runs in the runtime's native threads with the GIL released. Run on the engine thread, tracking added its
whole cost to every frame and capped the frame rate the engine could reach; on its own thread it
overlaps the next frame's inference instead. Results of tracked cameras pass through here in
order, with their camera's end last, so consumers see exactly what they saw before.

Back-pressure: the engine waits while this stage holds :attr:`TrackingStage.capacity` results or
more (every frame of a file must be tracked); ends are queued without waiting, so they are never
lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.runtime.frames import Result
from engine.runtime.queues import POLL_INTERVAL, StreamEnd, get_item
from engine.runtime.worker import Worker

if TYPE_CHECKING:
    from engine.runtime.shared_engine import Lane

logger = logging.getLogger(__name__)

#: Ends the stage's loop once everything before it has been handled.
_FINISHED = object()


class TrackingStage(Worker):
    """Tracks each result of a tracked camera, then hands it to the camera's outputs."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self.input: queue.Queue = queue.Queue()  # unbounded: see submit() for the bound on results
        self.failed: dict[str, UserError] = {}  # cameras whose zones did not fit their pictures
        super().__init__("tracking")

    def submit(self, lane: Lane, result: Result, stop: threading.Event) -> None:
        """Queue one result, waiting while the stage is ``capacity`` results behind."""
        while self.input.qsize() >= self.capacity and not stop.is_set():
            time.sleep(POLL_INTERVAL / 20)
        self.input.put((lane, result))

    def end(self, lane: Lane, end: StreamEnd) -> None:
        """The camera's stream ended: its outputs are closed after its last result."""
        self.input.put((lane, end))

    def finish(self, timeout: float) -> bool:
        """Handle what is queued, then stop; True when the thread ended within ``timeout``."""
        self.input.put(_FINISHED)
        return self.join(timeout)

    def _run(self) -> None:
        while True:
            entry = get_item(self.input, POLL_INTERVAL)
            if entry is None:
                if self._stop.is_set():
                    return
                continue
            if entry is _FINISHED:
                return
            lane, item = entry
            if lane.name in self.failed:
                continue
            if isinstance(item, StreamEnd):
                for output in lane.outputs:
                    output.close(item)
                continue
            self._track(lane, item)

    def _track(self, lane: Lane, result: Result) -> None:
        try:
            det, tracking = lane.tracking.update(result.detections, result.frame.size)
        except UserError as exc:  # a zone that does not fit this camera's picture: the camera fails
            self.failed[lane.name] = exc
            for output in lane.outputs:
                output.close(StreamEnd("failed", exc))
            return
        tracked = replace(result, detections=det, tracking=tracking,
                          extra={**result.extra, "tracking_ms": tracking.tracker_ms})
        for output in lane.outputs:
            output.offer(tracked, self._stop)
