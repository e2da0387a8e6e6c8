"""Damaged media (issue #12): a header without a decoder, torn last packets, broken images in a folder."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import pytest

from engine.errors import SourceError
from engine.runtime.capture import Capture, probe_source
from tests.support.media import drain, make_video, pattern

pytestmark = pytest.mark.timeout(60)


def moov_first_video(path: Path, frames: int = 300) -> list[tuple[int, int]]:
    """A 320x240 H.264 MP4 with its index up front, as cameras write them; (position, size) of each packet."""
    make_video(path, frames=frames, fps=30, size=(320, 240), options={"movflags": "faststart"})
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size]


def single_threaded_count(path: Path) -> int:
    """Frames a plain (unthreaded) decoder gets out of ``path``, skipping what it cannot decode."""
    count = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                count += len(packet.decode())
            except av.FFmpegError:
                continue
    return count


def test_video_stream_without_a_decoder_is_a_clear_damaged_video_error(tmp_path: Path) -> None:
    source = tmp_path / "src.mp4"
    moov_first_video(source, frames=10)
    damaged = tmp_path / "damaged.mp4"
    # The sample description's codec tag is what a flipped byte in the moov often hits.
    damaged.write_bytes(source.read_bytes().replace(b"avc1", b"zzzz"))

    with pytest.raises(SourceError, match="damaged video") as caught:
        probe_source(damaged)
    assert "NoneType" not in str(caught.value)
    capture = Capture(damaged)
    capture.start()
    result = drain(capture.output, 10)
    assert result.frames == [] and result.end is not None and result.end.failed
    assert "damaged video" in str(result.end.error)


def test_torn_last_packet_keeps_every_decodable_frame_and_says_truncated(tmp_path: Path) -> None:
    source = tmp_path / "src.mp4"
    packets = moov_first_video(source)
    last_pos, last_size = packets[-1]
    torn = tmp_path / "torn.mp4"
    torn.write_bytes(source.read_bytes()[: last_pos + last_size // 2])

    capture = Capture(torn)
    capture.start()
    result = drain(capture.output, 30)
    assert result.end is not None and result.end.reason == "eof"
    assert len(result.frames) == single_threaded_count(torn) == len(packets) - 1
    assert "truncated" in str(result.end.error)


def test_file_cut_at_a_packet_boundary_is_reported_truncated(tmp_path: Path) -> None:
    source = tmp_path / "src.mp4"
    packets = moov_first_video(source, frames=60)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[: packets[40][0]])  # the index still lists all 60

    capture = Capture(cut)
    capture.start()
    result = drain(capture.output, 30)
    assert len(result.frames) == 40
    assert result.end is not None and result.end.reason == "eof"
    assert "index lists 60 frames" in str(result.end.error)


def test_image_folder_names_each_broken_image_once_and_libjpeg_stays_quiet(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    for index in range(5):
        cv2.imwrite(str(tmp_path / f"{index:02d}.jpg"), pattern(index, 96, 64))
    whole = (tmp_path / "01.jpg").read_bytes()
    (tmp_path / "01.jpg").write_bytes(whole[: len(whole) // 2])  # cut mid-scan
    (tmp_path / "03.jpg").write_bytes(b"not an image at all")

    with caplog.at_level("DEBUG"):
        probe_source(tmp_path)
        capture = Capture(tmp_path)
        capture.start()
        result = drain(capture.output, 20)
    assert len(result.frames) == 3
    assert result.end is not None and result.end.reason == "eof"
    assert "01.jpg (truncated)" in str(result.end.error) and "03.jpg (not readable)" in str(result.end.error)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("01.jpg" in w for w in warnings) == 1 and sum("03.jpg" in w for w in warnings) == 1, warnings
    assert "Premature end of JPEG" not in capfd.readouterr().err
