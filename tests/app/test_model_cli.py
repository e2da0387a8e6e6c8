"""The `detect` and `info` commands through the real entry point (exit codes, one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.cli import cli


@pytest.fixture()
def image(tmp_path) -> Path:
    img = np.full((120, 200, 3), 80, np.uint8)
    cv2.circle(img, (100, 60), 30, (255, 255, 255), -1)
    path = tmp_path / "in.png"
    cv2.imwrite(str(path), img)
    return path


def test_detect_with_reference_checkpoint(reference_dir, image, tmp_path):
    out = tmp_path / "out.jpg"
    result = cli("detect", "--weights", str(reference_dir / "parity" / "dy-yolov7-step2-w0.25.pt"),
                     "--source", str(image), "--out", str(out), "--route", "second", "--conf", "0.3")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["exit"] == 2 and summary["threshold"] is None
    assert cv2.imread(str(out)).shape == (120, 200, 3)


def test_info_reports_gflops_per_exit():
    result = cli("info", "--config", "dy-yolov7", "--imgsz", "640")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["parameters"] == 80_621_333
    assert info["gflops"]["exit1"] == pytest.approx(104.5, rel=0.01)
    assert info["gflops"]["exit2"] == pytest.approx(181.7, rel=0.01)


@pytest.mark.parametrize("args, message", [
    (["detect", "--weights", "missing.pt", "--source", "IMAGE"], "weights file not found"),
    (["detect", "--weights", "W", "--source", "missing.png"], "image not found"),
    (["detect", "--weights", "W", "--source", "IMAGE", "--threshold", "1.5"], "between 0 and 1"),
    (["info", "--config", "no-such-model"], "config not found"),
    (["info", "--config", "dy-yolov7-tiny", "--imgsz", "100"], "multiple of 32"),
])
def test_bad_input_gives_one_line(args, message, image, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"junk")
    args = [str(image) if a == "IMAGE" else str(weights) if a == "W" else a for a in args]
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
