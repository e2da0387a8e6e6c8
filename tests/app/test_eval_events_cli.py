"""`eval --events --truth`: a run's events scored against its clip, offline and as streamed; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "assets" / "dy-yolov7-tiny.safetensors"
FPS = 10
KEYS = {"events", "truth", "map", "map50", "streaming_map", "streaming_map50", "frames", "processed",
        "second_exit_fraction", "mean_latency_ms", "mean_result_age_frames", "mota", "idf1", "hota"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calm 12-frame clip (large objects, so boxes one frame old still overlap their truth)."""
    video = tmp_path_factory.mktemp("clip") / "clip.mp4"
    args = ["synth", "--video", str(video), "--frames", "12", "--fps", str(FPS), "--size", "192x128",
            "--seed", "1", "--difficulty", "0.0-0.3"]
    assert main(args) == 0
    return video


def _events_from_truth(truth_path: Path, out: Path, keep_every: int = 1, empty: bool = False) -> Path:
    """Events that detect exactly the truth, 5 ms after capture, captured at the clip's rate."""
    truth = json.loads(truth_path.read_text())
    names = {c["id"]: c["name"] for c in truth["categories"]}
    per_image: dict[int, list[dict]] = {image["id"]: [] for image in truth["images"]}
    for a in truth["annotations"]:
        x, y, w, h = a["bbox"]
        per_image[a["image_id"]].append({"box": [x, y, x + w, y + h], "score": 0.9, "class": a["category_id"],
                                         "label": names[a["category_id"]]})
    lines = []
    for image in truth["images"][::keep_every]:
        frame = image["frame_index"]
        lines.append(json.dumps({
            "frame": frame, "pts": frame / FPS, "wall_time": 5000.0 + frame / FPS, "exit": 1, "score": 0.9,
            "threshold": 0.5, "latency_ms": 5.0, "detections": [] if empty else per_image[image["id"]],
        }))
    out.write_text("\n".join(lines) + "\n")
    return out


def _score(capsys: pytest.CaptureFixture[str], events: Path, truth: Path) -> dict:
    assert main(["eval", "--events", str(events), "--truth", str(truth)]) == 0
    captured = capsys.readouterr()
    assert "streaming" in captured.err  # the readable table
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == KEYS
    return result


def test_perfect_events_score_one(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _events_from_truth(clip.with_suffix(".json"), tmp_path / "ev.jsonl")
    result = _score(capsys, events, clip.with_suffix(".json"))
    assert result["map"] == pytest.approx(1.0, abs=1e-3) and result["map50"] == pytest.approx(1.0, abs=1e-3)
    assert result["frames"] == result["processed"] == 12
    # 5 ms late: every frame shows the previous frame's boxes (and the first none), which costs a little.
    assert 0.0 < result["streaming_map"] < result["map"] and result["mean_result_age_frames"] == 1.0


def test_skipped_frames_cost_streaming_accuracy(clip: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    truth = clip.with_suffix(".json")
    every = _score(capsys, _events_from_truth(truth, tmp_path / "all.jsonl"), truth)
    half = _score(capsys, _events_from_truth(truth, tmp_path / "half.jsonl", keep_every=2), truth)
    assert half["processed"] == 6 and half["frames"] == 11  # up to the last processed frame, 10
    assert half["map"] == pytest.approx(1.0, abs=1e-3)
    assert 0.0 < half["streaming_map"] < every["streaming_map"] < half["map"]


def test_no_detections_score_zero(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _events_from_truth(clip.with_suffix(".json"), tmp_path / "empty.jsonl", empty=True)
    result = _score(capsys, events, clip.with_suffix(".json"))
    assert result["map"] == result["streaming_map"] == result["map50"] == 0.0


def _write_bad_inputs(tmp: Path, truth: Path) -> None:
    good = _events_from_truth(truth, tmp / "good.jsonl")
    (tmp / "notjson.jsonl").write_text("frame 0: 3 circles\n")
    (tmp / "notjson.json").write_text("{not json")
    (tmp / "empty.jsonl").write_text("\n")
    (tmp / "notevent.jsonl").write_text(json.dumps({"frame": 0}) + "\n")
    record = json.loads(good.read_text().splitlines()[0])
    (tmp / "beyond.jsonl").write_text(json.dumps({**record, "frame": 40, "pts": 4.0}) + "\n")
    (tmp / "otherfps.jsonl").write_text(json.dumps({**record, "frame": 3, "pts": 0.1}) + "\n")
    (tmp / "twice.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n")
    label = [{"box": [0, 0, 9, 9], "score": 0.5, "class": 0, "label": "person"}]
    (tmp / "label.jsonl").write_text(json.dumps({**record, "detections": label}) + "\n")
    (tmp / "dataset.json").write_text(json.dumps({"images": [{"id": 0, "file_name": "a.jpg"}], "categories": []}))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "{tmp}/missing.jsonl", "--truth", "{truth}"], "events file not found"),
        (["--events", "{tmp}/good.jsonl", "--truth", "{tmp}/missing.json"], "truth file not found"),
        (["--events", "{tmp}/notjson.jsonl", "--truth", "{truth}"], "notjson.jsonl:1: not JSON"),
        (["--events", "{tmp}/good.jsonl", "--truth", "{tmp}/notjson.json"], "not valid JSON"),
        (["--events", "{tmp}/good.jsonl", "--truth", "{tmp}/dataset.json"], "not a clip's ground truth"),
        (["--events", "{tmp}/empty.jsonl", "--truth", "{truth}"], "no events"),
        (["--events", "{tmp}/notevent.jsonl", "--truth", "{truth}"], "notevent.jsonl:1: not an event"),
        (["--events", "{tmp}/beyond.jsonl", "--truth", "{truth}"], "frame 40 is beyond the truth's 12 frames"),
        (["--events", "{tmp}/otherfps.jsonl", "--truth", "{truth}"], "frame 3 has pts 0.1 s"),
        (["--events", "{tmp}/twice.jsonl", "--truth", "{truth}"], "frame 0 appears twice"),
        (["--events", "{tmp}/label.jsonl", "--truth", "{truth}"], "label 'person' is not a class"),
        (["--events", "{tmp}/good.jsonl", "--truth", "{truth}", "--data", "{tmp}"], "mutually exclusive"),
        (["--events", "{tmp}/good.jsonl"], "--events and --truth go together"),
        (["--truth", "{truth}"], "--events and --truth go together"),
        (["--events", "{tmp}/good.jsonl", "--truth", "{truth}", "--weights", "w"], "--weights does not apply"),
        ([], "give --data D"),
    ],
)
def test_bad_inputs_give_one_line_errors(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    truth = clip.with_suffix(".json")
    _write_bad_inputs(tmp_path, truth)
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{truth}", str(truth)) for a in args]
    assert main(["eval", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model not present")
def test_a_real_run_is_scored(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "run.jsonl"
    assert main(["run", "--source", str(clip), "--weights", str(BUNDLED), "--events", str(events)]) == 0
    capsys.readouterr()
    result = _score(capsys, events, clip.with_suffix(".json"))
    assert result["frames"] == 12 and 1 <= result["processed"] <= 12
    # The bundled model finds a calm clip's large shapes well; the streamed score can only lose.
    assert 0.3 < result["map"] <= 1.0 and result["map50"] >= result["map"]
    assert 0.0 <= result["streaming_map"] <= result["map"] + 0.05
    assert 0.0 <= result["second_exit_fraction"] <= 1.0 and result["mean_latency_ms"] > 0
