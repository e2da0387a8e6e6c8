"""Per-sample routing: in a mixed batch each sample gets exactly what it gets alone.

The cascade's forward and the predictor on every backend route through one decision
(:mod:`engine.model.exits`); these tests hold each of them to it with batches whose samples
really leave at different exits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.synthetic.scene import generate_image
from engine.model.backends import TorchBackend
from engine.model.checkpoint import load_model
from engine.model.exits import plan_exits, run_exits
from engine.model.predictor import Predictor
from engine.model.score_scale import readable_calibration
from tests.engine.model.helpers import tiny_model

BOX_TOL = 0.01  # px, as the ONNX parity tests
SCORE_TOL = 1e-4


def _inputs() -> torch.Tensor:
    torch.manual_seed(1)
    levels = torch.tensor([0.05, 0.35, 0.65, 0.95]).view(4, 1, 1, 1)
    return (torch.rand(4, 3, 64, 96) * 0.3 + levels).clamp(0, 1)


def test_plan_follows_scores_thresholds_and_forced_routes():
    scores = np.array([0.2, 0.8, 0.5, 0.4])
    assert plan_exits(scores, 0.5).exits.tolist() == [2, 1, 1, 2]
    assert plan_exits(scores, [0.1, 0.9, 0.5, 0.5]).exits.tolist() == [1, 2, 1, 2]
    plan = plan_exits(scores, 0.5, ["second", "auto", "first", "auto"])
    assert plan.exits.tolist() == [2, 1, 1, 2]
    assert [plan.threshold(i) for i in range(4)] == [None, 0.5, None, 0.5]
    assert plan_exits(scores, 0.0, "second").exits.tolist() == [2, 2, 2, 2]
    assert [(e, i.tolist()) for e, i in plan_exits(scores, 0.45).groups()] == [(1, [1, 2]), (2, [0, 3])]
    with pytest.raises(ValueError, match="route must be one of"):
        plan_exits(scores, 0.5, "third")
    with pytest.raises(ValueError, match="threshold: expected one value or 4"):
        plan_exits(scores, [0.5, 0.5])


def test_run_exits_puts_each_row_back_in_input_order():
    plan = plan_exits(np.array([0.2, 0.8, 0.5, 0.4]), 0.45)
    calls = []
    rows = run_exits(plan, lambda exit_id, index: calls.append(exit_id) or [(exit_id, i) for i in index])
    assert rows == [(2, 0), (1, 1), (1, 2), (2, 3)] and calls == [1, 2]
    with pytest.raises(ValueError, match="returned 1 rows for 2 samples"):
        run_exits(plan, lambda exit_id, index: [None])


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
        assert model(x, route=["second", "first", "auto", "auto"], threshold=[0.0, 1.01, 0.0, 1.01]
                     ).exits.tolist() == [2, 1, 1, 2]


# Predictor.predict on every backend, the path that runs. The bundled model at a small input size:
# a random model's detections barely depend on its input, so a mix-up could go unseen.

BUNDLED = Path(__file__).resolve().parents[3] / "assets" / "dy-yolov7-tiny.safetensors"
IMGSZ = 160


@pytest.fixture(scope="module")
def bundled():
    if not BUNDLED.exists():
        pytest.skip(f"{BUNDLED.name} is not in assets/")
    return load_model(BUNDLED)


@pytest.fixture(scope="module")
def graphs(bundled, tmp_path_factory):
    from engine.model.onnx_export import export_staged

    return export_staged(bundled, BUNDLED, cache_root=tmp_path_factory.mktemp("routing"))  # not beside assets/


def _open_backend(name: str, request):
    if name == "torch":
        return TorchBackend(load_model(BUNDLED).model)
    graphs = request.getfixturevalue("graphs")
    if name == "onnxruntime":
        from engine.model.onnx_backend import OnnxBackend

        return OnnxBackend(graphs, threads=1)
    pytest.importorskip("openvino")
    from engine.model.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(graphs, threads=1, precision="f32", cache_dir="")


def _images() -> list[np.ndarray]:
    """Four same-sized generated scenes (same letterbox alone and batched) whose router scores lie
    apart and off the sigmoid's flat ends, where runtimes may round scores together."""
    scenes = ((5, 0.0), (3, 0.0), (7, 0.15), (2, 0.0))  # (seed, difficulty)
    return [generate_image(difficulty, seed=seed, size=(IMGSZ, 128)).image for seed, difficulty in scenes]


def _same(ours, expected) -> bool:
    """Same detections, boxes matched by position (near-equal scores may leave NMS in another order)."""
    if len(ours) != len(expected) or not np.array_equal(np.sort(ours.class_ids), np.sort(expected.class_ids)):
        return False
    if not len(ours):
        return True
    gap = np.abs(ours.boxes[:, None] - expected.boxes[None]).max(-1)  # [n_ours, n_expected] px
    gap[ours.class_ids[:, None] != expected.class_ids[None]] = np.inf
    match = gap.argmin(1)
    return bool((gap.min(1) < BOX_TOL).all() and len(set(match.tolist())) == len(ours)
                and np.allclose(ours.scores, expected.scores[match], atol=SCORE_TOL))


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_predictor_routes_a_mixed_batch_like_each_image_alone(backend, bundled, request):
    scale, _ = readable_calibration(bundled.calibration)
    model = bundled.model
    predictor = Predictor(_open_backend(backend, request), model.class_names, imgsz=IMGSZ, stride=model.stride,
                          score_scale=scale)
    images = _images()
    through = {route: [predictor.predict([image], route=route)[0] for image in images]
               for route in ("first", "second")}
    scores = np.array([d.router_score for d in through["first"]])
    assert np.diff(np.sort(scores)).min() > 0.05, "fixture needs router scores apart"
    for i, (first, second) in enumerate(zip(through["first"], through["second"])):
        assert len(first) and len(second) and not _same(first, second), f"image {i}: exits must differ"
        assert not _same(first, through["first"][i - 1]), f"images {i - 1} and {i} must differ"
    # Interleave exits in input order: easiest, hardest, second easiest, second hardest.
    easy_to_hard = np.argsort(-scores)
    order = [easy_to_hard[0], easy_to_hard[3], easy_to_hard[1], easy_to_hard[2]]
    threshold = float(scores[easy_to_hard[1]] + scores[easy_to_hard[2]]) / 2
    cases = {
        "one threshold": (threshold, "auto", [1, 2, 1, 2]),
        # Per-image thresholds that send the easy images to exit 2 and the hard ones to exit 1.
        "per-image thresholds": ([scores[i] + 1e-3 if k % 2 == 0 else scores[i] - 1e-3 for k, i in enumerate(order)],
                                 "auto", [2, 1, 2, 1]),
        "per-image routes": (threshold, ["second", "auto", "auto", "first"], [2, 2, 1, 1]),
    }
    for case, (thresholds, route, exits) in cases.items():
        batch = predictor.predict([images[i] for i in order], threshold=thresholds, route=route)
        assert [d.exit for d in batch] == exits, case
        per_image = np.broadcast_to(np.asarray(thresholds, float), (4,))
        routes = np.broadcast_to(np.asarray(route, object), (4,))
        for k, (det, i) in enumerate(zip(batch, order)):
            assert abs(det.router_score - scores[i]) < SCORE_TOL, case
            assert _same(det, through["first" if det.exit == 1 else "second"][i]), f"{case}: image {i}"
            assert det.threshold == (float(per_image[k]) if routes[k] == "auto" else None), case
            assert {"preprocess", "stage1", "nms", "total", f"exit{det.exit}"} <= set(det.timings_ms)
            h, w = images[i].shape[:2]
            assert (det.boxes >= 0).all() and (det.boxes[:, [0, 2]] <= w).all() and (det.boxes[:, [1, 3]] <= h).all()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_two_threads_calling_one_predictor_get_what_each_gets_alone(backend, bundled, request):
    """The engine's workers share one predictor: concurrent calls must not mix inputs or outputs."""
    import threading

    scale, _ = readable_calibration(bundled.calibration)
    model = bundled.model
    predictor = Predictor(_open_backend(backend, request), model.class_names, imgsz=IMGSZ, stride=model.stride,
                          score_scale=scale, workers=2)
    images = _images()
    jobs = [(i, route) for i in range(len(images)) for route in ("first", "second")] * 6
    alone = {(i, route): predictor.predict([images[i]], route=route)[0] for i, route in set(jobs)}
    together: dict[int, list] = {0: [], 1: []}

    def work(worker: int) -> None:
        for i, route in jobs[worker::2]:
            together[worker].append(((i, route), predictor.predict([images[i]], route=route)[0]))

    threads = [threading.Thread(target=work, args=(w,)) for w in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(len(results) for results in together.values()) == len(jobs)
    for key, det in together[0] + together[1]:
        assert det.exit == (1 if key[1] == "first" else 2)
        assert _same(det, alone[key]) and det.router_score == pytest.approx(alone[key].router_score, abs=1e-6), key
