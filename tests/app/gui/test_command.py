"""The `gui` command as a user starts it: no torch at import, no display, screenshot mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GUI_MODULES = ("application", "bridge", "camera_bridge", "camera_grid", "camera_telemetry", "camera_window", "chart",
               "class_filter", "controls", "images", "main_window", "model_loader", "multi_session", "overlay",
               "playback_controls", "routing_controls", "session", "source_controls", "telemetry", "theme",
               "video_view")


def headless_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return {**env, **extra}


def test_gui_modules_do_not_import_torch():
    imports = "; ".join(f"import app.gui.{name}" for name in GUI_MODULES)
    code = f"import sys; {imports}; import app.commands.gui; print(sorted(m for m in sys.modules if m == 'torch'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env=headless_env(QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [[], ["gui"]], ids=["default", "gui"])
def test_without_a_display_one_line_points_to_run(command):
    result = subprocess.run([sys.executable, "main.py", *command], capture_output=True, text=True, cwd=ROOT,
                            timeout=120, env=headless_env())
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "python main.py run" in lines[0]


def test_screenshot_option_writes_a_png(tiny_weights, videos, tmp_path):
    shot = tmp_path / "shots" / "gui.png"
    command = [sys.executable, "main.py", "gui", "--weights", str(tiny_weights), "--backend", "torch", "--threads",
               "1", "--source", str(videos["a"]), "--screenshot", str(shot), "--quit-after-frames", "5"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=180,
                            env=headless_env(QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 0, result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("weights, backend", [("tiny_weights", "torch"), ("tiny_rcnn_weights", "auto")],
                         ids=["yolo", "faster-rcnn"])
def test_quit_after_frames_prints_a_run_summary(weights, backend, videos, request):
    weights = request.getfixturevalue(weights)
    command = [sys.executable, "main.py", "gui", "--weights", str(weights), "--backend", backend, "--threads",
               "1", "--source", str(videos["a"]), "--target-fps", "6", "--quit-after-frames", "12", "--summary"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=180,
                            env=headless_env(QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames_processed"] >= 12 and summary["target_fps"] == 6.0
    assert 0 < summary["processing_fps"] < 20 and 0 <= summary["second_exit_fraction"] <= 1


def test_a_scripted_run_that_fails_says_why_in_one_line(tiny_weights, tmp_path):
    command = [sys.executable, "main.py", "gui", "--weights", str(tiny_weights), "--backend", "torch",
               "--source", str(tmp_path / "nope.mp4"), "--quit-after-frames", "5"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=180,
                            env=headless_env(QT_QPA_PLATFORM="offscreen"))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.mp4" in errors[0], result.stderr
