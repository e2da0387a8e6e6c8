"""What a video source is: parsing user-given source strings and describing opened sources.

Nothing here opens a decoder; :func:`parse_source` only looks at the string and at the file
system, so it is cheap and fails fast on the obvious mistakes (missing path, empty file,
folder without images, camera that does not exist).
"""

from __future__ import annotations

import enum
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from engine.errors import SourceError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
#: URL schemes handed to FFmpeg. rtsp gets TCP transport; the others use FFmpeg defaults.
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "udp", "tcp")


class SourceKind(enum.Enum):
    """The families of sources, each read by its own reader."""

    FILE = "file"
    IMAGES = "images"
    CAMERA = "camera"
    RTSP = "rtsp"
    NETWORK = "network"


@dataclass(frozen=True)
class SourceSpec:
    """A parsed, not yet opened source.

    Attributes:
        kind: the family of the source.
        location: file or folder path, URL, or camera device path.
        camera_index: for ``SourceKind.CAMERA``, the OpenCV camera index when known (given as
            a number, or a ``/dev/videoN`` device path, symlinks resolved).
        images: for ``SourceKind.IMAGES``, the image paths in playback order.
    """

    kind: SourceKind
    location: str
    camera_index: int | None = None
    images: tuple[str, ...] = ()

    @property
    def is_live(self) -> bool:
        """Cameras and network streams run on their own clock and cannot be paused."""
        return self.kind in (SourceKind.CAMERA, SourceKind.RTSP, SourceKind.NETWORK)

    @property
    def is_network(self) -> bool:
        """Sources read over the network (worth retrying when they fail to open)."""
        return self.kind in (SourceKind.RTSP, SourceKind.NETWORK)

    @property
    def display(self) -> str:
        """The location as shown in messages and logs, with any URL password hidden."""
        if self.kind is SourceKind.CAMERA and self.location.isdigit():
            return f"camera {self.location}"
        return redact_url(self.location) if self.is_network else self.location


@dataclass(frozen=True)
class SourceInfo:
    """What an opened source reports about itself.

    Attributes:
        kind: the family of the source.
        location: as shown to the user (passwords hidden).
        width: picture width in pixels (of the first frame; live sources may change later).
        height: picture height in pixels.
        fps: nominal frame rate, or None when the source does not declare one.
        is_live: True for cameras and streams.
        frame_count: number of frames when known in advance (files, image folders).
        codec: decoder name, when there is one.
    """

    kind: SourceKind
    location: str
    width: int
    height: int
    fps: float | None
    is_live: bool
    frame_count: int | None = None
    codec: str | None = None


def parse_source(spec: str | int | os.PathLike[str]) -> SourceSpec:
    """Turn what the user typed into a :class:`SourceSpec`.

    Accepted forms: a camera index (``0`` or ``"0"``), a device path (``/dev/video0``), a URL
    (``rtsp://``, ``http(s)://`` and the other :data:`NETWORK_SCHEMES`), a video file, or a
    folder of images (played in natural name order: ``img2`` before ``img10``).

    Raises:
        SourceError: for a missing path, an empty file, a folder without images, a camera
            that does not exist, or an unsupported URL scheme.
    """
    if isinstance(spec, bool):
        raise SourceError(f"not a video source: {spec!r}")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return _parse_camera_index(int(spec))
    text = os.fspath(spec)
    if not text.strip():
        raise SourceError("no video source given (empty string)")
    scheme = _url_scheme(text)
    if scheme == "file":
        text = urlsplit(text).path
    elif scheme:
        return _parse_url(text, scheme)
    return _parse_path(Path(text).expanduser())


def redact_url(url: str) -> str:
    """``url`` with the password part of its user info replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def natural_key(name: str) -> list[object]:
    """Sort key that orders digit runs by value, so ``frame2`` comes before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _url_scheme(text: str) -> str | None:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    return match.group(1).lower() if match else None


def _parse_url(url: str, scheme: str) -> SourceSpec:
    if scheme not in NETWORK_SCHEMES:
        raise SourceError(
            f"{redact_url(url)}: unsupported URL scheme {scheme!r} (use one of {', '.join(NETWORK_SCHEMES)})"
        )
    if not urlsplit(url).hostname:
        raise SourceError(f"{redact_url(url)}: URL has no host name")
    kind = SourceKind.RTSP if scheme in ("rtsp", "rtsps") else SourceKind.NETWORK
    return SourceSpec(kind=kind, location=url)


def _parse_camera_index(index: int) -> SourceSpec:
    if index < 0:
        raise SourceError(f"camera {index}: camera indices start at 0")
    # On Linux every camera index is a V4L2 device node; checking for it avoids slow and
    # noisy probing by OpenCV when the camera does not exist.
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        raise SourceError(f"camera {index}: not found (there is no /dev/video{index})")
    return SourceSpec(kind=SourceKind.CAMERA, location=str(index), camera_index=index)


def _parse_path(path: Path) -> SourceSpec:
    if str(path).startswith("/dev/"):
        if not path.exists():
            raise SourceError(f"{path}: no such camera device")
        match = re.fullmatch(r"/dev/video(\d+)", os.path.realpath(path))
        index = int(match.group(1)) if match else None
        return SourceSpec(kind=SourceKind.CAMERA, location=str(path), camera_index=index)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    if path.is_dir():
        return _parse_image_folder(path)
    if not path.is_file():
        raise SourceError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty")
    return SourceSpec(kind=SourceKind.FILE, location=str(path))


def _parse_image_folder(folder: Path) -> SourceSpec:
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except OSError as exc:
        raise SourceError(f"{folder}: cannot list folder ({exc.strerror})") from None
    images = sorted((n for n in names if n.lower().endswith(IMAGE_SUFFIXES)), key=natural_key)
    if not images:
        raise SourceError(f"{folder}: folder has no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return SourceSpec(kind=SourceKind.IMAGES, location=str(folder), images=tuple(str(folder / n) for n in images))
