"""Capture from files and image folders: policies, timestamps, pixel formats, shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.runtime.capture import Capture, probe_source
from engine.runtime.queues import DropPolicy, StreamEnd
from engine.runtime.sources import SourceKind
from tests.support.media import drain, make_video, pattern

# A hung capture or server must fail the test, not stall the whole run.
pytestmark = pytest.mark.timeout(60)


def run_capture(capture: Capture, timeout: float = 10.0, delay: float = 0.0):
    capture.start()
    result = drain(capture.output, timeout, delay=delay)
    assert capture.join(2.0), "capture thread did not exit"
    return result


def test_file_all_frames_delivers_every_frame_with_source_pts(tmp_path: Path) -> None:
    # Variable frame rate: irregular gaps must come through exactly.
    pts = [0.0, 0.04, 0.1, 0.35, 0.36, 0.9, 1.0, 1.5, 1.52, 2.0]
    path = tmp_path / "vfr.mkv"
    make_video(path, pts)
    capture = Capture(path)
    assert capture.policy is DropPolicy.ALL_FRAMES
    result = run_capture(capture, delay=0.01)  # a slow consumer must not lose anything

    assert result.end == StreamEnd("eof")
    assert [f.index for f in result.frames] == list(range(len(pts)))
    assert [f.pts for f in result.frames] == pytest.approx(pts, abs=1e-3)
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in result.frames)
    assert all(f.image.flags["C_CONTIGUOUS"] for f in result.frames)
    # Decoded in order: the encoded brightness ramp survives.
    reds = [int(f.image[:, :, 0].mean()) for f in result.frames]
    assert reds == pytest.approx([(i * 37) % 256 for i in range(len(pts))], abs=6)
    stats = capture.stats
    assert (stats.state, stats.frames_read, stats.frames_dropped) == ("eof", len(pts), 0)


def test_file_with_start_offset_starts_at_zero(tmp_path: Path) -> None:
    path = tmp_path / "offset.mkv"
    make_video(path, [5.0, 5.1, 5.3])
    result = run_capture(Capture(path))
    assert [f.pts for f in result.frames] == pytest.approx([0.0, 0.1, 0.3], abs=1e-3)


def test_image_folder_plays_in_natural_order_at_fixed_rate(tmp_path: Path) -> None:
    for index in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"img{index}.png"), pattern(index, 31, 17)[:, :, ::-1])
    (tmp_path / "notes.txt").write_text("not an image")
    capture = Capture(tmp_path, folder_fps=4.0)
    result = run_capture(capture)
    assert capture.spec.kind is SourceKind.IMAGES
    assert [f.pts for f in result.frames] == pytest.approx([0.0, 0.25, 0.5])
    reds = [int(f.image[0, 0, 0]) for f in result.frames]
    assert reds == [(i * 37) % 256 for i in (1, 2, 10)]
    assert result.frames[0].size == (31, 17)


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "size"),
    [
        ("odd_444.mkv", "libx264", "yuv444p", (33, 17)),
        ("tiny.mp4", "libx264", "yuv420p", (32, 32)),
        ("ten_bit.mkv", "ffv1", "yuv420p10le", (40, 30)),
        ("mjpeg.avi", "mjpeg", "yuvj420p", (48, 36)),
        ("odd_mjpeg.mkv", "mjpeg", "yuvj422p", (35, 21)),
    ],
)
def test_odd_but_valid_formats_decode_to_rgb(tmp_path: Path, name: str, codec: str, pix_fmt: str, size) -> None:
    path = tmp_path / name
    make_video(path, frames=4, size=size, codec=codec, pix_fmt=pix_fmt)
    info = probe_source(path)
    assert (info.width, info.height) == size
    result = run_capture(Capture(path))
    assert result.end == StreamEnd("eof")
    assert len(result.frames) == 4
    width, height = size
    for frame in result.frames:
        assert frame.image.shape == (height, width, 3)
        assert frame.image.dtype == np.uint8
    # The constant blue plane (128) survives any of these conversions.
    assert abs(float(result.frames[-1].image[:, :, 2].mean()) - 128) < 8


def test_4k_frame_decodes(tmp_path: Path) -> None:
    path = tmp_path / "uhd.mkv"
    make_video(path, frames=2, size=(3840, 2160))
    result = run_capture(Capture(path))
    assert [f.size for f in result.frames] == [(3840, 2160)] * 2


def test_probe_file_reports_size_rate_and_count(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    make_video(path, frames=12, fps=10, size=(64, 48))
    info = probe_source(path)
    assert (info.width, info.height, info.is_live, info.frame_count) == (64, 48, False, 12)
    assert info.fps == pytest.approx(10.0)
    assert info.kind is SourceKind.FILE


def test_live_policy_drops_oldest_and_counts_when_consumer_is_slow(tmp_path: Path) -> None:
    path = tmp_path / "fast.mkv"
    make_video(path, frames=40, fps=100)
    capture = Capture(path, realtime=True, queue_size=2)
    assert capture.policy is DropPolicy.LIVE
    result = run_capture(capture, delay=0.05)

    stats = capture.stats
    assert result.end == StreamEnd("eof")
    assert stats.frames_read == 40
    assert stats.frames_dropped > 0
    assert len(result.frames) + stats.frames_dropped == 40
    indices = [f.index for f in result.frames]
    assert indices == sorted(indices)
    assert indices[-1] == 39, "the newest frame must win"


def test_realtime_file_is_paced_at_native_rate(tmp_path: Path) -> None:
    path = tmp_path / "paced.mkv"
    make_video(path, frames=6, fps=10)
    started = time.monotonic()
    result = run_capture(Capture(path, realtime=True, queue_size=8))
    assert len(result.frames) == 6
    assert time.monotonic() - started >= 0.45


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("capture", "probe-reader"))]


@pytest.mark.parametrize("realtime", [False, True])
def test_stop_joins_all_threads_quickly(tmp_path: Path, realtime: bool) -> None:
    path = tmp_path / "long.mkv"
    make_video(path, frames=60, fps=10)
    capture = Capture(path, realtime=realtime, queue_size=2)
    capture.start()
    assert len(drain(capture.output, 5, limit=2).frames) == 2
    # The consumer stops reading: ALL_FRAMES is now blocked on a full queue, LIVE is pacing.
    time.sleep(0.2)
    started = time.monotonic()
    capture.stop()
    assert capture.join(2.0)
    assert time.monotonic() - started < 1.0
    end = drain(capture.output, 2).end
    assert end == StreamEnd("stopped")
    assert capture.stats.state == "stopped"
    deadline = time.monotonic() + 2.0
    while reader_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not reader_threads()
