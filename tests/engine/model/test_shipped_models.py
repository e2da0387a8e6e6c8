"""The models in assets/ find the demo clip's objects (its ground truth is assets/demo.json)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from engine.model.backends import TorchBackend
from engine.model.checkpoint import load_model
from engine.model.predictor import Predictor
from engine.train.evaluate import coco_map

ASSETS = Path(__file__).resolve().parents[3] / "assets"
FRAMES = range(0, 900, 45)  # 20 frames across the calm and the busy stretches


def demo_frames() -> tuple[list[np.ndarray], list[np.ndarray]]:
    truth = json.loads((ASSETS / "demo.json").read_text())
    boxes: dict[int, list] = {}
    for a in truth["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], []).append([a["category_id"], x, y, x + w, y + h])
    frame_of = {image["frame_index"]: image["id"] for image in truth["images"]}
    images, rows = [], []
    with av.open(str(ASSETS / "demo.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in FRAMES:
                images.append(frame.to_ndarray(format="rgb24"))
                rows.append(np.asarray(boxes.get(frame_of[index], []), dtype=np.float64).reshape(-1, 5))
    return images, rows


@pytest.mark.parametrize("name", ["dy-yolov7-tiny", "dy-faster-rcnn-r18"])
def test_each_exit_of_a_shipped_model_finds_the_demo_objects(name):
    weights = ASSETS / f"{name}.safetensors"
    if not weights.exists() or not (ASSETS / "demo.json").exists():
        pytest.skip(f"{weights.name} or the demo clip is not in assets/")
    loaded = load_model(weights)
    model = loaded.model
    assert loaded.calibration is not None
    predictor = Predictor(TorchBackend(model), model.class_names, model.input_size, conf_threshold=0.001,
                          stride=model.stride)
    images, truth = demo_frames()
    results = {}
    for route in ("first", "second"):
        found = [np.column_stack([d.boxes, d.scores, d.class_ids]) for d in predictor.predict(images, route=route)]
        results[route] = coco_map(found, truth, len(model.class_names))
    assert results["first"]["map50"] > 0.5 and results["second"]["map50"] > 0.5, results
    assert results["second"]["map"] > results["first"]["map"], results
