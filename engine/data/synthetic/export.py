"""Write a synthetic dataset in the two layouts users also bring: YOLO and COCO.

Layout under ``out_dir``::

    images/{train,val}/000123.jpg        RGB pictures (JPEG, quality 95)
    labels/{train,val}/000123.txt        YOLO: "class cx cy w h", normalised to [0, 1]
    annotations/instances_{train,val}.json   COCO, see :mod:`engine.data.synthetic.coco`
    data.yaml                            YOLO dataset file: path, train, val, nc, names
    metadata.json                        generator version, seed, counts, per-image factors

Picture ``i`` depends only on ``(seed, i)``: a larger dataset with the same seed starts
with the same pictures. Which pictures go to validation depends on the seed and count.
COCO image ids are the picture indices and ``file_name`` is relative to ``images/<split>/``;
annotation ids count from 1 within each split (COCO evaluation treats id 0 as "no match").
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from engine.data.synthetic.classes import CLASS_NAMES
from engine.data.synthetic.coco import annotation_record, image_record, write_json
from engine.data.synthetic.difficulty import sample_difficulty
from engine.data.synthetic.scene import GENERATOR_VERSION, SyntheticImage, generate_image
from engine.errors import UserError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
# Everything write_dataset creates; overwriting removes exactly these and nothing else.
_OUTPUTS = ("images", "labels", "annotations", "data.yaml", "metadata.json")
_JPEG_QUALITY = 95
_MIN_IMGSZ, _MAX_IMGSZ = 32, 4096
# Entropy mixed into the seed for the train/val split, so it does not reuse any picture's stream.
_SPLIT_STREAM = 0x5EED


def num_val_images(num_images: int, val_fraction: float) -> int:
    """How many of ``num_images`` go to validation: the rounded share, but at least one of
    each split whenever the fraction asks for both and there are two pictures or more."""
    count = round(num_images * val_fraction)
    if num_images >= 2 and 0.0 < val_fraction < 1.0:
        count = min(max(count, 1), num_images - 1)
    return count


def _check_arguments(num_images: int, imgsz: int, val_fraction: float) -> None:
    if num_images < 1:
        raise UserError(f"number of images must be at least 1, got {num_images}")
    if not _MIN_IMGSZ <= imgsz <= _MAX_IMGSZ:
        raise UserError(f"image size must be between {_MIN_IMGSZ} and {_MAX_IMGSZ} px, got {imgsz}")
    if not 0.0 <= val_fraction <= 1.0:
        raise UserError(f"validation fraction must be in [0, 1], got {val_fraction}")


def _prepare_directory(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output path exists and is not a directory: {out_dir}")
    try:
        if out_dir.is_dir() and any(out_dir.iterdir()):
            if not overwrite:
                raise UserError(
                    f"output directory is not empty: {out_dir} (use an empty one, or --overwrite to replace it)"
                )
            for name in _OUTPUTS:
                target = out_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        for kind in ("images", "labels"):
            for split in SPLITS:
                (out_dir / kind / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "annotations").mkdir(exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to output directory {out_dir}: {exc.strerror or exc}") from None


def yolo_lines(picture: SyntheticImage) -> list[str]:
    """YOLO label lines ``class cx cy w h`` (normalised) for one picture."""
    height, width = picture.image.shape[:2]
    lines = []
    for annotation in picture.annotations:
        x1, y1, x2, y2 = annotation.box
        cx, cy = (x1 + x2) / 2.0 / width, (y1 + y2) / 2.0 / height
        lines.append(f"{annotation.class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    return lines


def _write_picture(out_dir: Path, split: str, stem: str, picture: SyntheticImage) -> None:
    image_path = out_dir / "images" / split / f"{stem}.jpg"
    bgr = cv2.cvtColor(picture.image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(image_path), bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
        raise UserError(f"cannot write image {image_path}")
    lines = yolo_lines(picture)
    (out_dir / "labels" / split / f"{stem}.txt").write_text("".join(line + "\n" for line in lines), encoding="ascii")


def write_dataset(
    out_dir: str | Path,
    num_images: int,
    seed: int,
    imgsz: int = 320,
    val_fraction: float = 0.2,
    *,
    overwrite: bool = False,
) -> Path:
    """Generate pictures of difficulty spread over [0, 1] and write them as YOLO and COCO.

    Args:
        out_dir: dataset root; created if missing, must be empty unless ``overwrite``.
        num_images: pictures in total (train and val).
        seed: equal seeds give identical datasets.
        imgsz: side of the square pictures in pixels.
        val_fraction: share of pictures in the validation split.
        overwrite: replace an earlier dataset in ``out_dir`` (only the files this function writes).

    Returns:
        The path of ``data.yaml``.

    Raises:
        UserError: for invalid counts or sizes, or an output that cannot be written.
    """
    out_dir = Path(out_dir)
    _check_arguments(num_images, imgsz, val_fraction)
    _prepare_directory(out_dir, overwrite)
    split_rng = np.random.default_rng([seed, _SPLIT_STREAM])
    val_indices = set(split_rng.permutation(num_images)[: num_val_images(num_images, val_fraction)].tolist())
    picture_seeds = np.random.SeedSequence(seed).spawn(num_images)
    index_files = _IndexFiles()
    try:
        for index in tqdm(range(num_images), desc="synth images", unit="img", file=sys.stderr, leave=False):
            rng = np.random.default_rng(picture_seeds[index])
            picture = generate_image(sample_difficulty(rng), rng, size=(imgsz, imgsz))
            split = "val" if index in val_indices else "train"
            _write_picture(out_dir, split, f"{index:06d}", picture)
            index_files.add(index, split, f"{index:06d}.jpg", picture)
        index_files.write(out_dir, seed=seed, imgsz=imgsz, val_fraction=val_fraction)
    except OSError as exc:
        raise UserError(f"cannot write dataset to {out_dir}: {exc.strerror or exc}") from None
    logger.info("wrote %d images to %s (%d for validation)", num_images, out_dir, len(val_indices))
    return out_dir / "data.yaml"


class _IndexFiles:
    """Collects what the COCO files and metadata.json say about each picture, then writes them with data.yaml."""

    def __init__(self) -> None:
        self.coco: dict[str, dict[str, list]] = {split: {"images": [], "annotations": []} for split in SPLITS}
        self.per_image: list[dict[str, Any]] = []

    def add(self, index: int, split: str, file_name: str, picture: SyntheticImage) -> None:
        records = self.coco[split]
        records["images"].append(image_record(index, file_name, picture))
        for annotation in picture.annotations:
            annotation_id = len(records["annotations"]) + 1
            records["annotations"].append(annotation_record(annotation_id, index, annotation))
        self.per_image.append({"file": f"images/{split}/{file_name}", "split": split, **picture.factors.to_dict()})

    def write(self, out_dir: Path, **settings: Any) -> None:
        """COCO files, data.yaml and metadata.json, once every picture is on disk."""
        for split in SPLITS:
            write_json(out_dir / "annotations" / f"instances_{split}.json", **self.coco[split], info=settings)
        data = {
            "path": str(out_dir.resolve()),
            "train": "images/train",
            "val": "images/val",
            "nc": len(CLASS_NAMES),
            "names": list(CLASS_NAMES),
        }
        (out_dir / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        counts = {split: len(self.coco[split]["images"]) for split in SPLITS}
        counts["objects"] = sum(len(self.coco[split]["annotations"]) for split in SPLITS)
        metadata = {
            "generator_version": GENERATOR_VERSION,
            **settings,
            "num_images": len(self.per_image),
            "names": list(CLASS_NAMES),
            "coco_category_ids": "class index, 0 to nc - 1",
            "counts": counts,
            "images": self.per_image,
        }
        (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=1), encoding="utf-8")
