"""Class names: COCO names for nameless 80-class checkpoints, and --names for any model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from engine.data.coco_names import COCO_NAMES
from engine.errors import UserError
from engine.model.arch import load_arch
from engine.model.loading import read_class_names


def test_a_nameless_80_class_model_speaks_coco():
    arch = replace(load_arch("configs/models/dy-yolov7-tiny.yaml"), class_names=(), num_classes=80)
    assert arch.names == COCO_NAMES and arch.names[:3] == ("person", "bicycle", "car")
    assert replace(arch, num_classes=3).names == ("class0", "class1", "class2")


def test_names_from_a_list_or_a_data_yaml(tmp_path):
    (tmp_path / "names.yaml").write_text("[cat, dog, bird]\n")
    (tmp_path / "data.yaml").write_text("train: images\nnames: {0: cat, 1: dog, 2: bird}\n")
    assert read_class_names(tmp_path / "names.yaml", 3) == ("cat", "dog", "bird")
    assert read_class_names(tmp_path / "data.yaml", 3) == ("cat", "dog", "bird")
    with pytest.raises(UserError, match="2 names for a model with 3 classes"):
        (tmp_path / "two.yaml").write_text("[cat, dog]\n")
        read_class_names(tmp_path / "two.yaml", 3)


def test_run_labels_detections_with_the_given_names(tiny_weights, tmp_path, capsys):
    from app.cli import main
    from tests.support.media import make_video

    make_video(tmp_path / "in.mp4", frames=4, fps=10, size=(64, 48))
    (tmp_path / "names.yaml").write_text("[cat, dog, bird]\n")
    code = main(["run", "--weights", str(tiny_weights), "--backend", "torch", "--no-progress", "--conf", "0.0",
                 "--source", str(tmp_path / "in.mp4"), "--names", str(tmp_path / "names.yaml"),
                 "--events", str(tmp_path / "ev.jsonl"), "--classes", "dog"])
    assert code == 0, capsys.readouterr().err
    labels = {d["label"] for line in (tmp_path / "ev.jsonl").read_text().splitlines()
              for d in json.loads(line)["detections"]}
    assert labels <= {"dog"} and labels
