"""Bad inputs give one clear SourceError, quickly, from probe_source and from Capture."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from engine.errors import SourceError, UserError
from engine.runtime.capture import Capture, probe_source
from engine.runtime.queues import StreamEnd
from tests.support.media import drain, make_video

# A hung capture or server must fail the test, not stall the whole run.
pytestmark = pytest.mark.timeout(60)


def make_text_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("these are meeting notes, not a video\n" * 20)
    return path


def make_audio_only(tmp_path: Path) -> Path:
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        samples.sample_rate = 16000
        samples.pts = 0
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    return path


def make_cut_mp4(tmp_path: Path) -> Path:
    """A regular MP4 cut in half: its index (``moov``) is at the end, so nothing is readable."""
    whole = tmp_path / "whole.mp4"
    make_video(whole, frames=20)
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


BAD_FILES = {
    "text file named .mp4": (make_text_mp4, "not a readable video file"),
    "audio only": (make_audio_only, "has no video stream"),
    "truncated mp4 without index": (make_cut_mp4, "not a readable video file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_fails_probe_and_capture_with_one_message(tmp_path: Path, case: str) -> None:
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(SourceError, match=expected) as probe_error:
        probe_source(path)
    assert str(path) in str(probe_error.value)
    assert "\n" not in str(probe_error.value)

    capture = Capture(path)
    capture.start()
    result = drain(capture.output, 5)
    assert capture.join(2)
    assert result.frames == []
    assert isinstance(result.end, StreamEnd) and result.end.failed
    assert isinstance(result.end.error, SourceError)
    assert expected in str(result.end.error)
    assert capture.stats.state == "failed"
    assert capture.stats.last_error == str(result.end.error)
    assert time.monotonic() - started < 5


def make_empty_file(tmp: Path) -> Path:
    (tmp / "empty.mp4").write_bytes(b"")
    return tmp / "empty.mp4"


def make_empty_folder(tmp: Path) -> Path:
    (tmp / "frames").mkdir()
    (tmp / "frames" / "readme.txt").write_text("no images here")
    return tmp / "frames"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "missing.mp4", "no such file or directory"),
        (make_empty_file, "file is empty"),
        (make_empty_folder, "folder has no images"),
        (lambda tmp: 99, "camera 99: not found"),
        (lambda tmp: "/dev/video97", "no such camera device"),
        (lambda tmp: "ftp://example.invalid/x.mp4", "unsupported URL scheme"),
        (lambda tmp: "", "no video source given"),
    ],
    ids=["missing", "empty", "no-images", "camera-index", "camera-path", "scheme", "blank"],
)
def test_impossible_sources_fail_at_construction(tmp_path: Path, make, expected: str) -> None:
    source = make(tmp_path)
    with pytest.raises(SourceError, match=expected):
        probe_source(source)
    with pytest.raises(SourceError, match=expected):
        Capture(source)


def test_source_error_is_a_user_error() -> None:
    # The CLI and GUI print UserErrors as one line without a traceback.
    assert issubclass(SourceError, UserError)


def test_truncated_matroska_decodes_what_is_there(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mkv"
    make_video(whole, frames=30, size=(64, 48))
    cut = tmp_path / "cut.mkv"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])

    capture = Capture(cut)
    capture.start()
    result = drain(capture.output, 5)
    assert capture.join(2)
    assert 3 < len(result.frames) < 30
    assert [f.index for f in result.frames] == list(range(len(result.frames)))
    assert result.end is not None and result.end.reason == "eof"
    if result.end.error is not None:  # damage is reported when FFmpeg notices it
        assert "truncated or damaged" in str(result.end.error)
    assert capture.stats.state == "eof"


def test_unreadable_image_in_folder_is_skipped(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a1.png"), np.zeros((8, 10, 3), np.uint8))
    (tmp_path / "a2.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "a3.png"), np.zeros((8, 10, 3), np.uint8))
    capture = Capture(tmp_path)
    capture.start()
    result = drain(capture.output, 5)
    assert len(result.frames) == 2
    assert result.end is not None and result.end.reason == "eof"
    assert "a2.png" in str(result.end.error)


def test_folder_of_unreadable_images_fails(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"nope")
    with pytest.raises(SourceError, match="none of the 1 images is readable"):
        probe_source(tmp_path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a Linux device node")
def test_device_that_is_not_a_camera_fails_without_retrying() -> None:
    with pytest.raises(SourceError, match="/dev/null: cannot open camera"):
        probe_source("/dev/null")
    capture = Capture("/dev/null", backoff_initial=5.0)
    capture.start()
    result = drain(capture.output, 3)
    assert capture.join(1)
    assert result.end is not None and result.end.failed
    assert capture.stats.reconnects == 0
