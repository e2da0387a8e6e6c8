"""The recording worker: owns the output container and encodes RGB frames to H.264.

Recordings must survive a hard kill. MP4 output is therefore fragmented (an empty ``moov``
up front, then one self-contained fragment per keyframe) and Matroska output closes a cluster
at least every second; keyframes are forced every ``keyframe_interval`` seconds of source
time and the I/O buffer is flushed after every packet. A killed process loses at most the
last fragment, about one keyframe interval.

Timestamps come from each frame's ``pts`` (source clock, seconds) on a fine time base, so
variable frame rates and dropped frames keep the recording's real duration. The first frame
written is at 0: a recording started in the middle of a stream does not begin with a gap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np

from engine.errors import UserError
from engine.runtime.queues import POLL_INTERVAL, StreamEnd, get_item
from engine.runtime.worker import Worker

logger = logging.getLogger(__name__)

#: Container options per output suffix (see the module docstring for why).
CONTAINER_OPTIONS = {
    ".mp4": {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
    ".mkv": {"cluster_time_limit": "1000", "flush_packets": "1"},
}
#: Encoder time base per suffix: 90 kHz for MP4; Matroska stores milliseconds.
TIME_BASES = {".mp4": Fraction(1, 90000), ".mkv": Fraction(1, 1000)}
#: Frames whose pts goes back by less than this are nudged forward; further back they are skipped.
MAX_NUDGE_SECONDS = 0.25


class TimedImage(Protocol):
    """What the writer accepts: an RGB picture and its presentation time (e.g. a ``Frame``)."""

    @property
    def image(self) -> np.ndarray: ...

    @property
    def pts(self) -> float: ...


@dataclass(frozen=True)
class WriterStats:
    """A consistent snapshot of the writer's counters.

    Attributes:
        state: ``"idle"``, ``"recording"``, ``"closed"`` or ``"failed"``.
        frames_written: frames handed to the encoder.
        frames_skipped: frames dropped because their pts went back in time.
        bytes: encoded bytes written to the container.
        last_pts: pts (seconds) of the latest written frame.
        last_error: why recording failed, if it did.
    """

    state: str = "idle"
    frames_written: int = 0
    frames_skipped: int = 0
    bytes: int = 0
    last_pts: float | None = None
    last_error: str | None = None


class Writer(Worker):
    """Recording worker thread writing H.264 to ``.mp4`` (fragmented) or ``.mkv``.

    Put items with ``image`` (``H x W x 3`` uint8 RGB) and ``pts`` (seconds) on :attr:`input`
    (a bounded queue: ``put`` blocks while the encoder is behind), then a :class:`StreamEnd`
    to finish. The output size is the first frame's size rounded up to even numbers; later
    frames of another size are letterboxed into it.

    Args:
        path: output file; its suffix picks the container.
        queue_size: capacity of :attr:`input`.
        keyframe_interval: seconds of source time between forced keyframes (bounds the loss
            on a crash).
        fps_hint: typical frame rate, used by the encoder's rate control only.
        crf: x264 constant rate factor (lower is better quality).
        preset: x264 speed preset.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        queue_size: int = 8,
        keyframe_interval: float = 1.0,
        fps_hint: float = 30.0,
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINER_OPTIONS:
            raise UserError(f"{self.path}: recordings must end in {' or '.join(CONTAINER_OPTIONS)}")
        if queue_size < 1 or keyframe_interval <= 0 or fps_hint <= 0:
            raise ValueError("queue_size, keyframe_interval and fps_hint must be positive")
        self.input: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._settings = _EncoderSettings(
            suffix=suffix, keyframe_interval=keyframe_interval, fps_hint=fps_hint, crf=crf, preset=preset
        )
        self._lock = threading.Lock()
        self._stats = WriterStats()
        super().__init__(f"writer:{self.path.name}")

    @property
    def stats(self) -> WriterStats:
        """Counters and state, safe to read from any thread."""
        with self._lock:
            return self._stats

    def start(self) -> None:
        """Check that the output can be written, then start the worker.

        Raises:
            UserError: the path is a folder, or its folder cannot be created or written.
        """
        _check_writable(self.path)
        logger.info("writer %s: starting", self.path)
        super().start()


    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._stats = dataclasses.replace(self._stats, **changes)

    def _run(self) -> None:
        try:
            self._record()
            self._update(state="closed")
            logger.info("writer %s: closed after %d frames", self.path, self.stats.frames_written)
        except Exception as exc:
            # A full disk or a vanished folder is the usual cause: one line, not a traceback
            # (kept at debug level for the rare bug). The run goes on without its recording.
            reason = _error_text(exc)
            logger.debug("writer %s: recording failed", self.path, exc_info=True)
            frames = frames_in_file(self.path)
            logger.warning("writer %s: recording stopped (%s); the file keeps its first %d frames",
                           self.path, reason, frames)
            size = self.path.stat().st_size if self.path.is_file() else 0
            self._update(state="failed", frames_written=frames, bytes=size,
                         last_error=f"{self.path}: recording failed ({reason}); {frames} frames kept")
            # Keep taking items so that producers blocked on a full queue are released.
            self._discard_until_end()

    def _record(self) -> None:
        encoder: _Encoder | None = None
        try:
            while not self._stop.is_set():
                item = get_item(self.input, POLL_INTERVAL)
                if item is None:
                    continue
                if isinstance(item, StreamEnd):
                    break
                if encoder is None:
                    encoder = _Encoder(self.path, item.image.shape, self._settings)
                    self._update(state="recording")
                self._write(encoder, item)
        except BaseException:
            if encoder is not None:
                encoder.abort()
            raise
        if encoder is not None:
            encoder.close()
            self._update(bytes=encoder.bytes)
        else:
            # Nothing was recorded: do not leave the empty file made by start().
            self.path.unlink(missing_ok=True)

    def _write(self, encoder: _Encoder, item: TimedImage) -> None:
        if encoder.write(item.image, float(item.pts)):
            with self._lock:
                self._stats = dataclasses.replace(
                    self._stats,
                    frames_written=self._stats.frames_written + 1,
                    bytes=encoder.bytes,
                    last_pts=float(item.pts),
                )
        else:
            with self._lock:
                self._stats = dataclasses.replace(self._stats, frames_skipped=self._stats.frames_skipped + 1)

    def _discard_until_end(self) -> None:
        while not self._stop.is_set():
            if isinstance(get_item(self.input, POLL_INTERVAL), StreamEnd):
                return


@dataclass(frozen=True)
class _EncoderSettings:
    suffix: str
    keyframe_interval: float
    fps_hint: float
    crf: int
    preset: str


class _Encoder:
    """The open container and H.264 stream; used only by the writer thread."""

    def __init__(self, path: Path, first_shape: tuple[int, ...], settings: _EncoderSettings) -> None:
        if len(first_shape) != 3 or first_shape[2] != 3:
            raise ValueError(f"expected H x W x 3 RGB images, got shape {first_shape}")
        height, width = first_shape[:2]
        # yuv420p halves the chroma planes, so x264 needs even dimensions.
        self.width, self.height = width + width % 2, height + height % 2
        self.bytes = 0
        self._settings = settings
        self._time_base = TIME_BASES[settings.suffix]
        self._origin: float | None = None
        self._last_ticks: int | None = None
        self._last_keyframe: float | None = None
        self._container = av.open(str(path), "w", options=CONTAINER_OPTIONS[settings.suffix])
        try:
            self._stream = self._add_stream()
        except Exception:
            self._container.close()
            raise

    def _add_stream(self) -> av.video.stream.VideoStream:
        rate = Fraction(self._settings.fps_hint).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.codec_context.time_base = self._time_base
        stream.time_base = self._time_base
        # Keyframes are forced by source time (see write); the GOP cap is only a fallback.
        stream.codec_context.gop_size = max(1, round(self._settings.fps_hint * self._settings.keyframe_interval))
        stream.options = {
            "preset": self._settings.preset,
            "tune": "zerolatency",  # no B-frames or lookahead: packets leave at once, dts == pts
            "crf": str(self._settings.crf),
            "forced-idr": "1",
        }
        return stream

    def write(self, image: np.ndarray, pts: float) -> bool:
        """Encode one picture at ``pts`` seconds; False when it was skipped (pts went back)."""
        if self._origin is None:
            self._origin = pts
        ticks = round((pts - self._origin) / self._time_base)
        if self._last_ticks is not None and ticks <= self._last_ticks:
            if (self._last_ticks - ticks) * self._time_base > MAX_NUDGE_SECONDS:
                logger.debug("writer: skipped a frame at %.3f s, %d ticks behind", pts, self._last_ticks - ticks)
                return False
            # Duplicate or jittered timestamps: keep the picture, one tick after the previous one.
            ticks = self._last_ticks + 1
        picture = av.VideoFrame.from_ndarray(self._fit(image), format="rgb24")
        picture.pts = ticks
        picture.time_base = self._time_base
        seconds = float(ticks * self._time_base)
        if self._last_keyframe is None or seconds - self._last_keyframe >= self._settings.keyframe_interval:
            picture.pict_type = av.video.frame.PictureType.I
            self._last_keyframe = seconds
        self._mux(self._stream.encode(picture))
        self._last_ticks = ticks
        return True

    def close(self) -> None:
        """Flush the encoder and close the container, even if flushing fails."""
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._container.close()

    def abort(self) -> None:
        """Close the container after a failure, without flushing and without raising.

        A failed write (a full disk) fails again on every later write: flushing would only
        replace the first error with a second one.
        """
        try:
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            logger.debug("writer: closing after a failure: %s", exc)

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self.bytes += packet.size
        self._container.mux(packets)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """``image`` at the output size: padded to even dimensions, or letterboxed if resized."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected H x W x 3 uint8 RGB, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if (width, height) == (self.width, self.height):
            return np.ascontiguousarray(image)
        if self.width - width in (0, 1) and self.height - height in (0, 1):
            # Odd-sized source: repeat the last row/column rather than adding a black line.
            return cv2.copyMakeBorder(image, 0, self.height - height, 0, self.width - width, cv2.BORDER_REPLICATE)
        return letterbox(image, self.width, self.height)


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to fit ``width x height`` keeping its aspect ratio; centre it on black."""
    src_height, src_width = image.shape[:2]
    scale = min(width / src_width, height / src_height)
    fit_width = max(1, min(width, round(src_width * scale)))
    fit_height = max(1, min(height, round(src_height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (fit_width, fit_height), interpolation=interpolation)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fit_height) // 2, (width - fit_width) // 2
    canvas[top : top + fit_height, left : left + fit_width] = resized
    return canvas


def frames_in_file(path: Path) -> int:
    """How many whole video packets a (possibly cut short) recording holds, by demuxing it.

    After a failed write the encoder's count overstates the file: the packets of the fragment
    or cluster being written when the disk filled up never reached it.
    """
    count = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(video=0):
                if packet.size and not packet.is_corrupt:
                    count += 1
    except (av.FFmpegError, OSError, IndexError):
        pass  # a cut-short file ends where it ends; what was counted is what is there
    return count


def _error_text(exc: BaseException) -> str:
    """The human part of an error: ``No space left on device`` rather than its errno and file name."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0]


def _check_writable(path: Path) -> None:
    """Fail early, with one clear line, when ``path`` cannot become a recording."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name for the recording")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # mkdir would say "File exists", which misleads
        raise UserError(f"{path}: cannot write recording ({blocking} is a file, not a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb"):
            pass
    except OSError as exc:
        raise UserError(f"{path}: cannot write recording ({exc.strerror or exc})") from None
