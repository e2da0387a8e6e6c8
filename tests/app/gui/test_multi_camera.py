"""The camera grid on a real monitor with the tiny model: tiles per camera, frames and exit badges,
a failed camera beside playing ones, enlarging a tile, the total target, and `gui --config`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runtime.routing import RoutingMode
from tests.app.gui.conftest import MODEL_LOAD_TIMEOUT_MS
from tests.app.gui.test_command import ROOT, headless_env

WAIT_MS = 20_000


def write_cameras(path: Path, weights: Path, sources: dict[str, Path | str]) -> Path:
    lines = [f"model: {{weights: '{weights}', backend: torch, threads: 1}}", "budget: {target_fps: 8}", "cameras:"]
    lines += [f"  - {{name: {name}, source: '{source}', realtime: true, loop: true}}"
              for name, source in sources.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def start_cameras(qtbot, tmp_path, tiny_weights):
    """Opens the camera window on a cameras.yaml of ``sources`` and waits for the monitor to start."""
    from app.gui.camera_window import CameraWindow
    from app.gui.multi_session import CameraOptions, MultiSession
    from engine.runtime.monitor_config import load_monitor_config

    windows = []

    def start(sources: dict[str, Path | str], target_fps: float | None = None):
        config = load_monitor_config(write_cameras(tmp_path / "cameras.yaml", tiny_weights, sources))
        options = CameraOptions(config, target_fps=target_fps)
        window = CameraWindow(options.names)
        qtbot.addWidget(window)
        session = MultiSession(window, options)
        windows.append(window)
        window.show()
        session.start()
        qtbot.waitUntil(lambda: session.monitor is not None, timeout=MODEL_LOAD_TIMEOUT_MS)
        return window, session

    yield start
    for window in windows:
        window.close()  # stops the monitor even when a test failed half-way


def test_grid_has_a_named_tile_per_camera_updating_with_frames_and_badges(start_cameras, videos, qtbot):
    window, session = start_cameras({"gate": videos["a"], "yard": videos["b"], "dock": videos["a"]})
    grid = window.grid
    assert list(grid.tiles) == ["gate", "yard", "dock"]
    assert [tile.name_label.text() for tile in grid.tiles.values()] == ["gate", "yard", "dock"]
    assert all(tile.isVisible() for tile in grid.tiles.values())
    for name, size in (("gate", (96, 64)), ("yard", (80, 48)), ("dock", (96, 64))):
        tile = grid.tile(name)
        qtbot.waitUntil(lambda tile=tile: tile.view.result is not None, timeout=WAIT_MS)
        assert tile.view.result.frame.size == size
        assert tile.view.badge_text()[0] in ("EXIT 1", "EXIT 2")
    first = grid.tile("gate").view.result
    qtbot.waitUntil(lambda: grid.tile("gate").view.result is not first, timeout=WAIT_MS)
    # Files play in real time: "playing", not "live", whose word is for cameras and streams.
    qtbot.waitUntil(lambda: all(t.state_text().startswith("playing") for t in grid.tiles.values()), timeout=WAIT_MS)
    assert session.processed >= 4


def test_forced_exit_shows_in_every_tile(start_cameras, videos, qtbot):
    window, _ = start_cameras({"gate": videos["a"], "yard": videos["b"]})
    box = window.routing.mode_box
    box.setCurrentIndex(box.findData("second"))
    for tile in window.grid.tiles.values():
        qtbot.waitUntil(lambda tile=tile: tile.view.result is not None and tile.view.badge_text()[0] == "EXIT 2",
                        timeout=WAIT_MS)


def test_a_missing_camera_fails_alone(start_cameras, videos, tmp_path, qtbot):
    window, _ = start_cameras({"gate": videos["a"], "lost": tmp_path / "missing.mp4", "yard": videos["b"]})
    lost = window.grid.tile("lost")
    qtbot.waitUntil(lambda: lost.state_text().startswith("failed: "), timeout=WAIT_MS)
    assert "missing.mp4" in lost.state_text()
    assert lost.view.state is not None and lost.view.state.kind == "error" and lost.view.result is None
    for name in ("gate", "yard"):
        tile = window.grid.tile(name)
        qtbot.waitUntil(lambda tile=tile: tile.view.result is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.telemetry.text("Cameras up") == "2 / 3", timeout=WAIT_MS)
    assert window.telemetry.text("lost") == "failed" and window.error_text() == ""


def test_click_enlarges_a_tile_and_click_or_esc_returns(start_cameras, videos, qtbot):
    from PyQt6.QtCore import Qt

    window, _ = start_cameras({"gate": videos["a"], "yard": videos["b"]})
    grid = window.grid
    gate, yard = grid.tile("gate"), grid.tile("yard")
    small = gate.width() * gate.height()
    qtbot.mouseClick(gate.view, Qt.MouseButton.LeftButton)
    assert grid.enlarged == "gate" and not yard.isVisible()
    qtbot.waitUntil(lambda: gate.width() * gate.height() > 1.6 * small, timeout=WAIT_MS)  # the whole grid
    qtbot.mouseClick(gate, Qt.MouseButton.LeftButton)
    assert grid.enlarged == "" and yard.isVisible()
    qtbot.mouseClick(yard.view, Qt.MouseButton.LeftButton)
    assert grid.enlarged == "yard"
    window.go_back()  # what Esc does
    assert grid.enlarged == "" and gate.isVisible() and yard.isVisible()


def test_target_slider_sets_the_total_budget(start_cameras, videos, qtbot):
    window, session = start_cameras({"gate": videos["a"], "yard": videos["b"]}, target_fps=8.0)
    assert session.monitor.allocator.mode == RoutingMode("target_fps", 8.0)
    slider = window.routing.fps_slider
    slider.setValue(slider.value() - 30)  # 3 fps lower, as a drag would
    assert window.routing.target_fps == 5.0
    qtbot.waitUntil(lambda: session.monitor.allocator.mode == RoutingMode("target_fps", 5.0), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.telemetry.text("Processing").endswith("/ 5.0 fps"), timeout=WAIT_MS)


def test_closing_stops_the_monitor(start_cameras, videos, qtbot):
    window, session = start_cameras({"gate": videos["a"], "yard": videos["b"]})
    qtbot.waitUntil(lambda: session.processed >= 2, timeout=WAIT_MS)
    monitor = session.monitor
    window.close()
    assert not session.bridge.running
    assert monitor.join(0.5)


def run_gui_command(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "gui", *options], capture_output=True, text=True, cwd=ROOT,
                          timeout=180, env=headless_env(QT_QPA_PLATFORM="offscreen"))


def test_gui_config_runs_the_grid_end_to_end(tiny_weights, videos, tmp_path):
    config = write_cameras(tmp_path / "cameras.yaml", tiny_weights,
                           {"gate": videos["a"], "yard": videos["b"], "lost": tmp_path / "missing.mp4"})
    shot = tmp_path / "grid.png"
    result = run_gui_command("--config", str(config), "--quit-after-frames", "20", "--screenshot", str(shot),
                             "--summary")
    assert result.returncode == 0, result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames_processed"] >= 20 and summary["target_fps"] == 8.0
    assert summary["cameras"]["lost"]["state"] == "failed" and "missing.mp4" in summary["cameras"]["lost"]["error"]
    assert summary["cameras"]["gate"]["frames_processed"] > 0 and summary["cameras"]["yard"]["frames_processed"] > 0


@pytest.mark.parametrize("text, options, expected", [
    ("cameras:\n  - {name: gate, source: x.mp4, fsp: 3}\n", (), "cameras[0].fsp"),
    ("budget: {target_fps: 5}\n", (), "no cameras"),
    ("cameras:\n  - {name: gate, source: x.mp4}\n", ("--source", "y.mp4"), "--source does not go with"),
], ids=["unknown-key", "no-cameras", "with-source"])
def test_a_bad_cameras_config_is_one_error_line(tmp_path, text, options, expected):
    config = tmp_path / "cameras.yaml"
    config.write_text(text, encoding="utf-8")
    result = run_gui_command("--config", str(config), *options)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr


def test_camera_modules_do_not_import_torch():
    modules = ("camera_bridge", "camera_grid", "camera_telemetry", "camera_window", "multi_session", "application")
    imports = "; ".join(f"import app.gui.{name}" for name in modules)
    code = f"import sys; {imports}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env=headless_env(QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_labels_keep_clear_of_labels_already_drawn():
    from PyQt6.QtCore import QRectF

    from app.gui.overlay import label_rect

    bounds, box = QRectF(0, 0, 640, 360), QRectF(100, 100, 50, 50)
    first = label_rect(60, 14, box, bounds)
    assert first.top() == 86  # above its box
    second = label_rect(60, 14, QRectF(105, 104, 50, 50), bounds, taken=[first])
    assert not second.intersects(first) and second.top() == 104  # inside its box's top instead
