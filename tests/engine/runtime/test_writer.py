"""Writer: timestamps from pts, odd and changing sizes, clear errors, crash safety."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import UserError
from engine.runtime.capture import Capture
from engine.runtime.frames import Frame
from engine.runtime.queues import StreamEnd
from engine.runtime.writer import Writer, letterbox
from tests.support.media import drain, pattern, read_frames, read_times

# A hung capture or server must fail the test, not stall the whole run.
pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[3]


def frame(index: int, pts: float, size: tuple[int, int] = (64, 48)) -> Frame:
    width, height = size
    return Frame(index=index, pts=pts, wall_time=0.0, image=pattern(index, width, height))


def record(path: Path, frames: list[Frame], **kwargs) -> Writer:
    writer = Writer(path, **kwargs)
    writer.start()
    for item in frames:
        writer.input.put(item, timeout=5)
    writer.input.put(StreamEnd("eof"), timeout=5)
    assert writer.join(10), "writer did not finish"
    return writer


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_round_trip_keeps_irregular_pts_and_duration(tmp_path: Path, suffix: str) -> None:
    # Variable frame rate with a long gap, as from dropped frames or a reconnect.
    pts = [0.0, 0.033, 0.1, 0.5, 0.52, 1.9, 1.95, 3.0, 3.04, 4.25]
    path = tmp_path / f"rec{suffix}"
    writer = record(path, [frame(i, p) for i, p in enumerate(pts)])

    stats = writer.stats
    assert (stats.state, stats.frames_written, stats.frames_skipped) == ("closed", len(pts), 0)
    assert stats.last_pts == pytest.approx(4.25)
    assert stats.bytes > 0
    times = read_times(path)
    assert times == pytest.approx(pts, abs=1e-3)
    decoded = read_frames(path)
    assert (decoded[0].width, decoded[0].height) == (64, 48)
    reds = [int(f.to_ndarray(format="rgb24")[:, :, 0].mean()) for f in decoded]
    assert reds == pytest.approx([(i * 37) % 256 for i in range(len(pts))], abs=8)


def test_keyframe_every_interval_of_source_time(tmp_path: Path) -> None:
    path = tmp_path / "keys.mp4"
    # A still picture, so that no scene cut adds keyframes of its own.
    still = pattern(0, 64, 48)
    frames = [Frame(index=i, pts=i * 0.1, wall_time=0.0, image=still) for i in range(31)]
    record(path, frames, keyframe_interval=1.0, fps_hint=30)  # GOP cap alone would give 3 s
    keys = [round(float(f.time), 3) for f in read_frames(path) if f.key_frame]
    assert keys == [0.0, 1.0, 2.0, 3.0]


def test_duplicate_and_backward_pts_are_nudged_or_skipped(tmp_path: Path) -> None:
    pts = [0.0, 0.1, 0.1, 0.05, 0.3, -5.0, 0.4]
    path = tmp_path / "dup.mkv"
    writer = record(path, [frame(i, p) for i, p in enumerate(pts)])
    assert writer.stats.frames_written == 6
    assert writer.stats.frames_skipped == 1  # -5.0 is a clock jump, not jitter
    times = read_times(path)
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[0] == 0.0 and times[-1] == pytest.approx(0.4)


def test_recording_started_mid_stream_begins_at_zero(tmp_path: Path) -> None:
    path = tmp_path / "late.mkv"
    record(path, [frame(i, 120.0 + i * 0.1) for i in range(3)])
    assert read_times(path) == pytest.approx([0.0, 0.1, 0.2], abs=1e-3)


def test_recording_without_frames_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.mp4"
    writer = record(path, [])
    assert writer.stats.state == "closed"
    assert not path.exists()


def test_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    record(path, [frame(i, i / 10, size=(33, 17)) for i in range(5)])
    decoded = read_frames(path)
    assert len(decoded) == 5
    assert (decoded[0].width, decoded[0].height) == (34, 18)


def test_size_change_is_letterboxed_into_first_size(tmp_path: Path) -> None:
    path = tmp_path / "resize.mkv"
    frames = [frame(0, 0.0, (64, 48)), frame(1, 0.1, (128, 48)), frame(2, 0.2, (32, 24))]
    record(path, frames)
    decoded = read_frames(path)
    assert [(f.width, f.height) for f in decoded] == [(64, 48)] * 3


def test_letterbox_keeps_aspect_ratio_centred() -> None:
    image = np.full((10, 40, 3), 200, np.uint8)
    boxed = letterbox(image, 20, 20)
    assert boxed.shape == (20, 20, 3)
    assert boxed[10, 10, 0] == 200  # the picture is in the middle band
    assert boxed[0, 10, 0] == 0 and boxed[19, 10, 0] == 0  # black bars above and below


@pytest.mark.parametrize(
    ("make_path", "expected"),
    [
        (lambda tmp: tmp / "folder.mp4", "is a folder"),
        (lambda tmp: tmp / "file.txt" / "rec.mp4", "cannot write recording"),
        (lambda tmp: tmp / "rec.avi", "must end in .mp4 or .mkv"),
    ],
    ids=["folder", "parent-is-file", "suffix"],
)
def test_unwritable_output_is_a_clear_user_error(tmp_path: Path, make_path, expected: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder.mp4").mkdir()
    path = make_path(tmp_path)
    with pytest.raises(UserError, match=expected):
        Writer(path).start()


def test_failed_writer_keeps_draining_so_producers_never_block(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "bad.mp4", queue_size=1)
    writer.start()
    grey = Frame(index=0, pts=0.0, wall_time=0.0, image=np.zeros((8, 8), np.uint8))  # not RGB
    for _index in range(5):
        writer.input.put(grey, timeout=2)  # would block forever if nobody took items
    writer.input.put(StreamEnd("eof"), timeout=2)
    assert writer.join(2)
    assert writer.stats.state == "failed"
    assert "expected H x W x 3" in (writer.stats.last_error or "")


def test_stop_closes_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "stopped.mp4"
    writer = Writer(path)
    writer.start()
    for index in range(5):
        writer.input.put(frame(index, index / 10))
    time.sleep(0.3)
    writer.stop()
    assert writer.join(2)
    assert len(read_times(path)) == writer.stats.frames_written > 0


def test_capture_to_writer_round_trip(tmp_path: Path) -> None:
    """Frames from a capture go straight into a writer: same count and timestamps."""
    from tests.support.media import make_video

    source = tmp_path / "in.mkv"
    pts = make_video(source, [0.0, 0.2, 0.25, 0.7, 1.3])
    capture = Capture(source)
    capture.start()
    frames = drain(capture.output, 5).frames
    record(tmp_path / "out.mp4", frames)
    assert read_times(tmp_path / "out.mp4") == pytest.approx(pts, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_recording_survives_kill_9(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"killed{suffix}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "tests.support.record_synthetic", str(path), "--fps", "15"]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("RECORDING"), f"recorder did not start: {line!r}"
        t0 = float(line.split()[1])
        time.sleep(3.0)
        child.send_signal(signal.SIGKILL)
        killed_at = time.time() - t0
    finally:
        child.kill()
        child.wait(10)
    times = read_times(path)
    assert times, "nothing decodable after the kill"
    assert times[-1] >= killed_at - 2.0, f"only {times[-1]:.2f} s of {killed_at:.2f} s survived"
    assert all(b > a for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_full_disk_stops_the_recording_in_one_line_and_counts_what_the_file_holds(
        small_disk: Path, suffix: str, caplog: pytest.LogCaptureFixture) -> None:
    noise = np.random.default_rng(0)
    frames = [Frame(index=i, pts=i / 10, wall_time=0.0, image=noise.integers(0, 256, (96, 128, 3), np.uint8))
              for i in range(120)]  # incompressible: the 200 KiB disk fills after a few seconds of video
    path = small_disk / f"rec{suffix}"
    with caplog.at_level("DEBUG", logger="engine.runtime.writer"):
        writer = record(path, frames, keyframe_interval=0.5)

    stats = writer.stats
    assert stats.state == "failed"
    assert "No space left on device" in stats.last_error and "\n" not in stats.last_error
    kept = len(read_times(path))
    assert 0 < kept < len(frames)
    assert stats.frames_written == kept, "the count is what reached the file, not what the encoder took"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert "No space left on device" in warnings[0].getMessage()


def test_a_file_in_the_way_of_the_folder_is_named(tmp_path):
    from engine.errors import UserError
    from engine.runtime.writer import Writer

    (tmp_path / "notes").write_text("a file, not a folder")
    with pytest.raises(UserError, match="notes is a file, not a folder"):
        Writer(str(tmp_path / "notes" / "out.mp4")).start()
