"""`run` under the faults of issue #12: full disks, nan options, repeated signals, frames in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.cli import main
from tests.app.test_run_cli import ROOT, command, run_cli, summary_of, wait_for_content
from tests.support.media import make_video, read_times

pytestmark = pytest.mark.timeout(120)


def run_in_process(weights: Path, *args: str) -> tuple[int, dict, str]:
    result = run_cli(weights, *args)
    return result.returncode, summary_of(result.stdout), result.stderr


def test_events_on_a_full_disk_go_on_without_the_log(tiny_weights, tmp_path, caplog):
    video = tmp_path / "in.mp4"
    make_video(video, frames=12, fps=10, size=(64, 48))
    with caplog.at_level("WARNING"):
        code, summary, err = run_in_process(tiny_weights, "--source", str(video),
                                            "--events", "/dev/full", "--snapshot-dir", str(tmp_path / "snaps"))
    assert code == 0, err
    assert summary["frames_processed"] == 12 and summary["exit_reason"] == "eof"
    assert "No space left on device" in summary["events_error"]
    assert summary["snapshots_error"] is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "engine.runtime.sinks"]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert "Traceback" not in err


def test_recording_on_a_full_disk_counts_what_the_file_holds(tiny_weights, tmp_path, small_disk, caplog):
    video = tmp_path / "in.mp4"
    make_video(video, frames=150, fps=15, size=(320, 240))
    # Leave room for a few fragments (the first is about 20 kB), far less than the run writes (about 210 kB).
    filler = small_disk / "filler"
    stats = os.statvfs(small_disk)
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - 60_000))
    record = small_disk / "out.mp4"
    with caplog.at_level("WARNING"):
        code, summary, err = run_in_process(tiny_weights, "--source", str(video), "--record", str(record))
    assert code == 0, err
    assert summary["frames_processed"] == 150, "processing goes on"
    kept = len(read_times(record))
    assert 0 < kept < 150
    assert summary["frames_recorded"] == kept
    assert "No space left on device" in summary["recording_error"]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "engine.runtime.writer"]
    assert len(warnings) == 1 and warnings[0].exc_info is None


@pytest.mark.parametrize("option", ["--duration", "--stall-timeout", "--snapshot-cooldown", "--target-fps",
                                    "--threshold", "--second-fraction", "--conf", "--iou"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_float_options_are_one_line_errors(option, value, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", option, value])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and option in err[0], err


@pytest.mark.parametrize("argv", [["detect", "--source", "x.jpg", "--conf", "nan"], ["gui", "--target-fps", "inf"],
                                  ["info", "--width", "nan"], ["bench", "--width", "nan"]])
def test_every_command_refuses_non_finite_floats(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err


def test_max_frames_in_all_frames_mode_drops_nothing(tiny_weights, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, frames=40, fps=10, size=(64, 48))
    code, summary, err = run_in_process(tiny_weights, "--source", str(video), "--max-frames", "5")
    assert code == 0, err
    assert summary["exit_reason"] == "max_frames" and summary["frames_processed"] == 5
    assert summary["frames_dropped"] == 0, "frames in flight at the stop are not drops"


def test_max_frames_records_and_logs_exactly_that_many(tiny_weights, tmp_path):
    video, record, events = tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "ev.jsonl"
    make_video(video, frames=40, fps=10, size=(64, 48))
    code, summary, err = run_in_process(tiny_weights, "--source", str(video), "--max-frames", "5",
                                        "--record", str(record), "--events", str(events))
    assert code == 0, err
    assert summary["frames_processed"] == summary["frames_recorded"] == 5
    assert len(read_times(record)) == 5 and len(events.read_text().splitlines()) == 5


def test_signals_during_shutdown_do_not_change_the_outcome(tiny_weights, tmp_path):
    video = tmp_path / "in.mp4"
    make_video(video, frames=300, fps=15, size=(96, 64))
    record = tmp_path / "out.mkv"
    proc = subprocess.Popen(command(tiny_weights, "--source", str(video), "--realtime", "--record", str(record)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_for_content(record, seconds=2)
    # Ctrl-C, then keep pressing it (and SIGTERM) until the process is gone.
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT if int(time.monotonic() * 100) % 3 else signal.SIGTERM)
        time.sleep(0.005)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = summary_of(out)
    assert summary["exit_reason"] == "signal"
    assert len(read_times(record)) == summary["frames_recorded"] > 0
    assert json.loads(out.strip().splitlines()[-1]) == summary
