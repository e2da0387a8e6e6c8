"""A node's engine without Ray: results travel without pictures, a new camera set hands over cleanly."""

from __future__ import annotations

import time

import pytest

from engine.fleet.driver import portable, segment_settings
from engine.fleet.node import NodeEngine
from engine.model.loading import ModelOptions
from engine.runtime.frames import Result
from engine.runtime.monitor_config import CameraSettings
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import RoutingMode
from tests.support.media import make_video


def drain_until(node: NodeEngine, done, timeout: float = 30.0) -> list:
    items: list = []
    deadline = time.monotonic() + timeout
    while not done(items):
        assert time.monotonic() < deadline, items[-3:]
        items += node.drain().items
        time.sleep(0.05)
    return items


@pytest.mark.timeout(120)
def test_results_without_pictures_and_a_handover(tiny_weights, tmp_path):
    make_video(tmp_path / "a.mp4", frames=6, fps=10, size=(64, 48))
    make_video(tmp_path / "b.mp4", frames=20, fps=10, size=(64, 48))
    node = NodeEngine(ModelOptions(backend="torch"), str(tiny_weights), None, "global")
    info = node.describe()
    assert info.exit1_ms > 0 and info.exit2_ms >= info.exit1_ms and info.class_names == ("c0", "c1", "c2")

    a = CameraSettings("a", str(tmp_path / "a.mp4"))
    assert node.run([a], RoutingMode("second_fraction", 0.5)) == {}
    items = drain_until(node, lambda got: any(isinstance(i, StreamEnd) for _, i in got))
    results = [i for _, i in items if isinstance(i, Result)]
    assert [r.frame.index for r in results] == list(range(6))
    assert all(r.frame.image.size == 0 for r in results)  # detections travel, pictures stay on the node
    assert items[-1] == ("a", StreamEnd("eof"))

    b = CameraSettings("b", str(tmp_path / "b.mp4"), realtime=True, loop=True)
    node.run([b], RoutingMode("second_fraction", 0.5))
    drain_until(node, lambda got: len(got) >= 3)
    ghost = CameraSettings("ghost", str(tmp_path / "missing.mp4"))
    failures = node.run([b, ghost], RoutingMode("second_fraction", 0.5))  # a handover: b restarts with ghost
    assert set(failures) == {"ghost"}
    items = drain_until(node, lambda got: sum(1 for c, i in got if c == "b" and isinstance(i, Result)) >= 3)
    assert not any(isinstance(i, StreamEnd) and c == "b" for c, i in items)  # no end for a camera that goes on
    report = node.drain()
    assert set(report.stats) == {"b", "ghost"} and report.scores
    assert node.stop()


def test_recordings_continue_in_numbered_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    camera = portable(CameraSettings("gate", "clip.mp4", record="runs/gate.mp4", snapshot_dir="snaps"))
    assert camera.source == str(tmp_path / "clip.mp4") and camera.record == str(tmp_path / "runs" / "gate.mp4")
    assert camera.snapshot_dir == str(tmp_path / "snaps")
    assert segment_settings(camera, 0).record == camera.record
    assert segment_settings(camera, 2).record == str(tmp_path / "runs" / "gate.2.mp4")
    rtsp = portable(CameraSettings("street", "rtsp://10.0.0.5/cam"))
    assert rtsp.source == "rtsp://10.0.0.5/cam" and segment_settings(rtsp, 3) == rtsp
