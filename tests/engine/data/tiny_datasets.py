"""Builders of tiny on-disk datasets (YOLO layout and COCO JSON) for the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import yaml

BACKGROUND = 0
OBJECT = 255


def image_with_rectangle(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Black BGR image with a white filled rectangle covering pixels ``x1 <= x < x2``, ``y1 <= y < y2``."""
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = OBJECT
    return image


def yolo_line(class_id: int, box: tuple[float, float, float, float], width: int, height: int) -> str:
    """``class cx cy w h`` normalised label line for a pixel ``x1 y1 x2 y2`` box."""
    x1, y1, x2, y2 = box
    return f"{class_id} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} " \
           f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"


def write_yolo_dataset(root: Path, images: dict[str, tuple[np.ndarray, str | None]],
                       names: list[str], split: str = "train") -> Path:
    """Write ``images/<split>/<name>.png`` and ``labels/<split>/<name>.txt`` (None: no label file).

    Returns:
        Path of the ``data.yaml``.
    """
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for name, (image, labels) in images.items():
        cv2.imwrite(str(root / "images" / split / f"{name}.png"), image)
        if labels is not None:
            (root / "labels" / split / f"{name}.txt").write_text(labels)
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump({"path": ".", split: f"images/{split}", "names": names}))
    return data_yaml


def write_coco_dataset(root: Path, images: dict[str, np.ndarray], annotations: list[dict],
                       categories: list[dict]) -> tuple[Path, Path]:
    """Write ``images/<name>.png`` and ``instances.json``; image ids follow the dict order from 1.

    Returns:
        The images folder and the JSON path.
    """
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for image_id, (name, image) in enumerate(images.items(), start=1):
        cv2.imwrite(str(folder / f"{name}.png"), image)
        entries.append({"id": image_id, "file_name": f"{name}.png", "width": image.shape[1],
                        "height": image.shape[0]})
    json_path = root / "instances.json"
    json_path.write_text(json.dumps({"images": entries, "annotations": annotations, "categories": categories}))
    return folder, json_path


def bright_bbox(image_chw: np.ndarray, threshold: float = 0.5) -> tuple[float, float, float, float] | None:
    """Pixel-edge bounding box ``x1 y1 x2 y2`` of the pixels brighter than ``threshold`` in all channels."""
    mask = (image_chw > threshold).all(axis=0)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
