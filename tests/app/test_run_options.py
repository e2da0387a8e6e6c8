"""`run`'s options checked before any work, the sink list `run` and `monitor` share, and `bench`
refusing a backend before it times anything."""

from __future__ import annotations

import dataclasses
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.cli import build_parser, main
from app.commands import bench
from app.commands.common import DEFAULT_VIDEO
from app.commands.monitor import CameraSinks
from app.commands.run import StreamingRun
from app.commands.run_options import RunOptions
from engine.detections import Detections
from engine.errors import UserError
from engine.model import backend_names
from engine.model.loading import ModelOptions
from engine.runtime.frames import Frame, Result
from engine.runtime.monitor_config import CameraSettings
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import RoutingMode

ROOT = Path(__file__).resolve().parents[2]


def options_of(*argv: str) -> RunOptions:
    return RunOptions.from_args(build_parser().parse_args(["run", *argv]))


def result(index: int, exit_taken: int = 1) -> Result:
    frame = Frame(index=index, pts=index / 10, wall_time=0.0, image=np.zeros((8, 8, 3), np.uint8))
    detections = Detections.empty(("circle",), exit=exit_taken, router_score=0.9)
    return Result(frame=frame, detections=detections, latency_ms=1.0)


def test_defaults_are_the_demo_clip_and_half_the_frames_at_exit_2():
    options = options_of()
    assert options.source == str(DEFAULT_VIDEO)
    assert options.mode == RoutingMode("second_fraction", 0.5) and options.target_fps is None
    assert options.progress and options.track and options.zones == () and options.classes == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.duration = 3.0  # type: ignore[misc]


def test_flags_become_typed_values(tmp_path):
    options = options_of("--target-fps", "12", "--classes", "circle, star", "--zone", "gate:0,0,5,0,5,5:circle",
                         "--line", "door:1,1,4,4", "--events", str(tmp_path / "out" / "e.jsonl"), "--no-progress",
                         "--max-frames", "7")
    assert options.mode == RoutingMode("target_fps", 12.0) and options.target_fps == 12.0
    assert options.classes == ("circle", "star") and not options.progress and options.max_frames == 7
    assert [(z.name, bool(z.polygon), z.classes) for z in options.zones] == [("gate", True, ("circle",)),
                                                                              ("door", False, ())]


@pytest.mark.parametrize("argv, message", [
    (["--duration", "-1"], "--duration must be positive"),
    (["--max-frames", "0"], "--max-frames must be positive"),
    (["--max-reconnects", "-1"], "--max-reconnects must be >= 0"),
    (["--metrics-port", "70000"], "--metrics-port must be a TCP port"),
    (["--conf", "1.5"], "--conf must be between 0 and 1"),
    (["--imgsz", "100"], "--imgsz must be a positive multiple of 32"),
    (["--threads", "0"], "--threads must be positive"),
    (["--threshold", "1.7"], "threshold must be between 0 and 1"),
    (["--no-track", "--line", "door:1,1,4,4"], "--line needs tracking"),
    (["--no-track", "--track-routing"], "--track-routing needs tracking"),
    (["--zone", "a:0,0,5,0,5,5", "--line", "a:1,1,4,4"], "two zones are named 'a'"),
    (["--zone", "a:0,0,x,0,5,5"], "coordinates must be numbers"),
    (["--events", "{tmp}/same.jsonl", "--object-events", "{tmp}/same.jsonl"], "--events and --object-events both"),
    (["--record", "{tmp}/out.avi"], "recordings must end in .mp4 or .mkv"),
    (["--record", "{tmp}/file/out.mp4"], "is a file, not a folder"),
    (["--events", "{tmp}"], "is a folder; give a file name"),
    (["--snapshot-dir", "{tmp}/file"], "is a file; give a folder"),
    (["--source", "{tmp}/missing.mp4"], "missing.mp4"),
    (["--source", "rtsp://127.0.0.1:9/cam", "--loop"], "--loop applies to files and image folders"),
    (["--weights", "{tmp}/missing.safetensors"], "weights file not found"),
    (["--names", "{tmp}/names.yaml"], "--names: file not found"),
    (["--config", "no-such-architecture"], "config not found"),
])
def test_bad_options_are_refused_before_any_work(argv, message, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError) as caught:
        options_of(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert message in str(caught.value)


def test_a_backend_that_is_not_installed_is_refused(monkeypatch):
    monkeypatch.setattr(backend_names, "available_graph_backends", lambda: ("onnxruntime",))
    with pytest.raises(UserError, match="backend 'openvino' is not installed here"):
        options_of("--backend", "openvino")
    assert options_of("--backend", "onnxruntime").model.backend == "onnxruntime"


def test_options_check_their_values_when_built_directly():
    with pytest.raises(UserError, match="--stall-timeout must be positive"):
        RunOptions(source="clip.mp4", model=ModelOptions(), mode=RoutingMode("first"), stall_timeout=0)


# Checked in a fresh interpreter: the test process has long imported torch.
IMPORTS = """
import sys
from app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(code, sorted(m for m in ("torch", "cv2", "av", "PyQt6", "ray") if m in sys.modules))
"""


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0), (["run", "--help"], 0),
    (["run", "--duration", "-1"], 2), (["run", "--max-frames", "x"], 2),
    (["run", "--no-track", "--zone", "z:0,0,1,0,1,1"], 2),
    (["run", "--source", "missing.mp4"], 2), (["bench", "--backend", "tensorrt"], 2),
    (["monitor", "--config", "missing.yaml"], 2),
])
def test_help_and_bad_arguments_return_without_loading_torch_or_decoders(argv, code):
    done = subprocess.run([sys.executable, "-c", IMPORTS, *argv], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1] == f"{code} []", done.stdout + done.stderr
    if code:
        errors = done.stderr.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("error:"), done.stderr


class FakePipeline:
    """What StreamingRun reads of a pipeline: results, stats, start and shutdown."""

    live = False

    def __init__(self, items: list) -> None:
        self.results: queue.Queue = queue.Queue()
        for item in items:
            self.results.put(item)
        self.stopped = False

    def start(self) -> None:
        pass

    def shutdown(self, timeout: float) -> bool:
        self.stopped = True
        return True

    @property
    def stats(self) -> SimpleNamespace:
        engine = SimpleNamespace(controller=None, mean_latency_ms=1.0, p95_latency_ms=2.0, processing_fps=10.0,
                                 second_exit_fraction=0.5)
        return SimpleNamespace(capture=SimpleNamespace(frames_read=4, reconnects=0), engine=engine, frames_dropped=0,
                               frames_recorded=0, writer=None)


class ListSink:
    kind = "list"

    def __init__(self) -> None:
        self.error: str | None = None
        self.offered: list[int] = []
        self.closed = False

    def offer(self, result: Result) -> None:
        self.offered.append(result.frame.index)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("max_frames, offered, reason", [(None, [0, 1, 2, 3], "eof"), (2, [0, 1], "max_frames")])
def test_streaming_run_offers_each_result_to_every_sink_then_closes_them(max_frames, offered, reason, capsys):
    pipeline = FakePipeline([result(0), result(1, exit_taken=2), result(2), result(3), StreamEnd("eof")])
    sinks = [ListSink(), ListSink()]
    options = RunOptions(source="clip.mp4", model=ModelOptions(), mode=RoutingMode("target_fps", 9.0),
                         progress=False, max_frames=max_frames)
    assert StreamingRun(pipeline, sinks, options, None, "clip.mp4", threading.Event()).execute() == 0
    summary = json.loads(capsys.readouterr().out)
    assert all(sink.offered == offered and sink.closed for sink in sinks) and pipeline.stopped
    assert summary["exit_reason"] == reason and summary["frames_processed"] == len(offered)
    assert summary["target_fps"] == 9.0 and summary["list_error"] is None


def test_camera_sinks_are_each_cameras_list_of_the_same_sinks(tmp_path):
    from tests.support.servers import free_port

    cameras = [CameraSettings("a", "a.mp4", events=str(tmp_path / "a.jsonl")),
               CameraSettings("b", "b.mp4", snapshot_dir=str(tmp_path / "b-snaps"))]
    asked: list[str] = []

    def stats(name: str) -> SimpleNamespace:
        asked.append(name)
        lane = SimpleNamespace(processing_fps=5.0, second_exit_fraction=0.0)
        return SimpleNamespace(name=name, lane=lane, frames_dropped=0, capture=SimpleNamespace(reconnects=0),
                               state="live")

    sinks = CameraSinks.open(cameras, free_port(), stats)
    try:
        assert [s.kind for s in sinks.by_camera["a"]] == ["events", "metrics"]
        assert [s.kind for s in sinks.by_camera["b"]] == ["snapshots", "metrics"]
        for index in range(3):
            sinks.offer("a", result(index))
        sinks.offer("b", result(0))
    finally:
        assert sinks.close() == []
    assert [json.loads(line)["frame"] for line in (tmp_path / "a.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert asked == ["a", "a", "a", "b"]


def test_camera_sinks_that_fail_to_open_close_the_ones_before(tmp_path):
    (tmp_path / "file").write_text("")
    cameras = [CameraSettings("a", "a.mp4", events=str(tmp_path / "a.jsonl")),
               CameraSettings("b", "b.mp4", events=str(tmp_path / "file" / "b.jsonl"))]
    with pytest.raises(UserError, match="cannot write events file"):
        CameraSinks.open(cameras)
    assert (tmp_path / "a.jsonl").exists()


def test_bench_refuses_an_uninstalled_backend_before_loading_a_model(monkeypatch, capsys):
    monkeypatch.setattr(backend_names, "available_graph_backends", lambda: ("onnxruntime",))
    monkeypatch.setattr(bench, "_load_model", lambda args: pytest.fail("the model was loaded"))
    assert main(["bench", "--config", "dy-yolov7-tiny", "--backend", "openvino"]) == 2
    assert "backend 'openvino' is not installed here" in capsys.readouterr().err


def test_bench_refuses_a_backend_the_model_cannot_use_before_timing(monkeypatch, capsys):
    timed = []

    def time_paths(*args, **kwargs):
        timed.append(args)
        raise AssertionError("timing started")

    monkeypatch.setattr(bench, "_time_paths", time_paths)
    code = main(["bench", "--config", "dy-faster-rcnn-r18", "--backend", "onnxruntime", "--imgsz", "64",
                 "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and timed == []
    assert len(err) == 1 and "does not export to ONNX Runtime" in err[0]
