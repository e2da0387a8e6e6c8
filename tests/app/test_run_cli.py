"""`run` end to end, as a user runs it: files, a real RTSP server, signals, kill -9, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.support.cli import cli
from tests.support.media import make_video, read_times

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {"source", "frames_read", "frames_processed", "frames_dropped", "frames_recorded", "processing_fps",
                "second_exit_fraction", "target_fps", "mean_latency_ms", "p95_latency_ms", "latency",
                "reconnects", "exit_reason"}


def command(weights: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "main.py"), "run", "--weights", str(weights), "--backend", "torch",
            "--no-progress", *args]


def run_cli(weights: Path, *args: str):
    """`run` through the real entry point in this process; the tests of the process itself use ``command``."""
    return cli("run", "--weights", str(weights), "--backend", "torch", "--no-progress", *args)


def summary_of(stdout: str) -> dict:
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    assert len(lines) == 1, stdout
    summary = json.loads(lines[0])
    assert set(summary) >= SUMMARY_KEYS
    return summary


def wait_for_content(record: Path, seconds: float) -> None:
    """Wait until the recording has grown for ``seconds`` (model loading takes a while on a busy machine)."""
    started = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if record.exists() and record.stat().st_size > 2_000:
            started = started or time.monotonic()
            if time.monotonic() - started > seconds:
                return
        time.sleep(0.1)
    pytest.fail("the recording never started")


def test_file_all_frames_with_recording_and_events(tiny_weights, tmp_path):
    video = tmp_path / "in.mp4"
    times = make_video(video, frames=30, fps=10, size=(96, 64))
    record, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    result = subprocess.run(command(tiny_weights, "--source", str(video), "--record", str(record),
                                    "--events", str(events), "--threshold", "0.5"),
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    assert summary["exit_reason"] == "eof"
    assert summary["frames_read"] == summary["frames_processed"] == summary["frames_recorded"] == 30
    assert summary["latency"].startswith("read to result, with the time each frame waited")  # queued, not live
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(30))
    assert {"frame", "pts", "wall_time", "exit", "score", "threshold", "latency_ms", "detections"} <= set(rows[0])
    assert all(r["router_threshold"] == 0.5 and r["exit"] == (1 if r["router_score"] >= 0.5 else 2) for r in rows)
    # The shown score is its rank among recent frames; the threshold is ranked alike.
    assert all(r["score"] <= r["threshold"] if r["exit"] == 2 else r["score"] >= r["threshold"] for r in rows)
    written = read_times(record)
    assert len(written) == 30
    assert written[-1] == pytest.approx(times[-1], abs=0.01)


def test_max_frames_and_target_fps_on_a_looping_file(tiny_weights, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, frames=10, fps=10, size=(64, 48))
    result = run_cli(tiny_weights, "--source", str(video), "--loop", "--max-frames", "25", "--target-fps", "20")
    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    assert summary["exit_reason"] == "max_frames"
    assert summary["frames_processed"] == 25  # two and a half passes
    assert summary["target_fps"] == 20


def test_sigint_stops_cleanly_and_keeps_the_recording(tiny_weights, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, frames=300, fps=15, size=(96, 64))
    record = tmp_path / "out.mkv"
    proc = subprocess.Popen(command(tiny_weights, "--source", str(video), "--realtime", "--record", str(record)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for_content(record, seconds=3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = summary_of(out)
    assert summary["exit_reason"] == "signal"
    assert summary["latency"].startswith("capture to result (live")
    assert summary["frames_recorded"] > 10
    assert len(read_times(record)) == summary["frames_recorded"]


def test_recording_survives_kill_9(tiny_weights, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, frames=450, fps=15, size=(96, 64))
    record = tmp_path / "out.mp4"
    proc = subprocess.Popen(command(tiny_weights, "--source", str(video), "--realtime", "--record", str(record)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wait_for_content(record, seconds=4)
    proc.kill()
    proc.wait(timeout=10)
    times = read_times(record)
    assert times, "the killed recording does not decode"
    # The source plays in real time, so the recording should reach close to the kill moment.
    assert times[-1] >= 4.0 - 2.0


@pytest.mark.slow
def test_rtsp_reconnects_and_keeps_recording(tiny_weights, tmp_path, rtsp_server):
    record = tmp_path / "cam.mp4"
    proc = subprocess.Popen(command(tiny_weights, "--source", rtsp_server.url, "--record", str(record),
                                    "--duration", "14", "--stall-timeout", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for_content(record, seconds=2)  # the stream is flowing (model loading takes a while on a busy machine)
    rtsp_server.kill()
    time.sleep(1.5)
    rtsp_server.start()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = summary_of(out)
    assert summary["exit_reason"] == "duration"
    assert summary["reconnects"] >= 1
    assert summary["frames_processed"] > 10
    times = read_times(record)
    assert len(times) == summary["frames_recorded"] > 20
    assert times[-1] > 6  # frames from after the restart made it into the same file


@pytest.mark.parametrize("case", ["missing", "directory", "text_as_mp4", "empty", "audio_only", "camera",
                                  "bad_weights", "missing_weights", "unwritable_record", "bad_option",
                                  "unknown_class", "bad_threshold", "bad_workers"])
def test_bad_input_one_line_and_nonzero_exit(case, tiny_weights, tmp_path):
    video = tmp_path / "ok.mp4"
    make_video(video, frames=5)
    weights, source, extra = tiny_weights, str(video), []
    if case == "missing":
        source = str(tmp_path / "nope.mp4")
    elif case == "directory":
        source = str(tmp_path)
    elif case == "text_as_mp4":
        (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
        source = str(tmp_path / "text.mp4")
    elif case == "empty":
        (tmp_path / "empty.mp4").write_bytes(b"")
        source = str(tmp_path / "empty.mp4")
    elif case == "audio_only":
        source = str(_audio_file(tmp_path / "sound.m4a"))
    elif case == "camera":
        source = "7"
    elif case == "bad_weights":
        weights = tmp_path / "bad.safetensors"
        weights.write_bytes(b"\x00" * 100)
    elif case == "missing_weights":
        weights = tmp_path / "missing.safetensors"
    elif case == "unwritable_record":
        extra = ["--record", "/proc/cannot/write/here.mp4"]
    elif case == "bad_option":
        extra = ["--duration", "-3"]
    elif case == "unknown_class":
        extra = ["--classes", "dragon"]
    elif case == "bad_threshold":
        extra = ["--threshold", "1.7"]
    elif case == "bad_workers":
        extra = ["--workers", "0"]
    result = run_cli(weights, "--source", source, *extra)
    assert result.returncode != 0
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_rtsp_gives_up_after_allowed_reconnects(tiny_weights, tmp_path):
    from tests.support.servers import free_port

    url = f"rtsp://127.0.0.1:{free_port()}/nothing"
    start = time.monotonic()
    result = run_cli(tiny_weights, "--source", url, "--max-reconnects", "1", "--stall-timeout", "1")
    assert result.returncode != 0
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert summary_of(result.stdout)["exit_reason"] == "error"
    assert time.monotonic() - start < 45


def _audio_file(path: Path) -> Path:
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024), np.float32)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_dy_faster_rcnn_runs_the_same_pipeline(tiny_rcnn_weights, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, frames=12, fps=10, size=(96, 64))
    record, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    result = run_cli(tiny_rcnn_weights, "--source", str(video), "--record", str(record), "--events", str(events),
                     "--threshold", "0.5", "--conf", "0.0")
    assert result.returncode == 0, result.stderr
    summary = summary_of(result.stdout)
    assert summary["frames_processed"] == summary["frames_recorded"] == 12
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert all(r["router_threshold"] == 0.5 and r["exit"] == (1 if r["router_score"] >= 0.5 else 2) for r in rows)
    # The shown score is its rank among recent frames; the threshold is ranked alike.
    assert all(r["score"] <= r["threshold"] if r["exit"] == 2 else r["score"] >= r["threshold"] for r in rows)
    assert len(read_times(record)) == 12
