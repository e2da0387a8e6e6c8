"""The OpenVINO backend: PyTorch's numbers in f32, unchanged mAP in its own precision, the user
cache for read-only weights, and ``auto`` choosing the faster graph runtime."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from engine.model import backends as backends_module
from engine.model import onnx_export
from engine.model.backends import TorchBackend, choose_graph_backend
from engine.model.checkpoint import load_model, save_model
from engine.model.onnx_export import export_staged
from engine.model.predictor import Predictor
from engine.train.evaluate import coco_map
from tests.engine.model.helpers import tiny_loaded
from tests.engine.model.test_onnx import HEIGHT, SCORE_TOL, WIDTH, assert_predictions_close
from tests.engine.model.test_shipped_models import ASSETS, demo_frames

ov_backend = pytest.importorskip("engine.model.openvino_backend")
# The held-out mAP may move this much (mAP@0.5:0.95, 0-1 scale) when OpenVINO computes in bf16;
# f32 must match PyTorch within the parity tolerances of test_onnx.
MAP_TOL = 0.02


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("openvino") / "tiny.safetensors", tiny_loaded(seed=0))


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    rng = np.random.default_rng(1)
    levels = np.array([0.05, 0.35, 0.65, 0.95], np.float32).reshape(4, 1, 1, 1)
    return np.clip(rng.random((4, 3, HEIGHT, WIDTH), np.float32) * 0.3 + levels, 0, 1)


def test_f32_matches_torch_whole_and_mixed_batches(weights, batch):
    reference = TorchBackend(load_model(weights).model)
    backend = ov_backend.OpenVinoBackend.from_model(load_model(weights), weights, threads=1, precision="f32")
    assert backend.name == "openvino" and backend.precision == "f32"
    assert backend.graphs.directory.parent == weights.with_name(weights.name + ".onnx-cache")
    state_t, scores_t = reference.stage1(batch)
    state_o, scores_o = backend.stage1(batch)
    assert np.abs(scores_o - scores_t).max() < SCORE_TOL
    for exit_id in (1, 2):
        run_t, run_o = getattr(reference, f"exit{exit_id}"), getattr(backend, f"exit{exit_id}")
        assert_predictions_close(run_o(state_o), run_t(state_t))
        for index in (np.array([0, 2]), np.array([3])):
            assert_predictions_close(run_o(state_o, index), run_t(state_t, index))
    assert backend.compiled_precision() == "f32"
    assert any((backend.graphs.directory / "openvino").iterdir()), "compiled graphs cached beside the export"


def test_uint8_frames_run_like_their_float_batch(weights, batch):
    # The predictor hands OpenVINO letterboxed pixels; the graph's own conversion must equal ours.
    backend = ov_backend.OpenVinoBackend.from_model(load_model(weights), weights, threads=1, precision="f32")
    assert backend.input_layout == "nhwc_uint8"
    pixels = np.ascontiguousarray((batch * 255).round().astype(np.uint8).transpose(0, 2, 3, 1))
    state_f, scores_f = backend.stage1(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)) / np.float32(255))
    state_u, scores_u = backend.stage1(pixels)
    assert np.abs(scores_u - scores_f).max() < SCORE_TOL
    for exit_id in (1, 2):
        run = getattr(backend, f"exit{exit_id}")
        assert_predictions_close(run(state_u), run(state_f))
        assert_predictions_close(run(state_u, np.array([1, 3])), run(state_f, np.array([1, 3])))
    with pytest.raises(ValueError, match="uint8"):
        backend.stage1(pixels[..., :2])
    read_only = pixels.copy()
    read_only.flags.writeable = False  # frames may come read-only (views of decoder buffers)
    assert np.array_equal(backend.stage1(read_only)[1], scores_u)


def test_a_held_stage1_state_outlives_the_next_stage1_run(weights, batch):
    # The exits read stage 1's feature maps in its request's buffers; a later stage-1 run on the
    # same shape overwrites them, so it must first copy out those of any state still held.
    backend = ov_backend.OpenVinoBackend.from_model(load_model(weights), weights, threads=1, precision="bf16")
    first, second = batch[:2], batch[2:]
    fresh = [backend.exit2(backend.stage1(images)[0]) for images in (first, second)]
    held, _ = backend.stage1(first)
    later, _ = backend.stage1(second)
    assert np.array_equal(backend.exit2(held), fresh[0]) and np.array_equal(backend.exit2(later), fresh[1])
    assert_predictions_close(backend.exit1(held, np.array([1])), backend.exit1(backend.stage1(first)[0])[1:])
    assert np.array_equal(backend.exit2(later), fresh[1])


def test_uint8_frames_reach_the_first_layer_without_a_transpose(weights, batch):
    # The conversion runs in the frames' own channels-last layout; a transpose of the pixels
    # (what OpenVINO's preprocessing compiled to) plus a reorder back cost 7 % of exit 2's time.
    backend = ov_backend.OpenVinoBackend.from_model(load_model(weights), weights, threads=1)
    pixels = np.ascontiguousarray((batch * 255).round().astype(np.uint8).transpose(0, 2, 3, 1))
    state, _ = backend.stage1(pixels)
    backend.exit2(state)
    for graph in ("stage1", "exit2"):
        compiled = next(iter(backend._graphs[graph]._compiled.values()))
        kinds = {op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()}
        assert "Convolution" in kinds and "Transpose" not in kinds


def test_bf16_passes_feature_maps_as_bf16_bits(weights, batch):
    # In bf16 the feature maps cross between the graphs as raw bfloat16 bits: read as anything
    # else (float16, as OpenVINO types them) the exits would see wrong numbers.
    reference = TorchBackend(load_model(weights).model)
    backend = ov_backend.OpenVinoBackend.from_model(load_model(weights), weights, threads=1, precision="bf16")
    state_t, scores_t = reference.stage1(batch)
    state_o, scores_o = backend.stage1(batch)
    features = [name for name in state_o.values if ov_backend.is_passed_feature(name)]
    assert features and all(state_o.values[name].dtype == ov_backend.RAW_BF16 for name in features)
    assert np.abs(scores_o - np.asarray(scores_t)).max() < 0.01
    for exit_id in (1, 2):
        run_t, run_o = getattr(reference, f"exit{exit_id}"), getattr(backend, f"exit{exit_id}")
        for index in (None, np.array([1, 3])):
            got, want = run_o(state_o, index), np.asarray(run_t(state_t, index))
            assert got.shape == want.shape
            assert np.abs(got[..., 4:] - want[..., 4:]).max() < 0.01  # objectness and class probabilities
            assert (np.abs(got[..., :4] - want[..., :4]) / (np.abs(want[..., :4]) + 1)).max() < 0.02


def test_its_own_precision_keeps_the_shipped_models_map():
    weights = ASSETS / "dy-yolov7-tiny.safetensors"
    if not weights.exists() or not (ASSETS / "demo.json").exists():
        pytest.skip("no bundled model or demo clip")
    model = load_model(weights).model
    images, truth = demo_frames()
    backends = {"torch": TorchBackend(load_model(weights).model),
                "openvino": ov_backend.OpenVinoBackend.from_model(load_model(weights), weights)}
    maps = {}
    for name, backend in backends.items():
        predictor = Predictor(backend, model.class_names, model.input_size, conf_threshold=0.001, stride=model.stride)
        for route in ("first", "second"):
            found = [np.column_stack([d.boxes, d.scores, d.class_ids]) for d in predictor.predict(images, route=route)]
            maps[name, route] = coco_map(found, truth, len(model.class_names))["map"]
    for route in ("first", "second"):
        assert abs(maps["openvino", route] - maps["torch", route]) < MAP_TOL, maps


def test_read_only_weights_folder_exports_to_the_user_cache(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    other = save_model(weights.with_name("other.safetensors"), tiny_loaded(seed=3))
    beside = other.with_name(other.name + ".onnx-cache")
    real = onnx_export.is_writable_dir
    # Root ignores file modes, so the read-only folder is simulated.
    monkeypatch.setattr(onnx_export, "is_writable_dir",
                        lambda folder: beside not in (folder, *folder.parents) and real(folder))
    graphs = export_staged(load_model(other), other)
    assert graphs.directory.is_relative_to(tmp_path / "cache" / "dynastream")
    assert not graphs.reused and not beside.exists()
    assert export_staged(load_model(other), other).reused
    backend = ov_backend.OpenVinoBackend(graphs, threads=1)
    assert backend.stage1(np.zeros((1, 3, 64, 64), np.float32))[1].shape == (1,)


class _Timed:
    """A stand-in graph runtime whose every stage takes ``ms``."""

    def __init__(self, name: str, ms: float) -> None:
        self.name, self.ms = name, ms

    def stage1(self, x):
        time.sleep(self.ms / 1000)
        return None, np.zeros(len(x), np.float32)

    def exit1(self, state, index=None):
        time.sleep(self.ms / 1000)

    exit2 = exit1


def test_auto_measures_the_faster_runtime_once_then_reads_it_back(weights, monkeypatch):
    speeds = {"onnxruntime": 4.0, "openvino": 1.0}
    opened = []

    def fake_open(name, model, threads=None, weights_path=None):
        opened.append(name)
        return _Timed(name, speeds[name])

    monkeypatch.setattr(backends_module, "open_graph_backend", fake_open)
    monkeypatch.setattr(backends_module, "available_graph_backends", lambda: ("onnxruntime", "openvino"))
    model = load_model(weights)
    backend, choice = choose_graph_backend(model, threads=1, weights_path=weights, runs=3)
    assert backend.name == choice.name == "openvino" and choice.reason == "measured"
    assert sorted(opened) == ["onnxruntime", "openvino"]
    assert choice.path_ms["onnxruntime"]["exit1"] > choice.path_ms["openvino"]["exit1"]
    opened.clear()
    speeds["openvino"] = 10.0  # a stored measurement is not repeated
    backend, again = choose_graph_backend(model, threads=1, weights_path=weights, runs=3)
    assert backend.name == "openvino" and again.reason == "stored measurement" and opened == ["openvino"]
    opened.clear()
    _, other_threads = choose_graph_backend(model, threads=2, weights_path=weights, runs=3)
    assert other_threads.name == "onnxruntime" and other_threads.reason == "measured"


def test_auto_with_one_runtime_installed_takes_it(monkeypatch):
    monkeypatch.setattr(backends_module, "available_graph_backends", lambda: ("onnxruntime",))
    monkeypatch.setattr(backends_module, "open_graph_backend", lambda name, *a, **k: SimpleNamespace(name=name))
    backend, choice = choose_graph_backend(SimpleNamespace(input_size=64), weights_path=None)
    assert backend.name == "onnxruntime" and choice.reason == "only one installed"
