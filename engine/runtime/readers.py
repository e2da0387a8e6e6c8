"""Frame readers: the code that actually opens a source and decodes it, one class per family.

A reader is used by exactly one thread (see :mod:`engine.runtime.reader_thread`): ``open``,
then iterate ``frames``, then ``close``. Every failure leaves as a :class:`SourceError` with
a one-line message that names the source; a plain return from ``frames`` means end of stream.
"""

from __future__ import annotations

import abc
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import cv2
import numpy as np

from engine.errors import SourceError
from engine.runtime.sources import SourceInfo, SourceKind, SourceSpec

logger = logging.getLogger(__name__)

#: Corrupt packets in a row that a live stream may produce before the connection is dropped.
MAX_CONSECUTIVE_DECODE_ERRORS = 50
#: How much of a network stream FFmpeg inspects before reporting it open (microseconds).
#: FFmpeg's 5 s default would delay every (re)connect; one second finds an H.264 keyframe
#: with the usual one-second GOP.
NETWORK_ANALYZE_DURATION_US = 1_000_000


@dataclass(frozen=True)
class RawFrame:
    """A decoded picture before it is stamped onto the capture timeline.

    Attributes:
        image: ``H x W x 3`` uint8 RGB, C-contiguous.
        pts: timestamp in seconds on the source's own clock, or None when the source gave none.
    """

    image: np.ndarray
    pts: float | None


class FrameReader(abc.ABC):
    """One connection to a source, used from a single thread.

    Attributes:
        damage: set by file readers that skipped unreadable data (a truncated or damaged
            file); the stream still ends normally, with this as a warning for the user.
    """

    damage: SourceError | None = None

    @abc.abstractmethod
    def open(self) -> SourceInfo:
        """Connect and read the stream headers; raises SourceError."""

    @abc.abstractmethod
    def frames(self) -> Iterator[RawFrame]:
        """Decoded frames in presentation order; raises SourceError, returns at end of stream."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the source; safe to call more than once."""


def make_reader(spec: SourceSpec, *, open_timeout: float, read_timeout: float, folder_fps: float) -> FrameReader:
    """The reader for ``spec``'s family (not yet opened).

    Args:
        spec: the parsed source.
        open_timeout: seconds FFmpeg may spend connecting before it gives up.
        read_timeout: seconds FFmpeg may wait for data on an open connection.
        folder_fps: playback rate of image folders.
    """
    if spec.kind is SourceKind.IMAGES:
        return ImageFolderReader(spec, folder_fps)
    if spec.kind is SourceKind.CAMERA:
        return CameraReader(spec)
    return PyAVReader(spec, open_timeout=open_timeout, read_timeout=read_timeout)


class PyAVReader(FrameReader):
    """Files and network streams (RTSP over TCP, HTTP MJPEG/HLS, ...) decoded by FFmpeg via PyAV."""

    def __init__(self, spec: SourceSpec, *, open_timeout: float, read_timeout: float) -> None:
        self._spec = spec
        self._timeouts = (open_timeout, read_timeout)
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._decoded = 0

    def open(self) -> SourceInfo:
        """Open the container and pick its first video stream."""
        started = time.monotonic()
        try:
            self._container = av.open(self._spec.location, options=self._options(), timeout=self._timeouts)
        except (av.FFmpegError, OSError) as exc:
            waited = time.monotonic() - started
            raise SourceError(f"{self._spec.display}: {self._describe_open_error(exc, waited)}") from None
        if not self._container.streams.video:
            kinds = sorted({s.type for s in self._container.streams}) or ["nothing"]
            self.close()
            raise SourceError(f"{self._spec.display}: has no video stream (contains {', '.join(kinds)})")
        stream = self._container.streams.video[0]
        if stream.codec_context is None:
            # FFmpeg found a video track but no decoder for it: a damaged header (moov) or a
            # codec this build lacks. Either way nothing in it can be shown.
            self.close()
            raise SourceError(f"{self._spec.display}: damaged video (no usable decoder for its video stream; "
                              "the file header is damaged or the codec is not supported)")
        if not self._spec.is_live:
            # Frame threading adds a few frames of latency, fine for files and much faster for 4K.
            stream.thread_type = "AUTO"
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate
        return SourceInfo(
            kind=self._spec.kind,
            location=self._spec.display,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else None,
            is_live=self._spec.is_live,
            frame_count=stream.frames or None,
            codec=stream.codec_context.name,
        )

    def frames(self) -> Iterator[RawFrame]:
        """Decode packet by packet; damaged packets are skipped, a lost connection raises."""
        if self._container is None or self._stream is None:
            raise SourceError(f"{self._spec.display}: read before open")
        consecutive_errors = 0
        packets = 0
        for packet in self._packets(self._container, self._stream):
            packets += bool(packet.size)
            if packet.is_corrupt and not self._spec.is_live:
                # A torn packet (the file ends inside it) is not decodable, and handing it to a
                # frame-threaded decoder loses the frames still in flight; skip it, say so.
                self._on_torn_packet(packets)
                continue
            try:
                pictures = packet.decode()
            except av.FFmpegError as exc:
                consecutive_errors += 1
                self._on_decode_error(exc, consecutive_errors)
                continue
            consecutive_errors = 0
            for picture in pictures:
                self._decoded += 1
                yield RawFrame(image=to_rgb(picture), pts=picture.time)
        self._check_complete(packets)

    def close(self) -> None:
        """Close the container (from the thread that used it)."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except av.FFmpegError as exc:
                logger.debug("%s: error while closing: %s", self._spec.display, exc)

    def _options(self) -> dict[str, str]:
        if not self._spec.is_network:
            return {}
        options = {"analyzeduration": str(NETWORK_ANALYZE_DURATION_US)}
        if self._spec.kind is SourceKind.RTSP:
            # UDP loses packets on busy networks and is blocked by most firewalls.
            options["rtsp_transport"] = "tcp"
        return options

    def _packets(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[av.Packet]:
        """Demuxed packets of the video stream; the final empty packet flushes the decoder."""
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as exc:
                self._on_demux_error(exc)
                return
            yield packet

    def _on_demux_error(self, exc: Exception) -> None:
        reason = _error_text(exc)
        decoded = self._decoded
        if self._spec.is_live:
            raise SourceError(f"{self._spec.display}: connection lost ({reason})")
        if decoded == 0:
            raise SourceError(f"{self._spec.display}: cannot read video data ({reason})")
        self.damage = SourceError(
            f"{self._spec.display}: file is truncated or damaged after frame {decoded} ({reason})"
        )

    def _on_torn_packet(self, position: int) -> None:
        if self.damage is None:
            self.damage = SourceError(f"{self._spec.display}: file is truncated or damaged (frame {position} is cut "
                                      "short; the frames before it were kept)")

    def _check_complete(self, packets: int) -> None:
        """A file whose index lists more frames than its data holds was cut short at a packet boundary.

        Only the MP4/MOV sample table is trusted for this: other containers' headers (AVI's in
        particular) may carry an estimate rather than a count.
        """
        container, stream = self._container, self._stream
        trusted = container is not None and "mov" in container.format.name.split(",")
        declared = stream.frames if stream is not None and trusted and not self._spec.is_live else 0
        if self.damage is None and declared and packets < declared:
            self.damage = SourceError(
                f"{self._spec.display}: file is truncated: its index lists {declared} frames, the data ends "
                f"after {packets}"
            )

    def _on_decode_error(self, exc: Exception, consecutive: int) -> None:
        logger.debug("%s: skipped an undecodable packet: %s", self._spec.display, exc)
        if self._spec.is_live:
            if consecutive >= MAX_CONSECUTIVE_DECODE_ERRORS:
                raise SourceError(f"{self._spec.display}: stream is not decodable ({_error_text(exc)})")
        elif self.damage is None:
            self.damage = SourceError(
                f"{self._spec.display}: file is damaged or truncated; skipped unreadable data ({_error_text(exc)})"
            )

    def _describe_open_error(self, exc: Exception, waited: float) -> str:
        reason = _error_text(exc)
        # A server that accepts and never answers ends either in our interrupt (ExitError) or, when
        # FFmpeg's own socket timeout fires first, in whatever its demuxer makes of no data at all.
        timed_out = self._spec.is_network and waited >= 0.9 * self._timeouts[0]
        if isinstance(exc, av.error.ExitError) or timed_out:
            return f"no answer within {self._timeouts[0]:g} s"
        if self._spec.is_network:
            return f"cannot open stream ({reason})"
        if isinstance(exc, av.error.InvalidDataError):
            return f"not a readable video file: damaged, truncated or not a video ({reason})"
        return f"cannot open ({reason})"


class ImageFolderReader(FrameReader):
    """A folder of images played at a fixed rate; unreadable images are skipped with a warning."""

    def __init__(self, spec: SourceSpec, fps: float) -> None:
        if fps <= 0:
            raise SourceError(f"{spec.display}: image folder rate must be positive, got {fps}")
        self._spec = spec
        self._fps = fps
        self._skipped: dict[str, str] = {}  # path -> why, in folder order

    def open(self) -> SourceInfo:
        """Check that at least the first readable image exists and report its size."""
        first = next(self.frames(), None)
        if first is None:
            raise SourceError(f"{self._spec.display}: none of the {len(self._spec.images)} images is readable")
        height, width = first.image.shape[:2]
        return SourceInfo(
            kind=self._spec.kind,
            location=self._spec.display,
            width=width,
            height=height,
            fps=self._fps,
            is_live=False,
            frame_count=len(self._spec.images),
        )

    def frames(self) -> Iterator[RawFrame]:
        """Images in order; ``pts = position / fps`` (skipped images keep their time slot).

        Unreadable images are named once, together, in :attr:`damage` (the run's end-of-stream
        warning), not one warning each as they pass (``open`` reads the first ones twice).
        """
        for position, path in enumerate(self._spec.images):
            image, problem = read_image(path)
            if image is None:
                logger.debug("%s: skipped (%s)", path, problem)
                self._skipped[path] = problem
                self.damage = SourceError(f"{self._spec.display}: skipped {_list_skipped(self._skipped)}")
                continue
            yield RawFrame(image=image, pts=position / self._fps)

    def close(self) -> None:
        """Nothing to release."""


def read_image(path: str) -> tuple[np.ndarray | None, str]:
    """An image file as RGB, or None and why not (``"not readable"``, ``"truncated"``).

    A JPEG cut short is refused before OpenCV sees it: libjpeg would decode a grey lower part
    and print ``Premature end of JPEG file`` straight to the process's stderr.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        return None, exc.strerror or "not readable"
    if data.startswith(b"\xff\xd8") and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        return None, "truncated"  # the last scan (SOS) has no end-of-image marker after it
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None, "not readable"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ""


def _list_skipped(skipped: dict[str, str], shown: int = 3) -> str:
    names = [f"{os.path.basename(path)} ({problem})" for path, problem in list(skipped.items())[:shown]]
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f"{len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''}: {', '.join(names)}{more}"


class CameraReader(FrameReader):
    """A local camera through OpenCV; frames carry no source timestamp (the wall clock is used)."""

    def __init__(self, spec: SourceSpec) -> None:
        self._spec = spec
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> SourceInfo:
        """Open the device; a missing or busy camera raises SourceError."""
        index = self._spec.camera_index
        if index is None:
            capture = cv2.VideoCapture(self._spec.location)
        else:
            # OpenCV's V4L2 backend opens cameras by index only; naming it skips probing the others.
            capture = cv2.VideoCapture(index, cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self._spec.display}: cannot open camera (busy, or not a capture device)")
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        return SourceInfo(
            kind=self._spec.kind,
            location=self._spec.display,
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=fps if fps > 0 else None,
            is_live=True,
        )

    def frames(self) -> Iterator[RawFrame]:
        """Frames until the camera stops answering, which raises (so that capture reconnects)."""
        if self._capture is None:
            raise SourceError(f"{self._spec.display}: read before open")
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                raise SourceError(f"{self._spec.display}: camera stopped delivering frames")
            yield RawFrame(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), pts=None)

    def close(self) -> None:
        """Release the device."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


def to_rgb(picture: av.VideoFrame) -> np.ndarray:
    """Any pixel format (10-bit, 4:4:4, full-range MJPEG, odd sizes) as C-contiguous RGB24.

    The common case, 8-bit 4:2:0 in video range with BT.601 or unstated colours (what swscale
    assumes), goes through OpenCV: in the decode loop it took 0.2 ms of CPU a frame where swscale
    took 0.6 (640x360 demo), with the same coefficients (pixels within 3 levels, rounding).
    """
    if (picture.format.name == "yuv420p" and picture.width % 2 == 0 and picture.height % 2 == 0
            and picture.color_range in _VIDEO_RANGE and picture.colorspace in _BT601):
        return cv2.cvtColor(picture.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return np.ascontiguousarray(picture.to_ndarray(format="rgb24"))


# FFmpeg's AVColorRange (unspecified, MPEG) and AVColorSpace (unspecified, BT470BG, SMPTE170M) values
# that mean OpenCV's BT.601 video-range conversion is swscale's.
_VIDEO_RANGE = (0, 1)
_BT601 = (2, 5, 6)


def _error_text(exc: Exception) -> str:
    """The human part of an FFmpeg/OS error, without PyAV's repeated file name."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0]
