"""Annotation records shared by the dataset formats, and the problem log used while parsing them.

Every format (YOLO txt labels, COCO JSON) is parsed once, when a dataset is built, into
:class:`ImageRecord` objects: the image path, one class index per object and each box as
normalised ``x1, y1, x2, y2`` in [0, 1] of the image. Normalised boxes let the YOLO loader
validate a dataset without decoding a single image (its labels are normalised already);
pixel boxes are made when an image is loaded and its size is known.

Problems found while parsing go to a :class:`ProblemLog`, which reports one summary line
per kind of problem (count plus the first few files) instead of one line per file, and
raises a single :class:`~engine.errors.UserError` listing the fatal ones.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import UserError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# Coordinates this far outside [0, 1] are rounding noise from converters, not a labelling
# mistake: they are clipped without a warning.
_CLIP_TOLERANCE = 1e-3
_EXAMPLES_SHOWN = 3


@dataclass(frozen=True)
class ImageRecord:
    """The annotation of one image.

    Attributes:
        path: image file.
        classes: ``[K]`` int64 class indices in ``0..C-1``.
        boxes: ``[K, 4]`` float32 boxes, normalised ``x1, y1, x2, y2`` in [0, 1].
        size: ``(width, height)`` in pixels when the annotation file states it, else None.
    """

    path: Path
    classes: np.ndarray
    boxes: np.ndarray
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class DatasetSource:
    """A parsed, validated dataset split.

    Attributes:
        names: class names; index ``i`` is class id ``i``.
        records: one record per usable image.
        description: where the split came from, used in messages (e.g. ``data.yaml [train]``).
    """

    names: tuple[str, ...]
    records: tuple[ImageRecord, ...]
    description: str


@dataclass
class ProblemLog:
    """Collects dataset problems and reports each kind once.

    Attributes:
        where: dataset description prefixed to every message.
    """

    where: str
    _warnings: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list), init=False)
    _errors: list[str] = field(default_factory=list, init=False)

    def warn(self, kind: str, example: str) -> None:
        """Record a recoverable problem; ``kind`` is the summary text, ``example`` names the file."""
        self._warnings[kind].append(example)

    def error(self, location: str, detail: str) -> None:
        """Record a fatal problem at ``location`` (``file`` or ``file:line``)."""
        self._errors.append(f"{location}: {detail}")

    def report(self) -> None:
        """Log one warning per kind, then raise UserError if any fatal problem was recorded."""
        for kind, examples in self._warnings.items():
            shown = ", ".join(examples[:_EXAMPLES_SHOWN])
            more = f" (+{len(examples) - _EXAMPLES_SHOWN} more)" if len(examples) > _EXAMPLES_SHOWN else ""
            logger.warning("%s: %d %s: %s%s", self.where, len(examples), kind, shown, more)
        if self._errors:
            shown = "; ".join(self._errors[:_EXAMPLES_SHOWN])
            more = f" (+{len(self._errors) - _EXAMPLES_SHOWN} more)" if len(self._errors) > _EXAMPLES_SHOWN else ""
            raise UserError(f"{self.where}: {len(self._errors)} annotation error(s), fix or remove them: {shown}{more}")


def clean_boxes(classes: np.ndarray, boxes: np.ndarray, location: str,
                problems: ProblemLog) -> tuple[np.ndarray, np.ndarray]:
    """Clip normalised boxes to the image and drop the ones left without area.

    Args:
        classes: ``[K]`` class indices.
        boxes: ``[K, 4]`` normalised ``x1, y1, x2, y2``.
        location: file named in the warnings.
        problems: where clipped and dropped boxes are reported.

    Returns:
        The kept classes ``[K']`` (int64) and boxes ``[K', 4]`` (float32).
    """
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return classes, boxes
    outside = ((boxes < -_CLIP_TOLERANCE) | (boxes > 1 + _CLIP_TOLERANCE)).any(axis=1)
    if outside.any():
        problems.warn("files with boxes extending outside the image (clipped to the image)", location)
    boxes = boxes.clip(0.0, 1.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if not keep.all():
        problems.warn("files with boxes of zero area, or entirely outside the image (dropped)", location)
    return classes[keep], boxes[keep]


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has one of the image suffixes the loaders accept."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def empty_record(path: Path, size: tuple[int, int] | None = None) -> ImageRecord:
    """A background image: no objects."""
    return ImageRecord(path, np.zeros(0, np.int64), np.zeros((0, 4), np.float32), size)
