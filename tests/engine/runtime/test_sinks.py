"""Sinks on a full disk: one warning line, the run goes on, every sink is closed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.detections import Detections
from engine.runtime.frames import Frame, Result
from engine.runtime.sinks import EventLog, close_all, sink_errors


def result(index: int) -> Result:
    frame = Frame(index=index, pts=index / 10, wall_time=0.0, image=np.zeros((8, 8, 3), np.uint8))
    return Result(frame=frame, detections=Detections.empty(("circle",), exit=1, router_score=0.9), latency_ms=1.0)


def test_events_on_a_full_disk_warn_once_and_stop_quietly(caplog: pytest.LogCaptureFixture) -> None:
    events = EventLog("/dev/full")  # every write fails with ENOSPC, as on a full disk
    with caplog.at_level("WARNING"):
        for index in range(5):
            events.offer(result(index))
        events.close()
    assert "No space left on device" in (events.error or "")
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is None
    assert sink_errors([events]) == {"events_error": events.error}


def test_close_all_closes_every_sink_whatever_another_does(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    closed = []

    class Broken:
        kind = "broken"
        error = None

        def close(self) -> None:
            raise OSError(28, "No space left on device")

    class Fine:
        kind = "fine"
        error = None

        def close(self) -> None:
            closed.append(self)

    first, broken, last = Fine(), Broken(), Fine()
    with caplog.at_level("WARNING"):
        problems = close_all([first, broken, last])
    assert closed == [first, last]
    assert "No space left on device" in broken.error
    assert len(problems) == 1 and problems[0].startswith("broken: ")
    assert len(caplog.records) == 1
