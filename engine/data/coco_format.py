"""Reading a COCO-JSON dataset (an images folder plus an ``instances_*.json`` file).

Category ids (arbitrary integers in COCO, e.g. 1..90 with gaps) are mapped to contiguous
class indices ``0..C-1`` in increasing id order; the category names become the class names.

Error policy, matching the YOLO loader:

- crowd annotations (``iscrowd: 1``) are skipped: they mark regions, not single objects;
- image entries whose file does not exist are skipped; one warning naming the files;
- annotations of unknown images are ignored; one warning;
- boxes outside the image are clipped (dropped when nothing is left); one warning naming the files;
- an annotation with an unknown category or a malformed ``bbox``, or an image entry without a
  valid size: :class:`~engine.errors.UserError` naming the JSON file and the annotation or
  image id, raised when the dataset is built.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.records import DatasetSource, ImageRecord, ProblemLog, clean_boxes
from engine.errors import UserError

logger = logging.getLogger(__name__)


def load_coco_source(images_dir: str | Path, annotations_json: str | Path) -> DatasetSource:
    """Parse and validate a COCO-JSON dataset.

    Args:
        images_dir: folder the ``file_name`` entries are relative to.
        annotations_json: COCO instances file with ``images``, ``annotations`` and ``categories``.

    Returns:
        The validated dataset, one record per existing image (images without annotations are
        kept as background images). Images are not decoded.

    Raises:
        UserError: unreadable JSON, no usable image, or invalid annotations (message names the id).
    """
    images_dir, annotations_json = Path(images_dir), Path(annotations_json)
    data = _read_json(annotations_json)
    where = str(annotations_json)
    names, category_index = _categories(data, where)
    problems = ProblemLog(where)
    images = _images(data, images_dir, problems)
    per_image = _group_annotations(data, images, category_index, problems)
    records = []
    for image_id, (path, size) in images.items():
        if not path.is_file():
            problems.warn(f"images listed in the JSON file do not exist in {images_dir} (skipped)", str(path))
            continue
        classes, boxes = per_image.get(image_id, ([], []))
        classes, boxes = clean_boxes(np.array(classes), np.array(boxes), f"{path.name} (image id {image_id})",
                                     problems)
        records.append(ImageRecord(path, classes, boxes, size))
    problems.report()
    if not records:
        raise UserError(f"{where}: none of its images were found in {images_dir}")
    return DatasetSource(names, tuple(records), where)


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file holding one object (a COCO document); each failure is one UserError line.

    Args:
        what: the file's role, for the not-found message (``annotation file``, ``truth file``).
    """
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a COCO document (expected a JSON object)")
    return data


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json_object(path, "annotation file")
    if not isinstance(data.get("images"), list):
        raise UserError(f"{path}: not a COCO instances file (no 'images' list)")
    return data


def _categories(data: dict[str, Any], where: str) -> tuple[tuple[str, ...], dict[int, int]]:
    """Class names and the category id -> contiguous index map."""
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise UserError(f"{where}: no 'categories' list")
    try:
        ordered = sorted(categories, key=lambda c: int(c["id"]))
        names = tuple(str(c["name"]) for c in ordered)
        index = {int(c["id"]): i for i, c in enumerate(ordered)}
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{where}: every category needs an integer 'id' and a 'name'") from None
    if len(index) != len(ordered):
        raise UserError(f"{where}: duplicate category ids")
    return names, index


def _images(data: dict[str, Any], images_dir: Path,
            problems: ProblemLog) -> dict[int, tuple[Path, tuple[int, int]]]:
    """Image id -> (path, (width, height)) for every valid image entry."""
    images = {}
    for entry in data["images"]:
        try:
            image_id = int(entry["id"])
            size = (int(entry["width"]), int(entry["height"]))
            path = images_dir / str(entry["file_name"])
        except (KeyError, TypeError, ValueError):
            problems.error(f"image entry {entry!r}"[:120], "needs 'id', 'file_name', 'width' and 'height'")
            continue
        if size[0] <= 0 or size[1] <= 0:
            problems.error(f"image id {image_id}", f"invalid size {size}")
            continue
        images[image_id] = (path, size)
    return images


def _group_annotations(data: dict[str, Any], images: dict[int, tuple[Path, tuple[int, int]]],
                       category_index: dict[int, int], problems: ProblemLog) -> dict[int, tuple[list, list]]:
    """Image id -> (class indices, normalised x1 y1 x2 y2 boxes) of its non-crowd annotations."""
    grouped: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for ann in data.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        image_id = ann.get("image_id")
        if image_id not in images:
            problems.warn("annotations refer to unknown image ids (ignored)", f"annotation id {ann.get('id')}")
            continue
        parsed = _parse_annotation(ann, category_index, images[image_id][1])
        if isinstance(parsed, str):
            problems.error(f"annotation id {ann.get('id')} (image id {image_id})", parsed)
            continue
        classes, boxes = grouped[image_id]
        classes.append(parsed[0])
        boxes.append(parsed[1])
    return grouped


def _parse_annotation(ann: dict[str, Any], category_index: dict[int, int],
                      size: tuple[int, int]) -> tuple[int, list[float]] | str:
    """One annotation -> (class index, normalised box), or the reason it is invalid."""
    category = ann.get("category_id")
    if category not in category_index:
        return f"category_id {category!r} is not in 'categories'"
    bbox = ann.get("bbox")
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
        return f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}"
    x, y, w, h = bbox
    if w < 0 or h < 0:
        return f"negative box size in bbox {bbox!r}"
    width, height = size
    return category_index[category], [x / width, y / height, (x + w) / width, (y + h) / height]
