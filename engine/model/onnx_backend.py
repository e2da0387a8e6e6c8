"""ONNX Runtime behind the staged backend interface: the fast CPU path.

Stage 1's outputs stay in ONNX Runtime's own buffers (``OrtValue``) and are bound as the exits'
inputs by name through IO binding, so features are never copied when a whole batch leaves at one
exit; only a mixed batch gathers the rows of its subset. Exit outputs become torch tensors that
share ONNX Runtime's buffer.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from engine.model.families import LoadedModel
from engine.model.onnx_export import EXIT_OUTPUT, GRAPHS, StagedGraphs, export_staged
from engine.model.postprocess import nms_arrays

logger = logging.getLogger(__name__)


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads(cores: int | None = None) -> int:
    """Intra-op threads: all cores up to 2, else one core left for capture and encoding."""
    cores = available_cores() if cores is None else cores
    return cores - 1 if cores > 2 else max(cores, 1)


def session_options(threads: int, allow_spinning: bool = False) -> ort.SessionOptions:
    """Options tuned for the latency of one request at a time."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # The graphs are chains of convolutions: parallelism comes from inside each operator.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning workers answer a little faster on idle cores, but when other threads need the
    # cores (capture, encoding, other processes) each run waits for descheduled spinners and
    # can take several times longer.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


@dataclass
class OnnxStage1State:
    """Stage-1 results by graph tensor name (``images``, ``scores``, ``feat_*``...), in ORT buffers."""

    values: dict[str, ort.OrtValue]
    batch: int


class OnnxBackend:
    """Runs the three exported graphs with ONNX Runtime on the CPU.

    Args:
        graphs: the exported graph files (see :func:`~engine.model.onnx_export.export_staged`).
        threads: intra-op threads per session (default: :func:`default_threads`).
        allow_spinning: let idle worker threads spin between runs (off by default: it only pays
            when the cores are otherwise idle).
        save_optimized: keep ONNX Runtime's optimised graphs beside the exported ones and load
            those next time (they are specific to this CPU's instruction set).
    """

    name = "onnxruntime"
    input_layout = "nchw_float"

    def __init__(self, graphs: StagedGraphs, threads: int | None = None, *, allow_spinning: bool = False,
                 save_optimized: bool = False) -> None:
        self.threads = threads if threads is not None else default_threads()
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        self.graphs = graphs
        self.sessions = {g: _open(graphs.files[g], self.threads, allow_spinning, save_optimized) for g in GRAPHS}
        self._inputs = {g: [i.name for i in s.get_inputs()] for g, s in self.sessions.items()}
        self._outputs = {g: [o.name for o in s.get_outputs()] for g, s in self.sessions.items()}
        logger.debug("ONNX Runtime %s, %d intra-op threads, graphs in %s", ort.__version__, self.threads,
                     graphs.directory)

    @classmethod
    def from_model(cls, loaded: LoadedModel, weights_path: Path | None = None, threads: int | None = None,
                   **options: bool) -> OnnxBackend:
        """Export ``loaded``'s model (or reuse the export cached beside ``weights_path``) and open it.

        Without a weights file the graphs go to a temporary folder that is removed once the
        sessions have loaded them.
        """
        if weights_path is not None:
            return cls(export_staged(loaded, Path(weights_path)), threads, **options)
        with tempfile.TemporaryDirectory(prefix="dynastream-onnx-") as tmp:
            options["save_optimized"] = False  # nothing to keep: the folder goes away
            return cls(export_staged(loaded, cache_root=Path(tmp)), threads, **options)

    def stage1(self, x: np.ndarray | torch.Tensor) -> tuple[OnnxStage1State, np.ndarray]:
        """``x``: ``[N, 3, H, W]`` float32 RGB in [0, 1]. Returns the state and scores ``[N]``."""
        images = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a [N, 3, H, W] batch, got shape {images.shape}")
        feeds = {"images": ort.OrtValue.ortvalue_from_numpy(images)}  # wraps the array, no copy
        values = {**feeds, **self._run("stage1", feeds)}
        return OnnxStage1State(values, len(images)), values["scores"].numpy()

    def exit1(self, state: OnnxStage1State, index: np.ndarray | None = None) -> np.ndarray:
        """Decoded predictions ``[n, A, 5 + C]`` of detector 1 for the samples at ``index``."""
        return self._exit("exit1", state, index)

    def exit2(self, state: OnnxStage1State, index: np.ndarray | None = None) -> np.ndarray:
        """Decoded predictions ``[n, A, 5 + C]`` of detector 2 for the samples at ``index``."""
        return self._exit("exit2", state, index)

    @staticmethod
    def postprocess(outputs: np.ndarray, conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[np.ndarray]:
        """The exported graphs give YOLO-family dense predictions: NMS makes them detections."""
        return nms_arrays(outputs, conf_threshold, iou_threshold, max_detections)

    def _exit(self, graph: str, state: OnnxStage1State, index: np.ndarray | None) -> np.ndarray:
        feeds = state.values
        if not _is_whole_batch(index, state.batch):
            rows = np.asarray(index, dtype=np.int64)
            # Fancy indexing gathers just these rows into a new contiguous array.
            feeds = {name: ort.OrtValue.ortvalue_from_numpy(state.values[name].numpy()[rows])
                     for name in self._inputs[graph]}
        # numpy() views the OrtValue's buffer and keeps it alive.
        return self._run(graph, feeds)[EXIT_OUTPUT].numpy()

    def _run(self, graph: str, feeds: dict[str, ort.OrtValue]) -> dict[str, ort.OrtValue]:
        session = self.sessions[graph]
        binding = session.io_binding()
        for name in self._inputs[graph]:
            binding.bind_ortvalue_input(name, feeds[name])
        for name in self._outputs[graph]:
            binding.bind_output(name, "cpu")  # ORT allocates outputs of the run's own shape
        session.run_with_iobinding(binding)
        return dict(zip(self._outputs[graph], binding.get_outputs()))


def _is_whole_batch(index: np.ndarray | None, batch: int) -> bool:
    return index is None or (len(index) == batch and bool(np.array_equal(index, np.arange(batch))))


def _open(path: Path, threads: int, allow_spinning: bool, save_optimized: bool) -> ort.InferenceSession:
    options = session_options(threads, allow_spinning)
    optimized = path.with_name(f"{path.stem}.ort-{ort.__version__}.optimized.onnx")
    if save_optimized and optimized.is_file():
        path = optimized
    elif save_optimized:
        # ORT writes the file while building the session; a temporary name keeps readers safe.
        tmp = optimized.with_name(f".{optimized.name}.{os.getpid()}.tmp")
        options.optimized_model_filepath = str(tmp)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if save_optimized and options.optimized_model_filepath:
        os.replace(options.optimized_model_filepath, optimized)
    return session
