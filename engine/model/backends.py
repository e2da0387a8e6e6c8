"""Inference backends behind one staged interface, so the predictor and runtime never care which runs.

A backend (PyTorch, ONNX Runtime, OpenVINO) runs three stages on float32 ``[N, 3, H, W]`` batches:
``stage1(x) -> (state, scores)``; ``exit1(state, index)`` and ``exit2(state, index)`` give the
exit outputs for the samples at ``index`` (all when None), and ``postprocess`` turns any run of
them into per-image ``[K, 6]`` detections (the model family's own step: NMS for YOLO's dense
predictions, a score filter for Faster R-CNN's final boxes). Stage 1's state holds whatever the
exits need, so backbone 1 never runs twice.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from engine.errors import UserError
from engine.model.backend_names import GRAPH_BACKENDS, available_graph_backends, check_backend_available
from engine.model.families import Cascade, LoadedModel

logger = logging.getLogger(__name__)


class StagedBackend(Protocol):
    name: str
    # The batch stage 1 reads from the predictor: "nchw_float" ([N, 3, H, W] float32 in [0, 1]) or
    # "nhwc_uint8" (letterboxed pixels, converted inside the graph); every backend also accepts the first.
    input_layout: str

    def stage1(self, x: np.ndarray) -> tuple[Any, np.ndarray]: ...

    def exit1(self, state: Any, index: np.ndarray | None = None) -> torch.Tensor | np.ndarray: ...

    def exit2(self, state: Any, index: np.ndarray | None = None) -> torch.Tensor | np.ndarray: ...

    # Per image, [K, 6] detections (x1, y1, x2, y2, score, class id): tensors from PyTorch, arrays
    # from the graph runtimes.
    def postprocess(self, outputs: Any, conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[torch.Tensor] | list[np.ndarray]: ...


class TorchBackend:
    """Eager PyTorch: fused weights and channels-last memory layout by default (faster on CPU)."""

    name = "torch"
    input_layout = "nchw_float"

    def __init__(self, model: Cascade, fuse: bool = True, channels_last: bool = True,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.postprocess = model.postprocess
        model = model.to(self.device).eval()
        if fuse:
            model.fuse()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    @torch.inference_mode()
    def stage1(self, x: np.ndarray | torch.Tensor) -> tuple[Any, np.ndarray]:
        batch = torch.as_tensor(x).to(self.device).contiguous(memory_format=self.memory_format)
        s1 = self.model.stage1(batch)
        return s1, s1.scores.float().cpu().numpy()

    @torch.inference_mode()
    def exit1(self, state: Any, index: np.ndarray | None = None) -> Any:
        return _to_host(self.model.exit1(_subset(state, index)))

    @torch.inference_mode()
    def exit2(self, state: Any, index: np.ndarray | None = None) -> Any:
        return _to_host(self.model.exit2(_subset(state, index)))


def _to_host(outputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """Float32 on the CPU: one batch tensor, or one tensor per image."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float().cpu()
    return [o.float().cpu() for o in outputs]


def _subset(state: Any, index: np.ndarray | None) -> Any:
    if index is None or len(index) == len(state.scores):
        return state
    return state.select(torch.as_tensor(index, dtype=torch.long, device=state.scores.device))


def make_backend(loaded: LoadedModel, name: str = "auto", threads: int | None = None,
                 weights_path: Path | None = None) -> StagedBackend:
    """The staged backend called ``name`` for ``loaded``'s model.

    Args:
        loaded: the detector and its spec; PyTorch fuses the detector in place, the graph runtimes
            export a fused copy.
        name: ``torch``, ``onnxruntime``, ``openvino``, or ``auto``: PyTorch when CUDA is available
            or the model does not export to ONNX; otherwise the faster of ONNX Runtime and
            OpenVINO for this model on this CPU (see :func:`choose_graph_backend`).
        threads: compute threads (graph runtimes: per session; PyTorch: its process-wide pool).
        weights_path: the file the weights came from; the graph runtimes cache their export beside it.

    Raises:
        UserError: an unknown or uninstalled backend, a thread count below 1, or a graph runtime
            for a model that does not export.
    """
    check_backend_available(name)
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    model = loaded.model
    cuda = torch.cuda.is_available()
    if name == "auto" and (cuda or not model.onnx_exportable):
        name = "torch"
    if name in GRAPH_BACKENDS and not model.onnx_exportable:
        raise UserError(f"the {model.family} family does not export to ONNX Runtime or OpenVINO; use --backend torch")
    if name == "auto":
        return choose_graph_backend(loaded, threads, weights_path)[0]
    logger.info("inference backend: %s", name)
    if name in GRAPH_BACKENDS:
        return open_graph_backend(name, loaded, threads, weights_path)
    if threads is not None:
        torch.set_num_threads(threads)  # PyTorch has one intra-op pool per process
    return TorchBackend(model, device="cuda" if cuda else "cpu")


#: Inference calls the engine runs at once on a CPU graph runtime, when not told (see default_workers).
CPU_GRAPH_WORKERS = 2


def default_workers(loaded: LoadedModel, name: str = "auto", cores: int | None = None) -> int:
    """How many frames the engine runs at once for this model and backend, when not told.

    On a CPU, ONNX Runtime and OpenVINO run faster as two single-threaded calls at once than as one
    call on two threads: on this project's 2-core machines ``run`` on the demo ran 1.46x faster at
    exit 1 and 1.61x at exit 2 (``--workers 1`` against 2), and 16 cameras 1.26x
    (``scripts/bench_monitor.py scale --workers 1,2``), because a small network does not keep two
    cores busy from inside one call and one frame's Python work overlaps the other's inference.
    PyTorch (not measured with more than one) and CUDA (batched instead) keep one.
    """
    from engine.model.onnx_backend import available_cores

    cores = available_cores() if cores is None else cores
    if torch.cuda.is_available() or name == "torch" or not loaded.model.onnx_exportable:
        return 1
    return max(1, min(CPU_GRAPH_WORKERS, cores))


def worker_threads(workers: int, total: int | None = None) -> int:
    """Inference threads for each of ``workers`` sharing ``total`` (None: :func:`default_threads`)."""
    from engine.model.onnx_backend import default_threads

    return max(1, (total or default_threads()) // workers)


def open_graph_backend(name: str, loaded: LoadedModel, threads: int | None = None,
                       weights_path: Path | None = None) -> StagedBackend:
    """ONNX Runtime or OpenVINO on the model's exported graphs (each runtime loads only when chosen)."""
    if name == "onnxruntime":
        from engine.model.onnx_backend import OnnxBackend

        return OnnxBackend.from_model(loaded, weights_path, threads)
    if name == "openvino":
        from engine.model.openvino_backend import OpenVinoBackend

        return OpenVinoBackend.from_model(loaded, weights_path, threads)
    raise ValueError(f"not a graph backend: {name!r}")


def choose_graph_backend(loaded: LoadedModel, threads: int | None = None, weights_path: Path | None = None,
                         runs: int = 7) -> tuple[StagedBackend, BackendChoice]:
    """The faster graph runtime for ``loaded``'s model on this CPU, and how it was chosen.

    The choice is measured once (both runtimes opened, each exit path timed in alternation at
    the model's input size) and stored beside the exported graphs, keyed by this CPU's model
    and instruction-set flags, the thread count and the runtimes' versions; later loads on the
    same machine read it and open only the winner.
    """
    names = available_graph_backends()
    if len(names) == 1:
        choice = BackendChoice(names[0], "only one installed", {})
        logger.info("inference backend: %s (auto: %s)", choice.name, choice.reason)
        return open_graph_backend(choice.name, loaded, threads, weights_path), choice
    record = _choice_record(loaded, threads, weights_path, names)
    if record is not None and record.is_file():
        stored = json.loads(record.read_text())
        choice = BackendChoice(stored["name"], "stored measurement", stored["path_ms"])
        backend = open_graph_backend(choice.name, loaded, threads, weights_path)
    else:
        opened = {name: open_graph_backend(name, loaded, threads, weights_path) for name in names}
        size = loaded.model.input_size
        path_ms = measure_paths(opened, np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32), runs)
        name = min(path_ms, key=lambda n: path_ms[n]["exit1"] + path_ms[n]["exit2"])
        choice, backend = BackendChoice(name, "measured", path_ms), opened[name]
        if record is not None:
            _write_atomic(record, json.dumps({"name": name, "path_ms": path_ms, "runs": runs}))
    logger.info("inference backend: %s (auto, %s: %s)", choice.name, choice.reason, choice.describe())
    return backend, choice


@dataclass(frozen=True)
class BackendChoice:
    """Which graph runtime ``auto`` picked, why, and the median path times (ms) it compared."""

    name: str
    reason: str
    path_ms: dict[str, dict[str, float]]

    def describe(self) -> str:
        return ", ".join(f"{n} exit1 {ms['exit1']:.2f} ms exit2 {ms['exit2']:.2f} ms" for n, ms in self.path_ms.items())


def measure_paths(backends: dict[str, StagedBackend], x: np.ndarray, runs: int) -> dict[str, dict[str, float]]:
    """Median ms of stage 1 + exit 1 and of stage 1 + exit 2 per backend, timed in alternation so
    that load on a shared machine hits every backend alike."""
    paths = {"exit1": lambda b: b.exit1(b.stage1(x)[0]), "exit2": lambda b: b.exit2(b.stage1(x)[0])}
    for backend in backends.values():  # warm-up: first-run allocations, shape compilation
        for path in paths.values():
            path(backend)
    times: dict[str, dict[str, list[float]]] = {n: {p: [] for p in paths} for n in backends}
    for _ in range(runs):
        for name, backend in backends.items():
            for path, run in paths.items():
                start = time.perf_counter()
                run(backend)
                times[name][path].append((time.perf_counter() - start) * 1000)
    return {n: {p: round(float(np.median(t)), 3) for p, t in by_path.items()} for n, by_path in times.items()}


def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of this CPU (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _cpuinfo_field(field: str) -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == field:
            return value.strip()
    return ""


def _choice_record(loaded: LoadedModel, threads: int | None, weights_path: Path | None,
                   names: tuple[str, ...]) -> Path | None:
    """Where the measured choice for this model, machine and runtime versions is kept (None:
    random weights, nothing to key it on)."""
    if weights_path is None:
        return None
    from engine.model.onnx_backend import default_threads
    from engine.model.onnx_export import export_staged, scratch_dir

    versions = {n: importlib.metadata.version(n) for n in names}
    machine = {"cpu": cpu_model(), "flags": sorted(cpu_flags()), "threads": threads or default_threads(),
               "size": loaded.model.input_size, **versions}
    key = hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:16]
    return scratch_dir(export_staged(loaded, Path(weights_path)), "backend-choice") / f"{key}.json"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def evaluation_model(loaded: LoadedModel, name: str = "auto", threads: int | None = None,
                     weights_path: Path | None = None) -> Any:
    """What validation and calibration run: ``loaded``'s model itself for ``torch`` (unfused, as
    trained), else the chosen backend behind the model's inference surface (:class:`BackendCascade`)."""
    backend = make_backend(loaded, name, threads, weights_path)
    return loaded.model if backend.name == "torch" else BackendCascade(backend)


@dataclass
class _BackendStage1:
    state: Any
    scores: torch.Tensor


class BackendCascade:
    """A staged backend seen through a cascade's inference surface (``stage1``, ``exit1``,
    ``exit2``, ``postprocess``, ``router_score``), so evaluation and calibration code written
    for the model runs on ONNX Runtime or OpenVINO unchanged. Module housekeeping (``eval``,
    ``fuse``, ``to``, deep copies) leaves it as it is: the backend already runs fused, read-only
    graphs."""

    def __init__(self, backend: StagedBackend) -> None:
        self.backend = backend
        self.postprocess = backend.postprocess

    def stage1(self, images: torch.Tensor | np.ndarray) -> _BackendStage1:
        batch = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
        state, scores = self.backend.stage1(np.ascontiguousarray(batch, dtype=np.float32))
        return _BackendStage1(state, torch.from_numpy(np.asarray(scores)))

    def exit1(self, s1: _BackendStage1) -> Any:
        return self.backend.exit1(s1.state)

    def exit2(self, s1: _BackendStage1) -> Any:
        return self.backend.exit2(s1.state)

    def router_score(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.stage1(images).scores

    def eval(self) -> BackendCascade:
        return self

    def fuse(self) -> BackendCascade:
        return self

    def to(self, *args: Any, **kwargs: Any) -> BackendCascade:
        return self

    def __deepcopy__(self, memo: dict) -> BackendCascade:
        return self
