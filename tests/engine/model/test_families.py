"""Both families behind the same predictor and backends: letterbox, routing, post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import UserError
from engine.model.backends import TorchBackend, make_backend
from engine.model.checkpoint import load_model
from engine.model.predictor import Predictor


def test_auto_backend_falls_back_to_pytorch_for_faster_rcnn(tiny_rcnn_weights):
    loaded = load_model(tiny_rcnn_weights)
    assert loaded.family.name == loaded.model.family == "dy-faster-rcnn" and not loaded.model.onnx_exportable
    assert make_backend(loaded, "auto").name == "torch"
    with pytest.raises(UserError, match="does not export to ONNX Runtime"):
        make_backend(load_model(tiny_rcnn_weights), "onnxruntime")


@pytest.mark.parametrize("weights", ["tiny_weights", "tiny_rcnn_weights"])
def test_predictor_routes_and_returns_boxes_in_original_pixels(weights, request):
    model = load_model(request.getfixturevalue(weights)).model
    predictor = Predictor(TorchBackend(model), model.class_names, imgsz=64, conf_threshold=0.0,
                          stride=model.stride)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(3)]
    results = predictor.predict(images, threshold=0.5)
    assert len(results) == 3
    for det in results:
        assert det.exit == (1 if det.router_score >= 0.5 else 2)
        assert det.boxes.shape[1] == 4 and len(det.boxes) == len(det.scores) == len(det.class_ids)
        if len(det.boxes):  # letterboxed back: inside the 160 x 90 frame
            assert det.boxes[:, [0, 2]].min() >= -1 and det.boxes[:, [0, 2]].max() <= 161
            assert det.boxes[:, [1, 3]].min() >= -1 and det.boxes[:, [1, 3]].max() <= 91
            assert set(det.class_ids.tolist()) <= {0, 1, 2}
    forced = predictor.predict(images, route="second")
    assert {d.exit for d in forced} == {2}


def test_faster_rcnn_exits_match_the_predictor_batch_of_one(tiny_rcnn_weights):
    """A batch routed per sample gives each image what it gets alone."""
    model = load_model(tiny_rcnn_weights).model
    predictor = Predictor(TorchBackend(model, fuse=False, channels_last=False), model.class_names, imgsz=64,
                          conf_threshold=0.0, stride=model.stride)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    together = predictor.predict(images, route="second")
    for image, det in zip(images, together):
        alone = predictor.predict([image], route="second")[0]
        np.testing.assert_allclose(alone.scores, det.scores, atol=1e-5)


def test_old_model_files_without_a_family_key_are_yolo(tiny_weights, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_weights), framework="pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    assert metadata.pop("family") == "dy-yolov7"
    old = tmp_path / "old.safetensors"
    save_file(state, str(old), metadata=metadata)
    loaded = load_model(old)
    model = loaded.model
    assert loaded.family.name == model.family == "dy-yolov7" and model.onnx_exportable
    with torch.no_grad():
        out = model.exit1(model.stage1(torch.rand(1, 3, 64, 64)))
    assert len(model.postprocess(out, 0.0, 0.5, 10)) == 1


def test_each_spec_knows_its_family_and_what_it_offers():
    from engine.model.families import FAMILIES, LoadedModel, build_cascade, new_model, spec_family
    from engine.model.variants import tiny_rcnn_variant, tiny_variant

    yolo, rcnn = tiny_variant(), tiny_rcnn_variant()
    assert (yolo.family, rcnn.family) == ("dy-yolov7", "dy-faster-rcnn") and set(FAMILIES) == {yolo.family, rcnn.family}
    assert spec_family(yolo).scalable and spec_family(yolo).reference_checkpoints and spec_family(yolo).shapes_on_meta
    assert spec_family(rcnn).torchvision_init and not spec_family(rcnn).scalable
    for spec in (yolo, rcnn):
        torch.manual_seed(0)
        loaded = new_model(spec)
        assert isinstance(loaded, LoadedModel) and loaded.calibration is None and loaded.spec is spec
        assert loaded.model.family == spec.family and loaded.describe()["family"] == spec.family
        assert type(build_cascade(spec)) is type(loaded.model)
    with pytest.raises(TypeError, match="not a model spec"):
        spec_family(object())
