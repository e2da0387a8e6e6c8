"""`calibrate --source`: thresholds and exit costs from a user's own unlabelled video or image folder."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from app.cli import main
from engine.model.loading import load_predictor
from tests.support.media import make_video, pattern

FRAMES = 30


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("footage") / "street.mp4"
    make_video(path, frames=FRAMES, fps=10, size=(96, 64))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("footage") / "images"
    path.mkdir()
    for index in range(20):
        cv2.imwrite(str(path / f"frame{index}.png"), pattern(index * 3, 80 + 4 * (index % 3), 60)[:, :, ::-1])
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_calibration(path: Path) -> dict | None:
    """The calibration a model file holds, as written (raw router scores)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        return json.loads(file.metadata()["calibration"])


def calibrate(capsys, *args: str) -> tuple[int, dict | None, list[str]]:
    """Run `calibrate` in this process: exit status, its JSON line (if any) and its stderr lines."""
    status = main(["calibrate", "--backend", "torch", *args])
    captured = capsys.readouterr()
    return (status, *parse_output(captured.out, captured.err))


def parse_output(out: str, err: str) -> tuple[dict | None, list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None, err.strip().splitlines()


@dataclass(frozen=True)
class Calibrated:
    out: Path
    status: int
    report: dict | None
    err: list[str]
    weights_untouched: bool


@pytest.fixture(scope="module")
def calibrated(tiny_weights, video, tmp_path_factory) -> Calibrated:
    """The tiny model calibrated on the whole test video into a new file."""
    out = tmp_path_factory.mktemp("calibrated") / "calibrated.safetensors"
    before = digest(tiny_weights)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["calibrate", "--backend", "torch", "--weights", str(tiny_weights), "--source", str(video),
                       "--out", str(out)])
    return Calibrated(out, status, *parse_output(stdout.getvalue(), stderr.getvalue()),
                      weights_untouched=digest(tiny_weights) == before)


def test_video_calibration_is_written_to_out_and_sends_the_asked_share(video, calibrated):
    out, report, err = calibrated.out, calibrated.report, calibrated.err
    assert calibrated.status == 0, err
    assert (report["images"], report["frames_read"], report["source"]) == (FRAMES, FRAMES, str(video))
    assert report["saved_to"] == str(out) and calibrated.weights_untouched
    assert f"calibrated on {FRAMES} frames of {video} ({FRAMES} read) at 64 px" in err
    assert any(line.strip().startswith("exit costs:") for line in err)
    stored = stored_calibration(out)
    assert stored["imgsz"] == 64 and len(stored["thresholds"]) == 11
    assert [round(t, 5) for t in stored["thresholds"]] == list(report["thresholds"].values())
    assert stored["thresholds"] == sorted(stored["thresholds"])
    if stored["exit1_ms"]:  # dropped, with a warning, when a busy machine made exit 1 look slower
        assert 0 < stored["exit1_ms"] < stored["exit2_ms"]


def run_summary(capsys, weights: Path, video: Path, *routing: str) -> dict:
    status = main(["run", "--weights", str(weights), "--backend", "torch", "--source", str(video), *routing,
                   "--no-progress", "--no-track"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0 and summary["frames_processed"] == FRAMES
    return summary


@pytest.mark.parametrize("share", [0.2, 0.8])
def test_run_at_a_stored_threshold_sends_that_share_of_the_footage_to_exit_2(share, video, calibrated, capsys):
    # `run --threshold` reads thresholds on the readable scale, as the loaded calibration gives them.
    readable = load_predictor(calibrated.out, backend="torch").calibration
    summary = run_summary(capsys, calibrated.out, video, "--threshold", repr(readable.threshold_for(share)))
    assert summary["second_exit_fraction"] == pytest.approx(share, abs=0.1)


def test_run_with_a_second_fraction_sends_about_that_share(video, calibrated, capsys):
    summary = run_summary(capsys, calibrated.out, video, "--second-fraction", "0.3")
    assert summary["second_exit_fraction"] == pytest.approx(0.3, abs=0.15)


def test_folder_is_sampled_across_and_weights_are_updated_in_place(tiny_weights, folder, tmp_path, capsys):
    weights = shutil.copy(tiny_weights, tmp_path / "mine.safetensors")
    status, report, err = calibrate(capsys, "--weights", str(weights), "--source", str(folder), "--max-images", "8")
    assert status == 0, err
    assert (report["images"], report["frames_read"], report["saved_to"]) == (8, 20, str(weights))
    stored = stored_calibration(weights)
    assert stored["imgsz"] == 64 and [round(t, 5) for t in stored["thresholds"]] == list(report["thresholds"].values())


def test_the_bundled_model_is_rewritten_only_with_in_place(tiny_weights, video, tmp_path, capsys, monkeypatch):
    bundled = Path(shutil.copy(tiny_weights, tmp_path / "bundled.safetensors"))
    monkeypatch.setattr("app.commands.common.DEFAULT_WEIGHTS", bundled)
    before = digest(bundled)
    status, report, err = calibrate(capsys, "--source", str(video), "--max-images", "6")
    assert status == 2 and report is None and digest(bundled) == before
    assert len(err) == 1 and "rewrite the bundled model" in err[0] and "--out" in err[0]
    status, report, err = calibrate(capsys, "--source", str(video), "--max-images", "6", "--in-place")
    assert status == 0 and report["saved_to"] == str(bundled) and report["images"] == 6
    assert stored_calibration(bundled)["imgsz"] == 64


ERRORS = {
    "neither": ([], "exactly one of --data DATASET"),
    "both": (["--data", "data.yaml", "--source", "{video}"], "not both"),
    "missing_file": (["--source", "{tmp}/nope.mp4"], "no such file or directory"),
    "not_a_video": (["--source", "{tmp}/notes.mp4"], "not a readable video file"),
    "folder_without_images": (["--source", "{tmp}/empty"], "folder has no images"),
    "folder_of_unreadable_images": (["--source", "{tmp}/broken"], "none of the 1 images is readable"),
    "live_source": (["--source", "rtsp://127.0.0.1:9/cam"], "not a live source"),
    "no_frames_asked": (["--source", "{video}", "--max-images", "0"], "--max-images must be positive"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_input_is_one_error_line(case, tiny_weights, video, tmp_path, capsys):
    (tmp_path / "notes.mp4").write_text("not a video\n" * 20)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "frame0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    args, expected = ERRORS[case]
    out = tmp_path / "out.safetensors"
    status, report, err = calibrate(capsys, "--weights", str(tiny_weights), "--out", str(out),
                                    *[a.format(video=video, tmp=tmp_path) for a in args])
    assert status == 2 and report is None and not out.exists()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
