"""The `synth` command: dataset and video modes, JSON summary, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _summary(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_dataset_mode_writes_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    assert main(["synth", "--out", str(out), "--images", "5", "--seed", "1", "--imgsz", "64"]) == 0
    summary = _summary(capsys)
    assert summary["kind"] == "dataset" and summary["images"] == 5 and summary["train"] + summary["val"] == 5
    assert Path(summary["data_yaml"]) == out / "data.yaml" and (out / "data.yaml").is_file()
    assert len(list((out / "images").rglob("*.jpg"))) == 5


def test_video_mode_writes_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "clip.mp4"
    args = ["synth", "--video", str(video), "--frames", "6", "--seed", "2", "--fps", "10", "--size", "96x64"]
    assert main(args) == 0
    summary = _summary(capsys)
    assert summary["kind"] == "video" and summary["frames"] == 6 and summary["size"] == [96, 64]
    assert summary["duration_s"] == pytest.approx(0.6)
    assert video.is_file() and Path(summary["ground_truth"]) == tmp_path / "clip.json"
    assert len(json.loads((tmp_path / "clip.json").read_text())["images"]) == 6


def _clip_truth(tmp_path: Path, name: str, difficulty: str | None) -> dict:
    video = tmp_path / f"{name}.mp4"
    args = ["synth", "--video", str(video), "--frames", "8", "--fps", "4", "--size", "192x128", "--seed", "5"]
    assert main([*args, *(["--difficulty", difficulty] if difficulty else [])]) == 0
    return json.loads(video.with_suffix(".json").read_text())


def test_difficulty_range_bounds_the_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calm, busy = _clip_truth(tmp_path, "calm", "0.0-0.3"), _clip_truth(tmp_path, "busy", "0.7-1.0")
    assert _summary(capsys)["difficulty"] == [0.7, 1.0]
    assert calm["info"]["difficulty_range"] == [0.0, 0.3] and busy["info"]["difficulty_range"] == [0.7, 1.0]
    calm_levels = [image["difficulty_factors"]["difficulty"] for image in calm["images"]]
    busy_levels = [image["difficulty_factors"]["difficulty"] for image in busy["images"]]
    assert all(0.0 <= v <= 0.3 for v in calm_levels) and all(0.7 <= v <= 1.0 for v in busy_levels)
    # The generator aims for more, smaller objects as the difficulty rises.
    assert len(calm["annotations"]) < len(busy["annotations"])

    def mean_area(truth: dict) -> float:
        return sum(a["bbox"][2] * a["bbox"][3] for a in truth["annotations"]) / len(truth["annotations"])

    assert mean_area(calm) > 2 * mean_area(busy)


def test_default_difficulty_is_the_full_range(tmp_path: Path) -> None:
    default, full = _clip_truth(tmp_path, "default", None), _clip_truth(tmp_path, "full", "0-1")
    assert default["info"]["difficulty_range"] == [0.0, 1.0]
    assert default["annotations"] == full["annotations"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --out"),
        (["--out", "{tmp}/a", "--video", "{tmp}/b.mp4"], "exactly one of --out"),
        (["--out", "{tmp}/a", "--images", "-4"], "at least 1, got -4"),
        (["--out", "{tmp}/a", "--imgsz", "0"], "image size"),
        (["--out", "{tmp}/a", "--frames", "3"], "--frames does not apply with --out"),
        (["--video", "{tmp}/b.mp4", "--images", "3"], "--images does not apply with --video"),
        (["--video", "{tmp}/b.mp4", "--size", "640by360"], "--size must look like WIDTHxHEIGHT"),
        (["--video", "{tmp}/b.mp4", "--size", "641x360"], "even"),
        (["--video", "{tmp}/b.mp4", "--frames", "-1"], "at least 1, got -1"),
        (["--out", "{tmp}/blocker/data", "--images", "1"], "cannot write"),
        (["--video", "{tmp}/blocker/b.mp4", "--frames", "1"], "cannot"),
        (["--video", "{tmp}/b.mp4", "--difficulty", "0.7-0.3"], "0 <= low <= high <= 1, got 0.7-0.3"),
        (["--video", "{tmp}/b.mp4", "--difficulty", "0.5-1.5"], "0 <= low <= high <= 1, got 0.5-1.5"),
        (["--video", "{tmp}/b.mp4", "--difficulty=-0.2-0.3"], "0 <= low <= high <= 1, got -0.2-0.3"),
        (["--video", "{tmp}/b.mp4", "--difficulty", "0.3"], "--difficulty must be two numbers LO-HI"),
        (["--video", "{tmp}/b.mp4", "--difficulty", "low-high"], "--difficulty must be two numbers LO-HI"),
        (["--out", "{tmp}/a", "--difficulty", "0-1"], "--difficulty does not apply with --out"),
    ],
)
def test_bad_values_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "blocker").write_text("a file where a directory is expected")
    assert main(["synth", *(a.replace("{tmp}", str(tmp_path)) for a in args)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_non_empty_output_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert main(["synth", "--out", str(tmp_path), "--images", "1", "--imgsz", "64"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path), "--images", "1", "--imgsz", "64", "--overwrite"]) == 0


def test_runs_as_a_subprocess_with_exit_codes(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(ROOT / "main.py"), "synth", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)

    ok = run("--out", str(tmp_path / "d"), "--images", "2", "--imgsz", "64")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["images"] == 2
    bad = run("--video", str(tmp_path / "v.mp4"), "--size", "wide")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--size" in bad.stderr
