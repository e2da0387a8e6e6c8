"""cameras.yaml: typed, frozen, and every mistake named in one line."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.runtime.monitor_config import load_monitor_config


def write(tmp_path, text: str):
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def test_full_config_loads(tmp_path):
    config = load_monitor_config(write(tmp_path, """
model: {weights: w.safetensors, backend: torch}
budget: {target_fps: 40, allocation: per-camera}
cameras:
  - {name: gate, source: a.mp4, fps: 10, realtime: true, loop: true, record: r.mp4, events: e.jsonl,
     classes: [circle, star], snapshot_dir: snaps}
  - {name: yard, source: "rtsp://127.0.0.1:8554/cam"}
"""))
    assert [c.name for c in config.cameras] == ["gate", "yard"]
    assert config.cameras[0].classes == ("circle", "star") and config.cameras[0].fps == 10.0
    assert config.budget.mode().describe() == "target_fps=40" and config.budget.allocation == "per-camera"
    assert config.model.backend == "torch"


def test_defaults_half_of_each_cameras_frames_to_exit_2(tmp_path):
    config = load_monitor_config(write(tmp_path, "cameras: [{name: a, source: a.mp4}]"))
    assert config.budget.mode().describe() == "second_fraction=0.5" and config.budget.allocation == "per-camera"


@pytest.mark.parametrize(("text", "message"), [
    ("cameras: [{name: a, source: a.mp4, fsp: 3}]", r"cameras\[0\]\.fsp: unknown key"),
    ("budget: {target: 3}\ncameras: [{name: a, source: a.mp4}]", r"budget\.target: unknown key"),
    ("cameras: [{name: a, source: a.mp4}, {name: a, source: b.mp4}]", "duplicate camera name 'a'"),
    ("cameras: []", "no cameras"),
    ("model: {}", "no cameras"),
    ("cameras: [{name: 'a b', source: a.mp4}]", "camera name"),
    ("cameras: [{name: a, source: a.mp4, fps: 0}]", r"cameras\[0\]: fps must be a positive number"),
    ("cameras: [{name: a, source: a.mp4, fps: .nan}]", "fps must be a positive number"),
    ("cameras: [{name: a}]", r"cameras\[0\]\.source: missing required key"),
    ("budget: {target_fps: -1}\ncameras: [{name: a, source: a.mp4}]", "target fps must be positive"),
    ("budget: {target_fps: .inf}\ncameras: [{name: a, source: a.mp4}]", "target_fps needs a number"),
    ("budget: {second_fraction: 2}\ncameras: [{name: a, source: a.mp4}]", "between 0 and 1"),
    ("budget: {target_fps: 3, route: first}\ncameras: [{name: a, source: a.mp4}]", "at most one"),
    ("budget: {allocation: pooled}\ncameras: [{name: a, source: a.mp4}]", "budget.allocation: must be one of"),
    ("cameras: [{name: a, source: a.mp4, events: e.jsonl}, {name: b, source: b.mp4, events: e.jsonl}]",
     "same file 'e.jsonl'"),
])
def test_mistakes_are_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_monitor_config(write(tmp_path, text))
    assert "\n" not in str(info.value)
