"""Reading a YOLO-layout dataset: ``data.yaml``, image lists and ``labels/`` txt files.

Layout:

- ``data.yaml`` holds ``path`` (dataset root; relative to the YAML file's folder, default that
  folder), one entry per split (``train``, ``val``, ...) and ``names`` (a list, or a mapping from
  class id to name) and/or ``nc``.
- A split entry is a folder (searched recursively for images), a ``.txt`` file listing one image
  path per line (relative paths are relative to the list file's folder), a single image, or a
  list of those.
- The label file of ``.../images/<rest>.jpg`` is ``.../labels/<rest>.txt`` (the last ``images``
  folder of the path is swapped for ``labels``); without an ``images`` folder it sits beside
  the image. Each line is ``class cx cy w h`` normalised to [0, 1]; a line
  ``class x1 y1 x2 y2 ... xn yn`` (a segmentation polygon) is read as the polygon's bounding box.

Error policy (what a user expects from a long training run that must not die later):

- missing label file: the image has no objects; one warning with the count;
- empty label file: a background image, silently;
- boxes outside the image: clipped, dropped when nothing is left; one warning naming the files;
- listed image that does not exist: skipped; one warning naming the files;
- malformed line or class id outside ``names``: :class:`~engine.errors.UserError` naming file
  and line, raised when the dataset is built. Both mean a broken converter or a ``data.yaml``
  that does not match the labels; skipping such lines would silently teach the model that
  those objects are background.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import load_yaml
from engine.data.records import DatasetSource, ImageRecord, ProblemLog, clean_boxes, empty_record, is_image_file
from engine.errors import ConfigError, UserError

logger = logging.getLogger(__name__)


def load_yolo_source(data_yaml: str | Path, split: str) -> DatasetSource:
    """Parse and validate one split of a YOLO-layout dataset.

    Args:
        data_yaml: the dataset's ``data.yaml``.
        split: key of the split in ``data.yaml`` (``train``, ``val``, ...).

    Returns:
        The validated split. Images are not decoded.

    Raises:
        ConfigError: ``data.yaml`` unreadable, or lacking the split or the class names.
        UserError: no images, or malformed labels (message names file and line).
    """
    data_yaml = Path(data_yaml)
    config = load_yaml(data_yaml)
    names = class_names(config, data_yaml)
    root = Path(config.get("path") or ".")
    root = root if root.is_absolute() else data_yaml.parent / root
    if config.get(split) is None:
        raise ConfigError(f"{data_yaml}: no '{split}' entry (image folder or list file)")
    where = f"{data_yaml} [{split}]"
    problems = ProblemLog(where)
    images = list_images(config[split], root, problems, where)
    records = [_read_record(image, len(names), problems) for image in images]
    problems.report()
    if not records:
        raise UserError(f"{where}: no images found")
    return DatasetSource(names, tuple(records), where)


def class_names(config: dict[str, Any], data_yaml: Path) -> tuple[str, ...]:
    """Class names from ``names`` (list or id -> name mapping) and/or ``nc``, cross-checked."""
    names = config.get("names")
    count = config.get("nc")
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise ConfigError(f"{data_yaml}: names: class ids must be 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    if names is not None and not isinstance(names, list):
        raise ConfigError(f"{data_yaml}: names: expected a list or a mapping, got {names!r}")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ConfigError(f"{data_yaml}: nc: expected a positive integer, got {count!r}")
    if names is None:
        if count is None:
            raise ConfigError(f"{data_yaml}: needs 'names' or 'nc'")
        names = [f"class{i}" for i in range(count)]
    if count is not None and count != len(names):
        raise ConfigError(f"{data_yaml}: nc is {count} but names lists {len(names)} classes")
    if not names:
        raise ConfigError(f"{data_yaml}: names is empty")
    return tuple(str(n) for n in names)


def list_images(entry: str | Sequence[str], root: Path, problems: ProblemLog, where: str) -> list[Path]:
    """Image paths of a split entry: folder(s), list file(s) or image file(s), in sorted order."""
    entries = [entry] if isinstance(entry, str) else list(entry)
    images: list[Path] = []
    for item in entries:
        path = Path(str(item))
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            images.extend(sorted(p for p in path.rglob("*") if is_image_file(p)))
        elif path.is_file() and path.suffix.lower() == ".txt":
            images.extend(_read_image_list(path, problems))
        elif path.is_file() and is_image_file(path):
            images.append(path)
        else:
            raise UserError(f"{where}: {path} is not an image folder, an image list (.txt) or an image")
    return images


def _read_image_list(list_file: Path, problems: ProblemLog) -> list[Path]:
    images = []
    for line in list_file.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line:
            continue
        path = Path(line)
        path = path if path.is_absolute() else list_file.parent / path
        if path.is_file():
            images.append(path)
        else:
            problems.warn(f"images listed in {list_file.name} do not exist (skipped)", str(path))
    return images


def label_path_for(image: Path) -> Path:
    """The label file mirroring ``image``: last ``images`` folder swapped for ``labels``, ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _read_record(image: Path, num_classes: int, problems: ProblemLog) -> ImageRecord:
    label_file = label_path_for(image)
    if not label_file.is_file():
        problems.warn("images without a label file (treated as images with no objects)", str(image))
        return empty_record(image)
    try:
        text = label_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(str(label_file), f"cannot read ({exc})")
        return empty_record(image)
    classes, boxes = parse_label_text(text, str(label_file), num_classes, problems)
    classes, boxes = clean_boxes(classes, boxes, str(label_file), problems)
    return ImageRecord(image, classes, boxes)


def parse_label_text(text: str, location: str, num_classes: int,
                     problems: ProblemLog) -> tuple[np.ndarray, np.ndarray]:
    """Parse YOLO label lines into classes ``[K]`` and normalised ``x1 y1 x2 y2`` boxes ``[K, 4]``.

    Bad lines are recorded in ``problems`` as errors (naming ``location:line``) and skipped.
    """
    classes: list[int] = []
    boxes: list[tuple[float, float, float, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        parsed = _parse_line(fields, num_classes)
        if isinstance(parsed, str):
            problems.error(f"{location}:{number}", parsed)
            continue
        classes.append(parsed[0])
        boxes.append(parsed[1])
    return np.array(classes, np.int64), np.array(boxes, np.float32).reshape(-1, 4)


def _parse_line(fields: list[str], num_classes: int) -> tuple[int, tuple[float, float, float, float]] | str:
    """One label line -> (class, box), or the reason it is invalid."""
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return f"expected numbers, got {' '.join(fields)!r}"
    if not all(math.isfinite(v) for v in values):
        return f"non-finite value in {' '.join(fields)!r}"
    class_value = values[0]
    if class_value != int(class_value) or not 0 <= class_value < num_classes:
        return f"class id {fields[0]} is outside the {num_classes} classes named in data.yaml (0..{num_classes - 1})"
    coords = values[1:]
    if len(coords) == 4:
        cx, cy, w, h = coords
        if w < 0 or h < 0:
            return f"negative box size in {' '.join(fields)!r}"
        return int(class_value), (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if len(coords) >= 6 and len(coords) % 2 == 0:
        xs, ys = coords[0::2], coords[1::2]
        return int(class_value), (min(xs), min(ys), max(xs), max(ys))
    return f"expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', got {len(fields)} values"
