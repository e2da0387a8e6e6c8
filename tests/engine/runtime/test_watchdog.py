"""The watchdog abandons reads that never return, whatever FFmpeg's own timeouts do.

These tests replace the real reader with one whose reads block until the test releases
them, which is what a camera that accepts a connection and then goes silent looks like.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from engine.runtime import capture as capture_module
from engine.runtime.capture import Capture
from engine.runtime.queues import StreamEnd
from engine.runtime.readers import FrameReader, RawFrame
from engine.runtime.sources import SourceInfo, SourceKind
from tests.support.media import drain

# A hung capture or server must fail the test, not stall the whole run.
pytestmark = pytest.mark.timeout(30)

URL = "rtsp://127.0.0.1:9/fake"


class HangingReader(FrameReader):
    """Delivers ``frames`` pictures, then blocks (in ``open`` when ``frames`` is None)."""

    def __init__(self, frames: int | None, release: threading.Event, size: tuple[int, int]) -> None:
        self._frames = frames
        self._release = release
        self._size = size
        self.closed = threading.Event()

    def open(self) -> SourceInfo:
        if self._frames is None:
            self._release.wait()
        width, height = self._size
        return SourceInfo(SourceKind.RTSP, URL, width, height, fps=50.0, is_live=True)

    def frames(self) -> Iterator[RawFrame]:
        width, height = self._size
        for index in range(self._frames or 0):
            yield RawFrame(np.full((height, width, 3), index, np.uint8), pts=10.0 + index * 0.02)
        self._release.wait()

    def close(self) -> None:
        self.closed.set()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so that abandoned reader threads can finish."""
    event = threading.Event()
    yield event
    event.set()


def install_readers(monkeypatch: pytest.MonkeyPatch, readers: list[HangingReader]) -> list[HangingReader]:
    queue = list(readers)
    monkeypatch.setattr(capture_module, "make_reader", lambda *args, **kwargs: queue.pop(0))
    return readers


def test_stalled_stream_is_abandoned_and_reconnected(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    first = HangingReader(3, release, (16, 8))
    second = HangingReader(3, release, (20, 10))
    install_readers(monkeypatch, [first, second, HangingReader(None, release, (16, 8))])
    capture = Capture(URL, stall_timeout=0.4, open_timeout=0.4, backoff_initial=0.05, max_reconnects=1)
    caplog.set_level(logging.INFO, logger="engine.runtime.capture")
    capture.start()
    result = drain(capture.output, 5)
    assert capture.join(2.0)

    # Connection 0 stalls, connection 1 stalls, connection 2 never opens: give up.
    assert [f.source_id for f in result.frames] == [0, 0, 0, 1, 1, 1]
    assert [f.size for f in result.frames[2:4]] == [(16, 8), (20, 10)]
    pts = [f.pts for f in result.frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert pts[3] - pts[2] >= 0.4, "the outage shows up in the timeline"
    assert isinstance(result.end, StreamEnd) and result.end.failed
    assert "no answer within 0.4 s" in str(result.end.error)
    assert capture.stats.reconnects == 2
    assert "stream stalled" in caplog.text
    assert caplog.text.count("reconnecting in") == 2

    assert not first.closed.is_set(), "an abandoned read is never closed from another thread"
    release.set()
    assert first.closed.wait(2.0) and second.closed.wait(2.0), "abandoned readers clean up when they return"


def test_hang_while_opening_fails_after_open_timeout(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> None:
    install_readers(monkeypatch, [HangingReader(None, release, (16, 8))])
    capture = Capture(URL, open_timeout=0.3, max_reconnects=0)
    capture.start()
    result = drain(capture.output, 3)
    assert capture.join(1.0)
    assert result.end is not None and result.end.failed
    assert str(result.end.error) == f"{URL}: no answer within 0.3 s"


def test_stop_while_read_hangs_returns_at_once(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> None:
    install_readers(monkeypatch, [HangingReader(1, release, (16, 8))])
    capture = Capture(URL, stall_timeout=30.0)
    capture.start()
    assert len(drain(capture.output, 3, limit=1).frames) == 1
    capture.stop()
    assert capture.join(1.0)
    assert drain(capture.output, 1).end == StreamEnd("stopped")
