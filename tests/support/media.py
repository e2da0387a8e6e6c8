"""Small synthetic videos and read-back helpers for the runtime tests (PyAV only, no torch)."""

from __future__ import annotations

import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.runtime.frames import Frame
from engine.runtime.queues import StreamEnd

TIME_BASE = Fraction(1, 1000)


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """A picture whose mean brightness encodes ``index`` (survives lossy coding)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = (index * 37) % 256
    image[:, :, 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image[:, :, 2] = 128
    return image


def make_video(
    path: Path,
    pts: Sequence[float] | None = None,
    *,
    frames: int = 12,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> list[float]:
    """Encode a short test video; returns the presentation times (seconds) that were written.

    Args:
        path: output file; the container follows its suffix.
        pts: timestamps in seconds (irregular for variable frame rate); default ``i / fps``.
        frames: number of frames when ``pts`` is not given.
        fps: nominal rate declared to the encoder.
        size: (width, height); odd values are fine for codecs that allow them.
        codec: encoder name.
        pix_fmt: encoder pixel format (e.g. ``yuv444p``, ``yuv420p10le``, ``yuvj420p``).
        options: container options.
    """
    times = list(pts) if pts is not None else [i / fps for i in range(frames)]
    width, height = size
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = TIME_BASE
        if codec == "libx264":
            stream.options = {"tune": "zerolatency", "preset": "ultrafast"}
        for index, seconds in enumerate(times):
            picture = av.VideoFrame.from_ndarray(pattern(index, width, height), format="rgb24")
            picture.pts = round(seconds / TIME_BASE)
            picture.time_base = TIME_BASE
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return times


def read_times(path: Path) -> list[float]:
    """Presentation times of every decodable frame, tolerating a damaged tail (killed writer)."""
    times: list[float] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                try:
                    times.extend(float(f.time) for f in packet.decode() if f.time is not None)
                except av.FFmpegError:
                    continue
    except av.FFmpegError:
        pass
    return times


def read_frames(path: Path) -> list[av.VideoFrame]:
    """All frames of a complete file."""
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


@dataclass
class Drained:
    """What a consumer saw on a capture output queue."""

    frames: list[Frame] = field(default_factory=list)
    end: StreamEnd | None = None


def drain(output: queue.Queue, timeout: float, delay: float = 0.0, limit: int | None = None) -> Drained:
    """Consume ``output`` until a StreamEnd arrives (or ``limit`` frames, or ``timeout`` seconds)."""
    result = Drained()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = output.get(timeout=0.05)
        except queue.Empty:
            continue
        if isinstance(item, StreamEnd):
            result.end = item
            return result
        result.frames.append(item)
        if limit is not None and len(result.frames) >= limit:
            return result
        if delay:
            time.sleep(delay)
    return result
