"""Numpy RGB frames as QImages, without copying the pixels."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PyQt6.QtGui import QImage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameImage:
    """A QImage that views ``buffer``'s memory; keeping this object keeps the pixels alive.

    QImage does not own memory it was given, so the numpy array must outlive every use of the
    image (painting included); bundling both makes that hard to get wrong.
    """

    image: QImage
    buffer: np.ndarray

    @property
    def width(self) -> int:
        return self.image.width()

    @property
    def height(self) -> int:
        return self.image.height()


def rgb_to_qimage(frame: np.ndarray) -> FrameImage:
    """Wrap an ``H x W x 3`` uint8 RGB array as a ``Format_RGB888`` QImage.

    Raises:
        ValueError: when the array is not ``H x W x 3`` uint8.
    """
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB array, got {frame.dtype} {frame.shape}")
    buffer = np.ascontiguousarray(frame)  # no copy for the C-contiguous frames capture produces
    height, width = buffer.shape[:2]
    # bytesPerLine is passed explicitly: without it QImage assumes rows padded to 4 bytes, which
    # shears every picture whose width is not a multiple of 4.
    image = QImage(buffer.data, width, height, buffer.strides[0], QImage.Format.Format_RGB888)
    return FrameImage(image, buffer)
