"""Datasets on disk: YOLO and COCO layouts that agree with each other, written deterministically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.data.synthetic.classes import CLASS_NAMES
from engine.data.synthetic.export import num_val_images, write_dataset
from engine.errors import UserError

IMGSZ = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("synth") / "data", 10, seed=5, imgsz=IMGSZ, val_fraction=0.3).parent


def _yolo_boxes(label_file: Path) -> list[tuple[int, list[float]]]:
    """``(class, [x, y, w, h] in pixels)`` per line of a YOLO label file."""
    rows = []
    for line in label_file.read_text().splitlines():
        cls, cx, cy, w, h = line.split()
        cx, cy, w, h = (float(v) * IMGSZ for v in (cx, cy, w, h))
        rows.append((int(cls), [cx - w / 2, cy - h / 2, w, h]))
    return rows


def test_layout_and_data_yaml(dataset: Path) -> None:
    data = yaml.safe_load((dataset / "data.yaml").read_text())
    assert data == {
        "path": str(dataset.resolve()),
        "train": "images/train",
        "val": "images/val",
        "nc": len(CLASS_NAMES),
        "names": list(CLASS_NAMES),
    }
    train_images = sorted((dataset / "images" / "train").glob("*.jpg"))
    val_images = sorted((dataset / "images" / "val").glob("*.jpg"))
    assert len(train_images) == 7 and len(val_images) == 3
    for split, images in (("train", train_images), ("val", val_images)):
        labels = sorted(p.stem for p in (dataset / "labels" / split).glob("*.txt"))
        assert labels == [p.stem for p in images]
        assert (dataset / "annotations" / f"instances_{split}.json").is_file()


def test_yolo_labels_round_trip_to_coco_boxes(dataset: Path) -> None:
    for split in ("train", "val"):
        coco = json.loads((dataset / "annotations" / f"instances_{split}.json").read_text())
        assert [c["id"] for c in coco["categories"]] == list(range(len(CLASS_NAMES)))
        assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
        assert all(a["id"] >= 1 for a in coco["annotations"])
        for image in coco["images"]:
            assert (dataset / "images" / split / image["file_name"]).is_file()
            assert set(image["difficulty_factors"]) >= {"difficulty", "num_objects", "min_object_size",
                                                         "mean_occlusion", "contrast", "noise", "blur",
                                                         "true_difficulty"}
            expected = [(a["category_id"], a["bbox"]) for a in coco["annotations"] if a["image_id"] == image["id"]]
            labels = _yolo_boxes(dataset / "labels" / split / (Path(image["file_name"]).stem + ".txt"))
            assert len(labels) == len(expected) == image["difficulty_factors"]["num_objects"]
            for (cls, box), (coco_cls, coco_box) in zip(labels, expected):
                assert cls == coco_cls
                np.testing.assert_allclose(box, coco_box, atol=1e-3)


def test_metadata_lists_every_image_with_its_factors(dataset: Path) -> None:
    metadata = json.loads((dataset / "metadata.json").read_text())
    assert metadata["seed"] == 5 and metadata["num_images"] == 10 and metadata["generator_version"]
    assert metadata["counts"]["train"] == 7 and metadata["counts"]["val"] == 3
    assert [entry["file"] for entry in metadata["images"] if (dataset / entry["file"]).is_file()] == [
        entry["file"] for entry in metadata["images"]
    ]
    assert all(0.0 <= entry["true_difficulty"] <= 1.0 for entry in metadata["images"])


def test_same_seed_writes_identical_files(dataset: Path, tmp_path: Path) -> None:
    again = write_dataset(tmp_path / "again", 10, seed=5, imgsz=IMGSZ, val_fraction=0.3).parent
    for path in sorted(dataset.rglob("*")):
        if path.is_file() and path.name != "data.yaml":  # data.yaml names its own absolute path
            assert path.read_bytes() == (again / path.relative_to(dataset)).read_bytes(), path.name


def test_refuses_a_non_empty_directory_unless_overwriting(dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        write_dataset(target, 2, seed=0, imgsz=IMGSZ)
    write_dataset(target, 2, seed=0, imgsz=IMGSZ, overwrite=True)
    write_dataset(target, 1, seed=0, imgsz=IMGSZ, overwrite=True)
    assert (target / "notes.txt").read_text() == "keep me"
    assert len(list((target / "images").rglob("*.jpg"))) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_images": 0}, "at least 1"), ({"imgsz": 8}, "image size"), ({"val_fraction": 1.5}, "fraction")],
)
def test_bad_arguments_raise_user_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"num_images": 2, "seed": 0, "imgsz": IMGSZ, **kwargs}
    with pytest.raises(UserError, match=message):
        write_dataset(tmp_path / "out", **arguments)


def test_output_under_a_file_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write"):
        write_dataset(blocker / "data", 1, seed=0, imgsz=IMGSZ)


@pytest.mark.parametrize(("total", "fraction", "expected"), [(10, 0.2, 2), (2, 0.2, 1), (1, 0.2, 0), (5, 0.0, 0),
                                                             (5, 1.0, 5), (3, 0.9, 2)])
def test_validation_count(total: int, fraction: float, expected: int) -> None:
    assert num_val_images(total, fraction) == expected
