"""Per-sample routing: in a mixed batch each sample gets exactly what it gets alone."""

from __future__ import annotations

import numpy as np
import torch

from engine.model.backends import TorchBackend
from engine.model.predictor import Predictor
from tests.engine.model.helpers import tiny_model


def _inputs() -> torch.Tensor:
    torch.manual_seed(1)
    levels = torch.tensor([0.05, 0.35, 0.65, 0.95]).view(4, 1, 1, 1)
    return (torch.rand(4, 3, 64, 96) * 0.3 + levels).clamp(0, 1)


def test_mixed_batch_matches_single_samples():
    model = tiny_model()
    x = _inputs()
    scores = model.router_score(x)
    order = scores.argsort()
    assert len(set(scores.tolist())) == 4, "fixture needs distinct router scores"
    threshold = float((scores[order[1]] + scores[order[2]]) / 2)
    with torch.no_grad():
        batch = model(x, threshold=threshold)
    assert sorted(batch.exits.tolist()) == [1, 1, 2, 2]
    for i in range(4):
        with torch.no_grad():
            alone = model(x[i : i + 1], threshold=threshold)
        assert alone.exits.item() == batch.exits[i].item()
        # Batched convolutions may round differently from single ones (last float bits only).
        assert abs(alone.scores.item() - batch.scores[i].item()) < 1e-6
        torch.testing.assert_close(alone.predictions[0], batch.predictions[i], rtol=1e-5, atol=1e-4)
        expected = model.predict_exit(x[i : i + 1], int(batch.exits[i]))
        torch.testing.assert_close(expected[0], batch.predictions[i], rtol=1e-5, atol=1e-4)


def test_forced_routes_and_exit_order():
    model = tiny_model()
    x = _inputs()
    with torch.no_grad():
        assert model(x, route="first").exits.tolist() == [1, 1, 1, 1]
        assert model(x, route="second").exits.tolist() == [2, 2, 2, 2]
        assert model(x, threshold=0.0).exits.tolist() == [1, 1, 1, 1]
        assert model(x, threshold=1.01).exits.tolist() == [2, 2, 2, 2]


def test_predictor_routes_per_image_and_maps_boxes_back():
    model = tiny_model()
    images = [
        (np.random.default_rng(i).random((50 + 10 * i, 80, 3)) * 255 * (i + 1) / 4).astype(np.uint8) for i in range(4)
    ]
    predictor = Predictor(TorchBackend(model), model.class_names, imgsz=64, conf_threshold=0.0)
    alone = [predictor.predict([img], threshold=0.5)[0] for img in images]
    threshold = float(np.median([d.router_score for d in alone]))
    batch = predictor.predict(images[:1] * 2, threshold=threshold)
    assert batch[0].exit == batch[1].exit
    for det, img in zip(alone, images):
        assert det.exit in (1, 2)
        h, w = img.shape[:2]
        assert (det.boxes[:, [0, 2]] <= w).all() and (det.boxes[:, [1, 3]] <= h).all()
        assert (det.boxes >= 0).all()
        assert {"preprocess", "stage1", "nms", "total", f"exit{det.exit}"} <= set(det.timings_ms)


def test_predictor_takes_one_threshold_per_image():
    """Frames of different cameras in one batch each meet their own camera's threshold."""
    model = tiny_model()
    images = [(np.random.default_rng(i).random((64, 96, 3)) * 255 * (i + 1) / 4).astype(np.uint8) for i in range(4)]
    predictor = Predictor(TorchBackend(model), model.class_names, imgsz=64, conf_threshold=0.0)
    scores = [predictor.predict([img], route="first")[0].router_score for img in images]
    # Image i's threshold sits just above its score for even i (exit 2), just below for odd i (exit 1).
    thresholds = [s + 1e-4 if i % 2 == 0 else s - 1e-4 for i, s in enumerate(scores)]
    batch = predictor.predict(images, threshold=thresholds)
    assert [d.exit for d in batch] == [2, 1, 2, 1]
    assert [d.threshold for d in batch] == thresholds
    for det, img, t in zip(batch, images, thresholds):
        alone = predictor.predict([img], threshold=t)[0]
        assert alone.exit == det.exit
        np.testing.assert_allclose(alone.boxes, det.boxes, rtol=1e-4, atol=1e-2)
