"""Tracking from the command line: bad zones are one error line, eval --events reports tracking
quality, and run's events carry track ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from tests.support.media import make_video


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tracking") / "in.mp4"
    make_video(path, frames=6, fps=10, size=(96, 64))
    return path


@pytest.mark.parametrize("zone, expected", [
    (["--zone", "gate:0,0,50,0"], "a polygon needs at least 3 points, got 2"),
    (["--zone", "gate:0,0,500,0,500,40"], "zone gate: point (500, 0) is outside the 96x64 frame"),
    (["--line", "door:10,-5,10,40"], "point (10, -5) is outside the frame"),
    (["--zone", "gate:0,0,50,0,50,40:unicorn"], "zone gate: unknown class 'unicorn'"),
    (["--zone", "gate:0,0,x,0,50,40"], "coordinates must be numbers"),
    (["--no-track", "--zone", "gate:0,0,50,0,50,40"], "--zone needs tracking"),
])
def test_bad_zones_are_one_error_line(video, tmp_path, capsys, zone, expected):
    code = main(["run", "--source", str(video), "--backend", "torch", "--no-progress", "--route", "first", *zone])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("error: ") and expected in err[-1], err


def test_bad_zone_in_cameras_yaml_is_one_error_line(video, tmp_path, capsys):
    config = tmp_path / "cameras.yaml"
    config.write_text(f"cameras:\n  - name: a\n    source: '{video}'\n"
                      "    zones: [{name: gate, polygon: [[0, 0], [10, 0], [10, 10]], classes: [unicorn]}]\n")
    assert main(["monitor", "--config", str(config), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: camera a: zone gate: unknown class 'unicorn' (the model knows: ")


def test_run_events_carry_track_ids_and_eval_scores_tracking(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    assert main(["synth", "--video", str(clip), "--frames", "20", "--size", "320x180", "--seed", "2",
                 "--difficulty", "0.0-0.3"]) == 0
    events = tmp_path / "events.jsonl"
    assert main(["run", "--source", str(clip), "--backend", "torch", "--no-progress", "--route", "second",
                 "--events", str(events)]) == 0
    detections = [d for line in events.read_text().splitlines() for d in json.loads(line)["detections"]]
    assert detections and all("track_id" in d for d in detections)
    assert any(isinstance(d["track_id"], int) for d in detections)
    capsys.readouterr()
    assert main(["eval", "--events", str(events), "--truth", str(clip.with_suffix(".json"))]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(isinstance(scores[k], float) for k in ("mota", "idf1", "hota"))
    assert scores["idf1"] > 0.3 and scores["hota"] > 0.3


def test_perfect_tracks_score_one(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    assert main(["synth", "--video", str(clip), "--frames", "10", "--size", "192x128", "--seed", "4",
                 "--difficulty", "0.0-0.3"]) == 0
    truth = json.loads(clip.with_suffix(".json").read_text())
    names = {c["id"]: c["name"] for c in truth["categories"]}
    lines = []
    for image in truth["images"]:
        frame = image["frame_index"]
        dets = [{"box": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
                 "score": 0.9, "label": names[a["category_id"]], "track_id": 100 + a["track_id"]}
                for a in truth["annotations"] if a["image_id"] == image["id"]]
        lines.append(json.dumps({"frame": frame, "pts": frame / 15, "wall_time": 10.0 + frame / 15, "exit": 1,
                                 "latency_ms": 5.0, "detections": dets}))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["eval", "--events", str(events), "--truth", str(clip.with_suffix(".json"))]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["mota"] == 1.0 and scores["idf1"] == 1.0 and scores["hota"] > 0.99
