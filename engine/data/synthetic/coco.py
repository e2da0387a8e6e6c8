"""COCO-style JSON records shared by the dataset and video writers.

Category ids equal the class indices, 0 to ``nc - 1`` (the same numbers as YOLO labels),
so one id means one class everywhere. Boxes are ``[x, y, width, height]`` in pixels with
``(x, y)`` the top-left corner. Every image record carries the picture's difficulty
factors under the extra key ``difficulty_factors``; every annotation carries its
``occlusion`` (hidden share) and ``contrast``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.data.synthetic.classes import CLASS_NAMES
from engine.data.synthetic.scene import GENERATOR_VERSION, ObjectAnnotation, SyntheticImage

logger = logging.getLogger(__name__)


def categories() -> list[dict[str, Any]]:
    """One record per class, ids 0 to ``nc - 1``."""
    return [{"id": index, "name": name, "supercategory": "shape"} for index, name in enumerate(CLASS_NAMES)]


def image_record(image_id: int, file_name: str, picture: SyntheticImage, **extra: Any) -> dict[str, Any]:
    """The ``images`` entry of one picture; ``extra`` keys (e.g. ``frame_index``) are added as given."""
    height, width = picture.image.shape[:2]
    record = {"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)}
    record.update(extra)
    record["difficulty_factors"] = picture.factors.to_dict()
    return record


def annotation_record(annotation_id: int, image_id: int, annotation: ObjectAnnotation, **extra: Any) -> dict[str, Any]:
    """The ``annotations`` entry of one object; ``area`` counts visible pixels."""
    x1, y1, x2, y2 = annotation.box
    record = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": annotation.class_id,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": annotation.area,
        "iscrowd": 0,
        "occlusion": annotation.occlusion,
        "contrast": annotation.contrast,
    }
    record.update(extra)
    return record


def write_json(path: Path, images: list[dict], annotations: list[dict], info: dict[str, Any]) -> None:
    """Write a COCO document with our categories and a short ``info`` block."""
    document = {
        "info": {"description": "DynaStream synthetic shapes", "generator_version": GENERATOR_VERSION, **info},
        "images": images,
        "annotations": annotations,
        "categories": categories(),
    }
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
