"""Augmentations keep boxes on the pixels they describe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.augment import AugmentConfig, augment_hsv, flip_horizontal, letterbox, mosaic, random_affine
from engine.data.datasets import DetectionDataset
from tests.engine.data.tiny_datasets import bright_bbox, image_with_rectangle, write_yolo_dataset, yolo_line

# Edge pixels are interpolated, so a bright-pixel box may differ from the target by about a pixel.
EDGE_TOLERANCE = 1.5
GEOMETRY_ONLY = AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0, degrees=15, translate=0.1, scale=0.4, shear=5,
                              fliplr=0.5, mosaic=0)


def _xyxy(targets: np.ndarray) -> np.ndarray:
    centre, size = targets[:, 1:3], targets[:, 3:5]
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def test_letterbox_scale_and_padding() -> None:
    image, scale, pad = letterbox(np.zeros((50, 100, 3), np.uint8), 64)
    assert image.shape == (64, 64, 3) and scale == pytest.approx(0.64) and pad == (0, 16)
    assert (image[:16] == 114).all() and (image[16:48] == 0).all() and (image[48:] == 114).all()


def test_flip_mirrors_boxes() -> None:
    image = image_with_rectangle(40, 20, (5, 2, 15, 12))
    flipped, boxes = flip_horizontal(image, np.array([[5, 2, 15, 12]], np.float32))
    assert boxes.tolist() == [[25, 2, 35, 12]]
    assert bright_bbox(flipped.transpose(2, 0, 1), 127) == (25, 2, 35, 12)


@pytest.mark.parametrize("seed", range(6))
def test_random_affine_box_covers_the_rectangle(seed: int) -> None:
    rect = (24, 20, 40, 44)  # near the centre, so it stays inside the output for this config
    image = image_with_rectangle(64, 64, rect)
    out, boxes, classes = random_affine(image, np.array([rect], np.float32), np.array([3]), 64, GEOMETRY_ONLY,
                                        np.random.default_rng(seed))
    assert classes.tolist() == [3]
    # The target is the box of the transformed corners: exactly the bright pixels' extent.
    np.testing.assert_allclose(bright_bbox(out.transpose(2, 0, 1), 127), boxes[0], atol=EDGE_TOLERANCE)


@pytest.mark.parametrize("seed", range(4))
def test_dataset_training_sample_keeps_box_on_rectangle(tmp_path: Path, seed: int) -> None:
    rect = (30, 20, 50, 50)
    data_yaml = write_yolo_dataset(tmp_path, {"a": (image_with_rectangle(80, 70, rect), yolo_line(0, rect, 80, 70))},
                                   ["a"])
    dataset = DetectionDataset.from_yolo(data_yaml, "train", imgsz=64, augment=GEOMETRY_ONLY, seed=seed)
    image, targets, _ = dataset[0]
    assert targets.shape == (1, 5)
    np.testing.assert_allclose(bright_bbox(image.numpy()), _xyxy(targets.numpy())[0], atol=EDGE_TOLERANCE)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_boxes_lie_on_object_pixels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tiles = []
    for width, height in [(64, 48), (48, 64), (64, 64), (40, 64)]:
        rect = (width // 4, height // 4, 3 * width // 4, 3 * height // 4)
        tiles.append((image_with_rectangle(width, height, rect), np.array([rect], np.float32), np.array([0])))
    config = AugmentConfig(degrees=0, shear=0, translate=0.1, scale=0.3)
    canvas, boxes, classes = mosaic(tiles, 64, rng)
    image, boxes, classes = random_affine(canvas, boxes, classes, 64, config, rng)
    assert image.shape == (64, 64, 3) and len(boxes) == len(classes) >= 1
    bright = (image > 127).all(axis=2)
    covered = np.zeros_like(bright)
    for x1, y1, x2, y2 in boxes:
        inner = bright[int(np.ceil(y1 + EDGE_TOLERANCE)):int(y2 - EDGE_TOLERANCE),
                       int(np.ceil(x1 + EDGE_TOLERANCE)):int(x2 - EDGE_TOLERANCE)]
        assert inner.all(), "a target box covers non-object pixels"
        covered[max(int(y1 - EDGE_TOLERANCE), 0):int(np.ceil(y2 + EDGE_TOLERANCE)),
                max(int(x1 - EDGE_TOLERANCE), 0):int(np.ceil(x2 + EDGE_TOLERANCE))] = True
    # Object slivers whose box was dropped (under 10% of their area left) may remain uncovered.
    assert (bright & ~covered).sum() <= 0.1 * bright.sum()


def test_hsv_changes_colours_only() -> None:
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    changed = augment_hsv(image, AugmentConfig(), np.random.default_rng(1))
    assert changed.shape == image.shape and changed.dtype == np.uint8 and not np.array_equal(changed, image)
    still = augment_hsv(image, AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0), np.random.default_rng(1))
    assert still is image


def test_default_training_pipeline_targets_inside_image(tmp_path: Path) -> None:
    images = {f"i{k}": (image_with_rectangle(96, 64, (10 + k, 10, 60, 50)), yolo_line(0, (10 + k, 10, 60, 50), 96, 64))
              for k in range(3)}
    dataset = DetectionDataset.from_yolo(write_yolo_dataset(tmp_path, images, ["a"]), "train", imgsz=64,
                                         augment=AugmentConfig(), seed=0)
    for index in range(3):
        image, targets, info = dataset[index]
        boxes = _xyxy(targets.numpy())
        assert image.shape == (3, 64, 64) and (boxes >= -1e-4).all() and (boxes <= 64 + 1e-4).all()
        assert info["mosaic"] is True and info["scale"] is None


def test_augment_config_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="mosaic"):
        AugmentConfig(mosaic=1.5)


def test_seed_makes_augmentation_reproducible(tmp_path: Path) -> None:
    rect = (30, 20, 50, 50)
    data_yaml = write_yolo_dataset(tmp_path, {"a": (image_with_rectangle(80, 70, rect), yolo_line(0, rect, 80, 70))},
                                   ["a"])

    def first_sample(seed: int) -> np.ndarray:
        dataset = DetectionDataset.from_yolo(data_yaml, "train", imgsz=64, augment=AugmentConfig(), seed=seed)
        return dataset[0][0].numpy()

    np.testing.assert_array_equal(first_sample(3), first_sample(3))
    assert not np.array_equal(first_sample(3), first_sample(4))
