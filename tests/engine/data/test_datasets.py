"""Dataset loading (YOLO layout, COCO JSON), bad-input policy, collate and COCO ground-truth export."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from engine.data.collate import collate_detections
from engine.data.datasets import DetectionDataset, to_coco_ground_truth
from engine.data.records import ProblemLog
from engine.data.yolo_format import label_path_for, parse_label_text
from engine.errors import ConfigError, UserError
from tests.engine.data.tiny_datasets import (
    bright_bbox,
    image_with_rectangle,
    write_coco_dataset,
    write_yolo_dataset,
    yolo_line,
)

RECT = (20, 10, 60, 30)  # x1 y1 x2 y2 in an 80 x 40 image


@pytest.fixture
def yolo_yaml(tmp_path: Path) -> Path:
    images = {
        "wide": (image_with_rectangle(80, 40, RECT), yolo_line(1, RECT, 80, 40) + "\n"),
        "empty": (image_with_rectangle(40, 40, (0, 0, 0, 0)), ""),
    }
    return write_yolo_dataset(tmp_path, images, ["cat", "dog"])


def test_yolo_val_sample_is_letterboxed_with_pixel_targets(yolo_yaml: Path) -> None:
    dataset = DetectionDataset.from_yolo(yolo_yaml, "train", imgsz=64)
    assert len(dataset) == 2 and dataset.names == ("cat", "dog")
    image, targets, info = dataset[next(i for i, r in enumerate(dataset.source.records) if r.path.stem == "wide")]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    # 80 x 40 -> scale 0.8 -> 64 x 32, padded by 16 rows on top.
    assert info["scale"] == pytest.approx(0.8) and info["pad"] == (0, 16) and info["orig_size"] == (40, 80)
    torch.testing.assert_close(targets, torch.tensor([[1.0, 32.0, 32.0, 32.0, 16.0]]), atol=1e-3, rtol=0)
    assert bright_bbox(image.numpy()) == (16.0, 24.0, 48.0, 40.0)
    assert image[:, 0, 0].tolist() == pytest.approx([114 / 255] * 3)


def test_yolo_empty_label_file_is_background_without_warning(yolo_yaml: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        dataset = DetectionDataset.from_yolo(yolo_yaml, "train", imgsz=64)
    assert not caplog.records
    empty = next(i for i, r in enumerate(dataset.source.records) if r.path.stem == "empty")
    assert dataset[empty][1].shape == (0, 5)


def test_yolo_image_list_file_and_names_mapping(tmp_path: Path) -> None:
    write_yolo_dataset(tmp_path, {"a": (image_with_rectangle(64, 64, RECT), yolo_line(0, RECT, 64, 64))}, ["x"])
    (tmp_path / "train.txt").write_text("./images/train/a.png\n\n")
    data_yaml = tmp_path / "list.yaml"
    data_yaml.write_text(yaml.safe_dump({"train": "train.txt", "names": {0: "only"}, "nc": 1}))
    dataset = DetectionDataset.from_yolo(data_yaml, "train", imgsz=64)
    assert dataset.names == ("only",) and len(dataset) == 1


@pytest.mark.parametrize(("config", "message"), [
    ({"train": "images/train", "names": ["a"], "nc": 2}, "nc is 2"),
    ({"names": ["a"]}, "no 'train' entry"),
    ({"train": "images/train"}, "needs 'names' or 'nc'"),
])
def test_yolo_yaml_errors_name_the_problem(tmp_path: Path, config: dict, message: str) -> None:
    data_yaml = tmp_path / "bad.yaml"
    data_yaml.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message):
        DetectionDataset.from_yolo(data_yaml, "train")


def test_label_path_mirrors_last_images_folder() -> None:
    assert label_path_for(Path("/d/images/x/images/train/a.jpg")) == Path("/d/images/x/labels/train/a.txt")
    assert label_path_for(Path("/d/pics/a.jpg")) == Path("/d/pics/a.txt")


def test_missing_label_files_warn_once_with_count(tmp_path: Path, caplog) -> None:
    images = {f"n{i}": (image_with_rectangle(32, 32, RECT), None) for i in range(3)}
    data_yaml = write_yolo_dataset(tmp_path, images, ["a"])
    with caplog.at_level(logging.WARNING):
        dataset = DetectionDataset.from_yolo(data_yaml, "train", imgsz=32)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "3 images without a label file" in warnings[0]
    assert all(dataset[i][1].shape == (0, 5) for i in range(3))


@pytest.mark.parametrize(("line", "message"), [
    ("5 0.5 0.5 0.2 0.2", "class id 5 is outside the 2 classes"),
    ("0 0.5 0.5", "expected 'class cx cy w h'"),
    ("0 0.5 abc 0.2 0.2", "expected numbers"),
    ("0 0.5 0.5 -0.2 0.2", "negative box size"),
])
def test_bad_label_lines_raise_naming_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = yolo_line(0, RECT, 64, 64)
    data_yaml = write_yolo_dataset(tmp_path, {"a": (image_with_rectangle(64, 64, RECT), f"{good}\n{line}\n")},
                                   ["a", "b"])
    with pytest.raises(UserError, match=message) as error:
        DetectionDataset.from_yolo(data_yaml, "train")
    assert f"{tmp_path / 'labels' / 'train' / 'a.txt'}:2" in str(error.value)


def test_boxes_outside_are_clipped_or_dropped_with_warning(tmp_path: Path, caplog) -> None:
    labels = "0 0.9 0.5 0.4 0.2\n0 1.5 0.5 0.2 0.2\n"  # half outside on the right; entirely outside
    data_yaml = write_yolo_dataset(tmp_path, {"edge": (image_with_rectangle(64, 64, RECT), labels)}, ["a"])
    with caplog.at_level(logging.WARNING):
        dataset = DetectionDataset.from_yolo(data_yaml, "train", imgsz=64)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "clipped" in text and "dropped" in text and "edge.txt" in text
    _, targets, _ = dataset[0]
    x1, x2 = targets[0, 1] - targets[0, 3] / 2, targets[0, 1] + targets[0, 3] / 2
    assert targets.shape == (1, 5) and x1 == pytest.approx(0.7 * 64) and x2 == pytest.approx(64.0)


def test_corrupt_image_is_replaced_with_warning(tmp_path: Path, caplog) -> None:
    images = {name: (image_with_rectangle(32, 32, RECT), "") for name in ("a", "b")}
    data_yaml = write_yolo_dataset(tmp_path, images, ["a"])
    broken = tmp_path / "images" / "train" / "a.png"
    broken.write_bytes(b"not an image at all")
    dataset = DetectionDataset.from_yolo(data_yaml, "train", imgsz=32)
    with caplog.at_level(logging.WARNING):
        _, _, info = dataset[0]
        dataset[0]
    assert info["index"] == 1 and info["path"].endswith("b.png")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and str(broken) in messages[0]
    assert [image["id"] for image in to_coco_ground_truth(dataset)["images"]] == [1]
    (tmp_path / "images" / "train" / "b.png").write_bytes(b"broken too")
    with pytest.raises(UserError, match="none of the 2 images can be decoded"):
        DetectionDataset.from_yolo(data_yaml, "train", imgsz=32)[1]


def _coco_fixture(tmp_path: Path) -> DetectionDataset:
    images = {"first": image_with_rectangle(80, 40, RECT), "second": image_with_rectangle(40, 40, (0, 0, 0, 0))}
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [20, 10, 40, 20], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [70, 30, 20, 20], "iscrowd": 0},
    ]
    categories = [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}]
    folder, json_path = write_coco_dataset(tmp_path, images, annotations, categories)
    return DetectionDataset.from_coco(folder, json_path, imgsz=64)


def test_coco_categories_map_to_contiguous_classes(tmp_path: Path) -> None:
    dataset = _coco_fixture(tmp_path)
    assert dataset.names == ("three", "seven") and len(dataset) == 2
    _, targets, _ = dataset[0]
    # Crowd skipped; the box at the corner is clipped to 70..80 x 30..40 (then scaled by 0.8, pad 16).
    expected = torch.tensor([[1.0, 32.0, 32.0, 32.0, 16.0], [0.0, 60.0, 44.0, 8.0, 8.0]])
    torch.testing.assert_close(targets, expected, atol=1e-3, rtol=0)
    assert dataset[1][1].shape == (0, 5)


def test_coco_errors_and_missing_images(tmp_path: Path, caplog) -> None:
    images = {"a": image_with_rectangle(32, 32, RECT)}
    categories = [{"id": 1, "name": "one"}]
    bad = [{"id": 9, "image_id": 1, "category_id": 2, "bbox": [0, 0, 4, 4]}]
    folder, json_path = write_coco_dataset(tmp_path, images, bad, categories)
    with pytest.raises(UserError, match=r"annotation id 9 .*category_id 2"):
        DetectionDataset.from_coco(folder, json_path)
    data = json.loads(json_path.read_text())
    data["annotations"] = []
    data["images"].append({"id": 2, "file_name": "gone.png", "width": 10, "height": 10})
    json_path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        dataset = DetectionDataset.from_coco(folder, json_path)
    assert len(dataset) == 1 and "gone.png" in caplog.text


def test_collate_stacks_images_and_tags_targets(yolo_yaml: Path) -> None:
    dataset = DetectionDataset.from_yolo(yolo_yaml, "train", imgsz=64)
    images, targets, infos = collate_detections([dataset[0], dataset[1], dataset[0]])
    per_image = [len(dataset[i][1]) for i in (0, 1, 0)]
    assert images.shape == (3, 3, 64, 64) and len(infos) == 3
    assert targets.shape == (sum(per_image), 6)
    assert targets[:, 0].tolist() == [i for i, k in enumerate(per_image) for _ in range(k)]
    empty = next(i for i in range(len(dataset)) if len(dataset[i][1]) == 0)
    _, empty_targets, _ = collate_detections([dataset[empty]])
    assert empty_targets.shape == (0, 6)


def test_coco_ground_truth_export_evaluates_perfect_detections(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = _coco_fixture(tmp_path)
    ground_truth = to_coco_ground_truth(dataset)
    assert ground_truth["images"][0]["width"] == 80 and ground_truth["images"][0]["height"] == 40
    boxes = [a["bbox"] for a in ground_truth["annotations"]]
    np.testing.assert_allclose(boxes, [[20, 10, 40, 20], [70, 30, 10, 10]], atol=1e-3)
    detections = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
                  for a in ground_truth["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress on stdout
        coco = COCO()
        coco.dataset = ground_truth
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_polygon_label_line_becomes_its_bounding_box() -> None:
    problems = ProblemLog("test")
    classes, boxes = parse_label_text("1 0.2 0.3 0.6 0.1 0.5 0.7\n", "poly.txt", 2, problems)
    problems.report()
    assert classes.tolist() == [1]
    np.testing.assert_allclose(boxes, [[0.2, 0.1, 0.6, 0.7]], atol=1e-6)
