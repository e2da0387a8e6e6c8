"""ONNX export and the ONNX Runtime backend: same numbers as PyTorch, per-sample routing, cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from engine.errors import UserError
from engine.model import backends as backends_module
from engine.model.backends import TorchBackend, make_backend
from engine.model.checkpoint import load_model, save_model
from engine.model.onnx_backend import OnnxBackend, default_threads
from engine.model.onnx_export import export_staged
from engine.model.predictor import Predictor
from tests.engine.model.helpers import cell_major, tiny_loaded, tiny_model

# Tolerances of the parity fixtures (shared/reference/parity/README.md).
BOX_TOL = 0.01
PROB_TOL = 1e-4
SCORE_TOL = 1e-5
# Not the size traced during export (64 x 96): the graphs must follow the input size.
HEIGHT, WIDTH = 96, 128


def assert_predictions_close(ours: torch.Tensor, expected: torch.Tensor | np.ndarray) -> None:
    ours, expected = np.asarray(ours), np.asarray(expected)
    assert ours.shape == expected.shape
    assert np.abs(ours[..., :4] - expected[..., :4]).max() < BOX_TOL, "boxes"
    assert np.abs(ours[..., 4:] - expected[..., 4:]).max() < PROB_TOL, "probabilities"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("onnx") / "tiny.safetensors", tiny_loaded(seed=0))


@pytest.fixture(scope="module")
def pair(weights) -> tuple[TorchBackend, OnnxBackend]:
    """Both backends on the same weights, both fused."""
    return TorchBackend(load_model(weights).model), OnnxBackend.from_model(load_model(weights), weights, threads=1)


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    """Four images of distinct brightness, so the router scores them apart."""
    rng = np.random.default_rng(1)
    levels = np.array([0.05, 0.35, 0.65, 0.95], np.float32).reshape(4, 1, 1, 1)
    return np.clip(rng.random((4, 3, HEIGHT, WIDTH), np.float32) * 0.3 + levels, 0, 1)


def test_exports_three_dynamic_graphs(weights, pair):
    graphs = pair[1].graphs
    assert graphs.directory.parent == weights.with_name(weights.name + ".onnx-cache")
    assert set(graphs.files) == {"stage1", "exit1", "exit2"} and all(s > 0 for s in graphs.sizes().values())
    stage1 = pair[1].sessions["stage1"]
    assert [o.name for o in stage1.get_outputs()] == ["scores", "feat_s4", "feat_s8", "feat_s16", "feat_s32"]
    assert [i.name for i in pair[1].sessions["exit1"].get_inputs()] == ["feat_s8", "feat_s16", "feat_s32"]
    assert pair[1].sessions["exit2"].get_inputs()[0].name == "images"
    assert stage1.get_inputs()[0].shape == ["batch", 3, "images_height", "images_width"]


def test_batch_of_one_matches_torch(pair, batch):
    (torch_backend, onnx_backend), x = pair, batch[:1]
    state_t, scores_t = torch_backend.stage1(x)
    state_o, scores_o = onnx_backend.stage1(x)
    assert np.abs(scores_o - scores_t).max() < SCORE_TOL
    assert_predictions_close(onnx_backend.exit1(state_o), torch_backend.exit1(state_t))
    assert_predictions_close(onnx_backend.exit2(state_o), torch_backend.exit2(state_t))


def test_mixed_batch_subsets_match_torch(pair, batch):
    torch_backend, onnx_backend = pair
    state_t, scores_t = torch_backend.stage1(batch)
    state_o, scores_o = onnx_backend.stage1(batch)
    assert np.abs(scores_o - scores_t).max() < SCORE_TOL
    whole = {1: onnx_backend.exit1(state_o), 2: onnx_backend.exit2(state_o)}
    for index in (np.array([0, 2]), np.array([3]), np.array([1, 2, 3])):
        for exit_id, whole_out in whole.items():
            ours = getattr(onnx_backend, f"exit{exit_id}")(state_o, index)
            assert_predictions_close(ours, getattr(torch_backend, f"exit{exit_id}")(state_t, index))
            assert_predictions_close(ours, whole_out[index])


def _images(batch: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray((b.transpose(1, 2, 0) * 255).round().astype(np.uint8)) for b in batch]


def _assert_same_detections(ours, expected) -> None:
    assert ours.exit == expected.exit
    assert abs(ours.router_score - expected.router_score) < SCORE_TOL
    assert len(ours) == len(expected)
    if not len(ours):
        return
    # Match boxes by position: near-equal scores may leave NMS in a different order.
    gap = np.abs(ours.boxes[:, None] - expected.boxes[None]).max(-1)  # [n_ours, n_expected] px
    gap[ours.class_ids[:, None] != expected.class_ids[None]] = np.inf
    match = gap.argmin(1)
    assert (gap.min(1) < BOX_TOL).all() and len(set(match.tolist())) == len(ours)
    np.testing.assert_allclose(ours.scores, expected.scores[match], atol=PROB_TOL)


def test_predictor_routes_mixed_batch_alike(pair, batch):
    images = _images(batch)
    predictors = [Predictor(b, [f"c{i}" for i in range(3)], imgsz=WIDTH, conf_threshold=0.3) for b in pair]
    scores = np.sort([d.router_score for d in predictors[0].predict(images, threshold=0.5)])
    assert len(set(scores.round(6))) == 4, "fixture needs distinct router scores"
    threshold = float(scores[1] + scores[2]) / 2
    torch_dets, onnx_dets = (p.predict(images, threshold=threshold) for p in predictors)
    assert sorted(d.exit for d in onnx_dets) == [1, 1, 2, 2]
    assert sum(len(d) for d in torch_dets) > 0, "fixture needs detections to compare"
    for ours, expected in zip(onnx_dets, torch_dets):
        _assert_same_detections(ours, expected)
    for image, expected in zip(images, torch_dets):
        _assert_same_detections(predictors[1].predict([image], threshold=threshold)[0], expected)


def test_cache_is_reused_and_keyed_by_weights(weights, pair, tmp_path, monkeypatch):
    first = pair[1].graphs
    mtimes = {name: path.stat().st_mtime_ns for name, path in first.files.items()}
    calls = []
    real_export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: calls.append(1) or real_export(*a, **k))
    again = export_staged(load_model(weights), weights)
    assert again.reused and again.directory == first.directory and not calls
    assert {name: path.stat().st_mtime_ns for name, path in again.files.items()} == mtimes
    other = save_model(tmp_path / "other.safetensors", tiny_loaded(seed=1))
    fresh = export_staged(load_model(other), other)
    assert not fresh.reused and fresh.key != first.key and len(calls) == 3
    assert fresh.directory == other.with_name("other.safetensors.onnx-cache") / fresh.key
    assert not [p for p in fresh.directory.parent.iterdir() if p.name.startswith(".")], "temporary folder left"
    copy = tmp_path / "copy.safetensors"
    shutil.copyfile(weights, copy)
    assert export_staged(load_model(copy), copy).key == first.key  # content, not path


def test_without_weights_file_exports_to_a_temporary_folder(batch):
    loaded = tiny_loaded(seed=2)
    model = loaded.model
    backend = OnnxBackend.from_model(loaded, threads=1)
    assert not backend.graphs.directory.exists()  # removed once the sessions loaded the graphs
    reference = TorchBackend(model)
    state_t, scores_t = reference.stage1(batch[:2])
    state_o, scores_o = backend.stage1(batch[:2])
    assert np.abs(scores_o - scores_t).max() < SCORE_TOL
    assert_predictions_close(backend.exit2(state_o), reference.exit2(state_t))


def test_optimized_graphs_are_saved_and_reused(pair, batch):
    graphs = pair[1].graphs
    first = OnnxBackend(graphs, threads=1, save_optimized=True)
    saved = sorted(graphs.directory.glob("*.optimized.onnx"))
    assert len(saved) == 3
    mtimes = [p.stat().st_mtime_ns for p in saved]
    second = OnnxBackend(graphs, threads=1, save_optimized=True)
    assert [p.stat().st_mtime_ns for p in saved] == mtimes
    state, _ = second.stage1(batch[:1])
    expected, _ = pair[1].stage1(batch[:1])
    assert_predictions_close(second.exit2(state), pair[1].exit2(expected))
    assert first.threads == second.threads == 1


def test_reference_fixture_parity(reference_dir, tmp_path):
    parity = reference_dir / "parity"
    weights = parity / "dy-yolov7-step2-w0.25.pt"
    graphs = export_staged(load_model(weights), weights, cache_root=tmp_path)  # never write beside fixtures
    backend = OnnxBackend(graphs, threads=1)
    io = np.load(parity / "dy-yolov7-step2-w0.25-io.npz")
    state, scores = backend.stage1(io["input"])
    assert abs(float(scores[0]) - float(io["score"].reshape(-1)[0])) < SCORE_TOL
    head, size = load_model(weights).model.first.head, io["input"].shape[2:]
    assert_predictions_close(backend.exit1(state), cell_major(io["easy"], size, head))
    assert_predictions_close(backend.exit2(state), cell_major(io["hard"], size, head))


class _FakeBackend:
    def __init__(self, model, device="cpu", **_) -> None:
        self.device = device


def test_factory_picks_by_name_and_device(monkeypatch):
    from types import SimpleNamespace

    exportable = SimpleNamespace(model=SimpleNamespace(family="dy-yolov7", onnx_exportable=True))
    monkeypatch.setattr(backends_module, "TorchBackend", _FakeBackend)
    monkeypatch.setattr(OnnxBackend, "from_model", classmethod(lambda cls, model, path, threads: ("ort", threads)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(backends_module, "available_graph_backends", lambda: ("onnxruntime",))
    assert make_backend(exportable, "auto", threads=1) == ("ort", 1)
    assert make_backend(exportable, "torch").device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert make_backend(exportable, "auto").device == "cuda"
    assert make_backend(exportable, "onnxruntime") == ("ort", None)
    with pytest.raises(UserError, match="unknown backend 'tensorrt'"):
        make_backend(exportable, "tensorrt")
    with pytest.raises(UserError, match="threads"):
        make_backend(exportable, "torch", threads=0)


@pytest.mark.parametrize("cores, threads", [(1, 1), (2, 2), (4, 3), (16, 15)])
def test_default_threads_leave_a_core_on_bigger_machines(cores, threads):
    assert default_threads(cores) == threads


@pytest.mark.parametrize("backend, cores, cuda, workers", [
    ("auto", 2, False, 2), ("onnxruntime", 16, False, 2), ("openvino", 1, False, 1), ("torch", 8, False, 1),
    ("auto", 8, True, 1),
])
def test_engine_workers_default_to_two_on_cpu_graph_runtimes(backend, cores, cuda, workers, monkeypatch):
    from types import SimpleNamespace

    from engine.model.backends import default_workers

    monkeypatch.setattr("torch.cuda.is_available", lambda: cuda)
    exportable = SimpleNamespace(model=SimpleNamespace(onnx_exportable=True))
    assert default_workers(exportable, backend, cores=cores) == workers
    assert default_workers(SimpleNamespace(model=SimpleNamespace(onnx_exportable=False)), backend, cores=cores) == 1


def test_composite_link_exports_as_a_chain_of_adds_with_constant_resizes(pair):
    import onnx

    graph = onnx.load(pair[1].graphs.files["exit2"]).graph
    ops = [node.op_type for node in graph.node]
    assert "ReduceSum" not in ops, "the link's stack-and-sum glue is gone"
    # Every link resize reads constant scales (no shape arithmetic): only the neck's own
    # upsampling may compute a size.
    sized = [node for node in graph.node if node.op_type == "Resize" and len(node.input) == 4 and node.input[3]]
    assert len(sized) <= 2


@pytest.mark.parametrize("size", [(64, 96), (128, 64)])
def test_export_link_sums_like_the_composite_link(size):
    from engine.model.composite import CompositeLink, ExportLink

    model = tiny_model(seed=4)
    with torch.no_grad():
        pieces = model.link.project(model.stage1(torch.rand(2, 3, *size)).features)
        for stage in model.link.stages:
            x = torch.rand_like(pieces[stage][0])  # the first piece comes from this stage: x's shape
            lean, eager = ExportLink.fuse_into(x, pieces[stage]), CompositeLink.fuse_into(x, pieces[stage])
            torch.testing.assert_close(lean, eager)


@pytest.mark.parametrize("size", [(64, 96), (128, 64)])
def test_export_link_projects_like_the_composite_link(size):
    from engine.model.composite import ExportLink

    model = tiny_model(seed=5)
    with torch.no_grad():
        features = model.stage1(torch.rand(2, 3, *size)).features
        eager, lean = model.link.project(features), ExportLink(model.link).project(features)
    assert eager.keys() == lean.keys()
    for stage in eager:
        for a, b in zip(eager[stage], lean[stage], strict=True):
            torch.testing.assert_close(b, a)


@pytest.mark.parametrize("size", [(64, 96), (96, 64)])
def test_export_head_decodes_like_the_head(size):
    from engine.model.head import ExportHead

    model = tiny_model(seed=6).fuse()
    with torch.no_grad():
        s1 = model.stage1(torch.rand(2, 3, *size))
        neck = model.first.neck(s1.features)
        head = model.first.head
        eager = head.decode(head(neck))
        lean = ExportHead(head)
        torch.testing.assert_close(lean.decode(lean(neck)), eager, rtol=1e-5, atol=1e-3)
