"""The detection dataset: parsed records -> letterboxed (and, for training, augmented) tensors.

A :class:`DetectionDataset` wraps a validated :class:`~engine.data.records.DatasetSource`
(YOLO layout or COCO JSON, see :mod:`engine.data.yolo_format` and
:mod:`engine.data.coco_format`). Construction reads the annotations only; images are decoded
when a sample is requested. An image that cannot be decoded is replaced by the next readable
one with a warning naming the file, so a single bad file never stops a long run; only a
dataset with no readable image at all raises.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from engine.data.augment import (
    AugmentConfig,
    augment_hsv,
    flip_horizontal,
    letterbox,
    mosaic,
    random_affine,
    resize_long_side,
)
from engine.data.coco_format import load_coco_source
from engine.data.records import DatasetSource
from engine.data.yolo_format import load_yolo_source
from engine.errors import UserError

logger = logging.getLogger(__name__)

# EXIF orientations 5..8 rotate by 90 degrees: decoders that honour them swap width and height.
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})

Sample = tuple[torch.Tensor, torch.Tensor, dict[str, Any]]


class DetectionDataset(Dataset):
    """Images and box targets for training or validation.

    Each sample is ``(image, targets, info)``:

    - ``image``: float32 ``[3, imgsz, imgsz]``, RGB in [0, 1];
    - ``targets``: float32 ``[K, 5]`` rows ``class, cx, cy, w, h`` in pixels of ``image``;
    - ``info``: ``path`` (str, the image actually returned), ``index`` (its record index, which
      differs from the requested one only when an unreadable image was replaced),
      ``orig_size`` (height, width), ``scale`` and ``pad`` (left, top) of the letterbox, so that a
      point ``p`` of the original maps to ``p * scale + pad``, and ``mosaic`` (bool). For mosaic
      samples ``scale`` and ``pad`` are None; after a random affine they describe the letterbox
      step only.

    Validation mode (``augment=None``) is letterbox only. Training mode applies, in order:
    mosaic (with probability ``augment.mosaic``) or letterbox, a random affine, HSV gains and
    a horizontal flip.
    """

    def __init__(self, source: DatasetSource, imgsz: int = 640, augment: AugmentConfig | None = None,
                 seed: int | None = None) -> None:
        """Args:
            source: validated records.
            imgsz: side of the square network input; a multiple of 32.
            augment: training augmentations, or None for validation (letterbox only).
            seed: makes the augmentation stream reproducible in the main process; data-loader
                workers always mix in their own torch seed so that they draw different streams.
        """
        if imgsz <= 0 or imgsz % 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
        self.source = source
        self.imgsz = imgsz
        self.augment = augment
        self._seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int | None] | None = None
        self._unreadable: set[int] = set()
        self._size_warned: set[int] = set()

    @classmethod
    def from_yolo(cls, data_yaml: str | Path, split: str, imgsz: int = 640,
                  augment: AugmentConfig | None = None, seed: int | None = None) -> DetectionDataset:
        """Dataset for split ``split`` of a YOLO-layout ``data.yaml``."""
        return cls(load_yolo_source(data_yaml, split), imgsz, augment, seed)

    @classmethod
    def from_coco(cls, images_dir: str | Path, annotations_json: str | Path, imgsz: int = 640,
                  augment: AugmentConfig | None = None, seed: int | None = None) -> DetectionDataset:
        """Dataset for a COCO instances JSON file and its images folder."""
        return cls(load_coco_source(images_dir, annotations_json), imgsz, augment, seed)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names; index ``i`` is class id ``i``."""
        return self.source.names

    @property
    def num_classes(self) -> int:
        return len(self.source.names)

    def __len__(self) -> int:
        return len(self.source.records)

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        if self.augment is None:
            image, boxes, classes, info = self._letterboxed_sample(index)
        else:
            image, boxes, classes, info = self._augmented_sample(index, self.augment)
        return _to_tensor(image), _to_targets(classes, boxes), info

    def image_size(self, index: int) -> tuple[int, int]:
        """Original ``(width, height)`` of image ``index``, from the annotations or the file header."""
        record = self.source.records[index]
        if record.size is not None:
            return record.size
        return read_image_size(record.path)

    def _letterboxed_sample(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        image, used = self._load(index)
        original_hw = image.shape[:2]
        image, scale, pad = letterbox(image, self.imgsz)
        record = self.source.records[used]
        boxes = _pixel_boxes(record.boxes, original_hw, scale, pad)
        info = {"path": str(record.path), "index": used, "orig_size": tuple(original_hw),
                "scale": scale, "pad": pad, "mosaic": False}
        return image, boxes, record.classes.copy(), info

    def _augmented_sample(self, index: int,
                          augment: AugmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        rng = self._generator()
        if rng.random() < augment.mosaic:
            image, boxes, classes, info = self._mosaic_canvas(index, rng)
        else:
            image, boxes, classes, info = self._letterboxed_sample(index)
        # The affine also crops a 2x mosaic canvas back to imgsz (its centre maps to the output centre).
        image, boxes, classes = random_affine(image, boxes, classes, self.imgsz, augment, rng)
        image = augment_hsv(image, augment, rng)
        if rng.random() < augment.fliplr:
            image, boxes = flip_horizontal(image, boxes)
        return image, boxes, classes, info

    def _mosaic_canvas(self, index: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """A ``2*imgsz`` mosaic of image ``index`` and three random others."""
        tiles = []
        info: dict[str, Any] = {}
        for requested in [index, *rng.integers(0, len(self), 3).tolist()]:
            image, used = self._load(requested)
            original_hw = image.shape[:2]
            image, scale = resize_long_side(image, self.imgsz)
            record = self.source.records[used]
            tiles.append((image, _pixel_boxes(record.boxes, original_hw, scale, (0, 0)), record.classes))
            if not info:
                info = {"path": str(record.path), "index": used, "orig_size": tuple(original_hw),
                        "scale": None, "pad": None, "mosaic": True}
        canvas, boxes, classes = mosaic(tiles, self.imgsz, rng)
        return canvas, boxes, classes, info

    def _load(self, index: int) -> tuple[np.ndarray, int]:
        """Decode image ``index`` (BGR), or the next readable one if it cannot be decoded."""
        count = len(self)
        for offset in range(count):
            candidate = (index + offset) % count
            if candidate in self._unreadable:
                continue
            record = self.source.records[candidate]
            image = cv2.imread(str(record.path), cv2.IMREAD_COLOR)
            if image is not None:
                self._check_size(candidate, image)
                return image, candidate
            self._unreadable.add(candidate)
            logger.warning("%s: cannot decode image %s; another image is used in its place (%d unreadable so far)",
                           self.source.description, record.path, len(self._unreadable))
        raise UserError(f"{self.source.description}: none of the {count} images can be decoded")

    def _check_size(self, index: int, image: np.ndarray) -> None:
        """Warn once when an image's size differs from the one its annotation file states."""
        record = self.source.records[index]
        actual = (image.shape[1], image.shape[0])
        if record.size is not None and record.size != actual and index not in self._size_warned:
            self._size_warned.add(index)
            logger.warning("%s: image %s is %dx%d but the annotations say %dx%d; its boxes are scaled to fit",
                           self.source.description, record.path, *actual, *record.size)

    def _generator(self) -> np.random.Generator:
        """This process's augmentation random stream (re-seeded in every data-loader worker)."""
        worker = get_worker_info()
        # torch gives each worker (and each epoch's fresh workers) its own initial seed.
        key = (os.getpid(), torch.initial_seed() if worker is not None else None)
        if self._rng is None or self._rng_key != key:
            if worker is not None:
                entropy = [self._seed or 0, torch.initial_seed()]
            else:
                entropy = [self._seed] if self._seed is not None else [torch.initial_seed()]
            self._rng = np.random.default_rng(entropy)
            self._rng_key = key
        return self._rng


def read_image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image as decoders that honour EXIF orientation see it.

    Reads the header only. Raises UserError naming the file when it is not a readable image.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read image header of {path} ({exc})") from None
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def _pixel_boxes(normalised: np.ndarray, original_hw: tuple[int, int], scale: float,
                 pad: tuple[int, int]) -> np.ndarray:
    """Normalised ``x1 y1 x2 y2`` -> pixels of the resized (and padded) image."""
    height, width = original_hw
    size = np.array([width, height, width, height], np.float32) * scale
    offset = np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)
    return (normalised * size + offset).astype(np.float32).reshape(-1, 4)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """BGR uint8 ``[H, W, 3]`` -> RGB float ``[3, H, W]`` in [0, 1]."""
    rgb = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))  # [3, H, W]
    return torch.from_numpy(rgb).float().div_(255.0)


def _to_targets(classes: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
    """Classes ``[K]`` and ``x1 y1 x2 y2`` boxes ``[K, 4]`` -> ``[K, 5]`` (class, cx, cy, w, h)."""
    boxes = boxes.reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = boxes[:, 2:] - boxes[:, :2]
    rows = np.concatenate([classes.reshape(-1, 1).astype(np.float32), centre, size], axis=1)  # [K, 5]
    return torch.from_numpy(rows.astype(np.float32))


def to_coco_ground_truth(dataset: DetectionDataset) -> dict[str, Any]:
    """The dataset's boxes as a COCO ground-truth dict for ``pycocotools``, in original pixels.

    Image ids are dataset indices (``info["index"]`` of a sample) and category ids are the
    contiguous class indices, so detections exported the same way match directly. Images whose
    header cannot be read are left out with a warning. Use with
    ``coco = COCO(); coco.dataset = gt; coco.createIndex()``.
    """
    images, annotations = [], []
    for index, record in enumerate(dataset.source.records):
        try:
            width, height = dataset.image_size(index)
        except UserError as exc:
            # The loader replaces this image during evaluation too; leaving it out of the ground
            # truth keeps the metric about the images that were actually seen.
            logger.warning("%s: %s; left out of the evaluation ground truth", dataset.source.description, exc)
            continue
        images.append({"id": index, "file_name": str(record.path), "width": width, "height": height})
        pixels = record.boxes * np.array([width, height, width, height], np.float32)  # [K, 4] x1 y1 x2 y2
        for class_id, (x1, y1, x2, y2) in zip(record.classes.tolist(), pixels.tolist()):
            box = [x1, y1, x2 - x1, y2 - y1]
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": class_id,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    categories = [{"id": i, "name": name} for i, name in enumerate(dataset.names)]
    return {"images": images, "annotations": annotations, "categories": categories}
