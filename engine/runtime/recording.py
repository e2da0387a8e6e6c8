"""One recording (a recorder thread drawing frames, a writer thread encoding them), and the
join-or-stop rule every owner of runtime workers uses at shutdown."""

from __future__ import annotations

import logging
import queue

from engine.runtime.recorder import LatestResult, Recorder
from engine.runtime.writer import Writer

logger = logging.getLogger(__name__)


class Recording:
    """The recorder thread drawing frames and the writer thread encoding them to ``path``."""

    def __init__(self, path: str, latest: LatestResult, classes: tuple[str, ...]) -> None:
        self.writer = Writer(path)
        self.input: queue.Queue = queue.Queue(maxsize=16)
        self.recorder = Recorder(self.input, self.writer.input, latest, classes)

    def start(self) -> None:
        self.writer.start()  # checks the path first: an unwritable one fails here
        self.recorder.start()

    def join(self, timeout: float) -> bool:
        return all([join_or_stop(worker, timeout) for worker in (self.recorder, self.writer)])


def join_or_stop(worker, timeout: float) -> bool:
    """Wait for ``worker`` to end; a straggler is told to stop and given ``timeout`` more."""
    if worker.join(timeout):
        return True
    logger.warning("%s did not stop within %.0f s; stopping it", type(worker).__name__, timeout)
    worker.stop()
    return worker.join(timeout)
