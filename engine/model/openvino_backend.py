"""OpenVINO behind the staged backend interface: the same three exported ONNX graphs as ONNX Runtime.

OpenVINO compiles each graph for the CPU it runs on and, unless told otherwise, picks the
inference precision itself: bfloat16 where the CPU computes it natively (AVX-512 BF16, AMX),
float32 elsewhere. Each graph is compiled for the static input shapes it meets (a stream meets
one), which OpenVINO's CPU plugin runs faster than the dynamic graph; compiled blobs are cached
on disk beside the exported graphs, so a second start compiles nothing.

The predictor hands OpenVINO its frames as letterboxed ``uint8`` ``[N, H, W, 3]`` batches (see
:attr:`OpenVinoBackend.input_layout`): the graph, given a ``uint8`` input ahead of its first layer
(:func:`_read_uint8_images`), converts them to the float ``[N, 3, H, W]`` the graphs read, which
saves the predictor a split and a scaled conversion per frame (0.2-0.3 ms of its 0.55-0.65 ms
letterbox on a 640x360 frame). Float ``[N, 3, H, W]`` batches (evaluation, calibration) run as
before.

The feature maps stage 1 hands the exits travel channels-last (``[N, H, W, C]``): OpenVINO's CPU
plugin computes convolutions channels-last, so a planar ``[N, C, H, W]`` interface costs a
transposing copy at the end of stage 1 and another at the start of each exit. Declared
channels-last at both ends, only the float/bfloat16 conversion remains (on a 2-core Xeon with
AMX: stage 1 and each exit 4-7 % faster, interleaved runs).

Where the graphs compute in bfloat16 the feature maps also travel in bfloat16 (NumPy has no such
type: they are held as ``uint16`` arrays of raw bits, never computed on). Float32 ports forced
each convolution producing a feature map to write float32 and every reader inside or after
stage 1 (the next block, the router's pooling, the exits' first layers) to convert it back: a
reorder per reader, 10-12 % of stage 1's kernel time and 3-5 % of each exit's. The values are
the same either way: they are rounded to bfloat16 once, where they were before in each reader.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as opset
import torch
from openvino import _pyopenvino
from openvino.preprocess import PrePostProcessor

from engine.model.families import LoadedModel
from engine.model.onnx_backend import default_threads
from engine.model.onnx_export import EXIT_OUTPUT, FEATURE_PREFIX, GRAPHS, StagedGraphs, export_staged, scratch_dir
from engine.model.postprocess import nms_arrays

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "f32", "bf16")
# Compiled shapes kept per graph: a stream uses one; mixed batches add one per subset size.
MAX_SHAPES = 8


class OpenVinoStage1State:
    """Stage-1 results by graph tensor name (``images``, ``scores``, ``feat_*``...); the feature
    maps channels-last (see the module's notes).

    The feature maps stay in the stage-1 infer request's own buffers, where the exits read them
    in place (copying them out cost 0.05 ms a frame, a fifth of it the map only exit 2 reads).
    The same thread's next stage-1 run on the same shape would overwrite them, so that run first
    copies out those of any state still held, which then reads as before. A state belongs to the
    thread that made it (the predictor runs stage 1 and its exits in one call).
    """

    def __init__(self, images: np.ndarray, outputs: _SharedOutputs, batch: int) -> None:
        self.images = images
        self.batch = batch
        self._outputs = outputs

    @property
    def values(self) -> dict[str, np.ndarray]:
        """Every tensor as an array of its own (the feature maps copied out once)."""
        return {"images": self.images, **self._outputs.detach()}

    def feeds(self, names: Sequence[str]) -> tuple[dict[str, ov.Tensor | np.ndarray], tuple]:
        """Tensors ``names`` to run a graph on, and their ``(shape, dtype)`` key (see
        :meth:`_StaticGraph.run_shared`)."""
        feeds, key = {}, []
        for name in names:
            if name == "images":
                feeds[name] = self.images
                key.append((self.images.shape, self.images.dtype))
            else:
                feeds[name] = self._outputs.feed(name)
                key.append(self._outputs.specs[name])
        return feeds, tuple(key)


#: How feature maps travel between the graphs when OpenVINO computes in bfloat16 (as raw bits).
RAW_BF16 = np.uint16
#: The compiled binding's synchronous run: ``(request, {name: Tensor}, share_outputs, decode_strings)``.
_infer = _pyopenvino.InferRequest.infer


class _SharedOutputs:
    """One run's outputs, left in its infer request's buffers until that request runs again
    (which first calls :meth:`detach` on them if they are still held)."""

    __slots__ = ("__weakref__", "arrays", "raw", "specs", "tensors")

    def __init__(self, tensors: dict[str, ov.Tensor], specs: dict[str, tuple], raw: frozenset[str]) -> None:
        self.tensors: dict[str, ov.Tensor] | None = tensors
        self.specs = specs  # name: (shape, dtype), as the array copy has them
        self.raw = raw  # the names to read as raw bfloat16 bits
        self.arrays: dict[str, np.ndarray] | None = None

    def detach(self) -> dict[str, np.ndarray]:
        """The outputs as arrays of their own, copied out of the request's buffers (once)."""
        if self.arrays is None:
            self.arrays = {name: _array(tensor, name in self.raw) for name, tensor in self.tensors.items()}
            self.tensors = None
        return self.arrays

    def feed(self, name: str) -> ov.Tensor | np.ndarray:
        """Output ``name`` to feed another graph: the request's tensor itself while it lasts."""
        return self.tensors[name] if self.tensors is not None else self.arrays[name]


class _RequestSlot:
    """A thread's infer request for one compiled shape, and the outputs it last handed out."""

    __slots__ = ("compiled", "last", "request", "specs")

    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.specs: dict[str, tuple] | None = None  # the outputs' (shape, dtype), after a first run
        self.last: weakref.ref[_SharedOutputs] | None = None


class _StaticGraph:
    """One ONNX graph, compiled once per distinct set of input shapes (least recently used out).

    Threads may run it at once: each calling thread has its own infer request per compiled shape.
    """

    def __init__(self, core: ov.Core, model: ov.Model, config: dict[str, object], passed: str = "f32") -> None:
        self.core = core
        self.model = model
        self.config = config
        # The element type feature maps cross the graph boundary in (see the module's notes).
        self.passed = ov.Type.bf16 if passed == "bf16" else ov.Type.f32
        self.inputs = [i.get_any_name() for i in self.model.inputs]
        self.outputs = [o.get_any_name() for o in self.model.outputs]
        # OpenVINO hands bfloat16 out typed float16: these outputs are read as plain bits.
        self._raw_outputs = frozenset(filter(is_passed_feature, self.outputs)) if passed == "bf16" else frozenset()
        self._compiled: OrderedDict[tuple, ov.CompiledModel] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()  # the calling thread's {shapes: (compiled, request)}

    def compiled(self, inputs: tuple[tuple[tuple[int, ...], np.dtype], ...]) -> ov.CompiledModel:
        """The graph compiled for inputs of these ``(shape, dtype)``; a ``uint8`` input is an
        ``[N, H, W, 3]`` image batch that the graph converts itself (see the module's notes)."""
        with self._lock:
            compiled = self._compiled.get(inputs)
            if compiled is None:
                compiled = self.core.compile_model(self._specialised(inputs), "CPU", self.config)
                self._compiled[inputs] = compiled
                if len(self._compiled) > MAX_SHAPES:
                    self._compiled.popitem(last=False)
            else:
                self._compiled.move_to_end(inputs)
            return compiled

    def _specialised(self, inputs: tuple[tuple[tuple[int, ...], np.dtype], ...]) -> ov.Model:
        model = self.model.clone()
        images = {name for name, (_, dtype) in zip(self.inputs, inputs) if dtype == "uint8"}
        channels_last = images | {name for name in self.inputs if is_passed_feature(name)}
        model.reshape({name: ov.PartialShape(list(_nchw(shape) if name in channels_last else shape))
                       for name, (shape, _) in zip(self.inputs, inputs)})
        for name in images:
            _read_uint8_images(model, name)
        steps = PrePostProcessor(model)
        for name in channels_last - images:
            steps.input(name).tensor().set_layout(ov.Layout("NHWC")).set_element_type(self.passed)
            steps.input(name).model().set_layout(ov.Layout("NCHW"))
        for name in filter(is_passed_feature, self.outputs):
            steps.output(name).model().set_layout(ov.Layout("NCHW"))
            steps.output(name).tensor().set_layout(ov.Layout("NHWC")).set_element_type(self.passed)
        return steps.build()

    def request(self, inputs: tuple[tuple[tuple[int, ...], np.dtype], ...]) -> ov.InferRequest:
        """This thread's infer request for ``inputs`` (a new one when the compiled graph changed)."""
        return self._slot(inputs).request

    def _slot(self, inputs: tuple[tuple[tuple[int, ...], np.dtype], ...]) -> _RequestSlot:
        slots = getattr(self._local, "slots", None)
        if slots is None:
            slots = self._local.slots = {}
        slot = slots.get(inputs)
        if slot is not None and self._compiled.get(inputs) is slot.compiled:
            # The usual case, without the lock: the dictionary's own calls are atomic.
            with suppress(KeyError):  # another thread's compile evicted it just now: runs this once more
                self._compiled.move_to_end(inputs)
            return slot
        compiled = self.compiled(inputs)
        if slot is None or slot.compiled is not compiled:
            slot = slots[inputs] = _RequestSlot(compiled)
            if len(slots) > MAX_SHAPES:
                slots.pop(next(iter(slots)))
        return slot

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs for ``feeds`` as arrays of their own."""
        return self.run_shared(feeds).detach()

    def run_shared(self, feeds: dict[str, np.ndarray | ov.Tensor], key: tuple | None = None) -> _SharedOutputs:
        """Run on ``feeds`` (arrays; or tensors, with ``key``: their ``(shape, dtype)`` in input
        order) and hand out the outputs in the request's buffers.

        The binding's own InferRequest.infer (its argument dispatch, result dictionary and copies)
        cost 0.08 ms a call more than this on a 2-core Xeon, 5 % of an exit. Here the tensors wrap
        the arrays (OpenVINO reads them in place).
        """
        if key is None:
            key = tuple((feeds[name].shape, feeds[name].dtype) for name in self.inputs)  # dtype.name: 3 us each
        slot = self._slot(key)
        held = slot.last() if slot.last is not None else None
        if held is not None:
            held.detach()  # this run overwrites the buffers it reads
        tensors = {}
        for name in self.inputs:
            value = feeds[name]
            tensors[name] = value if isinstance(value, ov.Tensor) else _tensor(value)
        request = slot.request
        _infer(request, tensors, True, False)
        outputs = {name: request.get_tensor(name) for name in self.outputs}
        if slot.specs is None:
            views = {name: _array(tensor, name in self._raw_outputs, copy=False) for name, tensor in outputs.items()}
            slot.specs = {name: (view.shape, view.dtype) for name, view in views.items()}
        shared = _SharedOutputs(outputs, slot.specs, self._raw_outputs)
        slot.last = weakref.ref(shared)
        return shared

    def kernel_ms(self, feeds: dict[str, np.ndarray], runs: int) -> Counter[str]:
        """Mean milliseconds per run that each kind of operation (``Convolution``, ``Reorder``...)
        takes over ``runs`` runs on ``feeds``; needs the graph compiled with ``PERF_COUNT``."""
        totals: Counter[str] = Counter()
        request = self.request(tuple((feeds[name].shape, feeds[name].dtype) for name in self.inputs))
        for _ in range(runs):
            self.run(feeds)
            for node in request.profiling_info:
                if node.status == node.Status.EXECUTED:
                    totals[node.node_type] += node.real_time.total_seconds() * 1000 / runs
        return totals


class OpenVinoBackend:
    """Runs the three exported graphs with OpenVINO on the CPU.

    Args:
        graphs: the exported graph files (see :func:`~engine.model.onnx_export.export_staged`).
        threads: inference threads (default: :func:`~engine.model.onnx_backend.default_threads`).
        precision: ``auto`` (OpenVINO's choice for this CPU: bf16 where native, else f32),
            ``f32`` or ``bf16``.
        cache_dir: where compiled graphs are kept (default: ``openvino`` in the graphs' cache
            entry, or the user cache when that is read-only); ``""`` keeps nothing on disk.
    """

    name = "openvino"
    # What the predictor should hand stage 1 (see the module's notes).
    input_layout = "nhwc_uint8"

    def __init__(self, graphs: StagedGraphs, threads: int | None = None, precision: str = "auto",
                 cache_dir: Path | str | None = None) -> None:
        self.threads = threads if threads is not None else default_threads()
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.graphs = graphs
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": self.threads,
            # Pinned workers would fight capture, encoding and other processes for the cores.
            "ENABLE_CPU_PINNING": False,
        }
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        self._config = config
        core = ov.Core()
        cache = scratch_dir(graphs, "openvino") if cache_dir is None else cache_dir
        if cache:
            core.set_property({"CACHE_DIR": str(cache)})
        self._core = core
        self.precision = precision if precision != "auto" else _default_precision(core)
        self._graphs = {g: _StaticGraph(core, core.read_model(str(graphs.files[g])), config, self.precision)
                        for g in GRAPHS}
        logger.debug("OpenVINO %s, %d threads, %s, graphs in %s", ov.__version__, self.threads, self.precision,
                     graphs.directory)

    @classmethod
    def from_model(cls, loaded: LoadedModel, weights_path: Path | None = None, threads: int | None = None,
                   precision: str = "auto") -> OpenVinoBackend:
        """Export ``loaded``'s model (or reuse the export cached beside ``weights_path``) and open it.

        Without a weights file the graphs go to a temporary folder; the graphs are read into
        memory when opened, and nothing is cached on disk.
        """
        if weights_path is not None:
            return cls(export_staged(loaded, Path(weights_path)), threads, precision)
        with tempfile.TemporaryDirectory(prefix="dynastream-onnx-") as tmp:
            return cls(export_staged(loaded, cache_root=Path(tmp)), threads, precision, cache_dir="")

    def stage1(self, x: np.ndarray | torch.Tensor) -> tuple[OpenVinoStage1State, np.ndarray]:
        """``x``: ``[N, 3, H, W]`` float32 RGB in [0, 1], or ``[N, H, W, 3]`` uint8 RGB. Returns the
        state and scores ``[N]``."""
        images = np.asarray(x)
        if images.dtype == np.uint8:
            if images.ndim != 4 or images.shape[3] != 3:
                raise ValueError(f"expected a [N, H, W, 3] uint8 batch, got shape {images.shape}")
        else:
            images = np.asarray(images, dtype=np.float32)
            if images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(f"expected a [N, 3, H, W] batch, got shape {images.shape}")
        images = np.ascontiguousarray(images)
        outputs = self._graphs["stage1"].run_shared({"images": images})
        return OpenVinoStage1State(images, outputs, len(images)), _array(outputs.tensors["scores"], raw=False)

    def exit1(self, state: OpenVinoStage1State, index: np.ndarray | None = None) -> np.ndarray:
        """Decoded predictions ``[n, A, 5 + C]`` of detector 1 for the samples at ``index``."""
        return self._exit("exit1", state, index)

    def exit2(self, state: OpenVinoStage1State, index: np.ndarray | None = None) -> np.ndarray:
        """Decoded predictions ``[n, A, 5 + C]`` of detector 2 for the samples at ``index``."""
        return self._exit("exit2", state, index)

    @staticmethod
    def postprocess(outputs: np.ndarray, conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[np.ndarray]:
        """The exported graphs give YOLO-family dense predictions: NMS makes them detections."""
        return nms_arrays(outputs, conf_threshold, iou_threshold, max_detections)

    def kernel_ms(self, images: np.ndarray, runs: int = 20, warmup: int = 5) -> dict[str, Counter[str]]:
        """Per graph, mean kernel milliseconds per kind of operation on ``images`` (a batch as
        :meth:`stage1` takes it), from OpenVINO's performance counters: the graphs are compiled
        again for counting, without the on-disk cache, so this backend's own runs stay uncounted."""
        counting = {name: _StaticGraph(ov.Core(), graph.model.clone(), {**self._config, "PERF_COUNT": True},
                                       self.precision)
                    for name, graph in self._graphs.items()}
        images = np.ascontiguousarray(images if images.dtype == np.uint8 else np.asarray(images, np.float32))
        values = {"images": images, **counting["stage1"].run({"images": images})}
        split = {}
        for name, graph in counting.items():
            feeds = {n: values[n] for n in graph.inputs}
            graph.kernel_ms(feeds, warmup)
            split[name] = graph.kernel_ms(feeds, runs)
        return split

    def compiled_precision(self, graph: str = "stage1") -> str | None:
        """The precision OpenVINO compiled ``graph`` with (None before its first run)."""
        compiled = next(iter(self._graphs[graph]._compiled.values()), None)
        return None if compiled is None else _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))

    def _exit(self, graph: str, state: OpenVinoStage1State, index: np.ndarray | None) -> np.ndarray:
        static = self._graphs[graph]
        if index is None or (len(index) == state.batch and np.array_equal(index, np.arange(state.batch))):
            return static.run_shared(*state.feeds(static.inputs)).detach()[EXIT_OUTPUT]
        rows = np.asarray(index, dtype=np.int64)
        values = state.values
        return static.run({name: values[name][rows] for name in static.inputs})[EXIT_OUTPUT]  # gathers a copy


def is_passed_feature(name: str) -> bool:
    """Whether stage 1 hands tensor ``name`` to the exits as a feature map (channels-last here)."""
    return name.startswith(FEATURE_PREFIX) or name == "folded"


def _read_uint8_images(model: ov.Model, name: str) -> None:
    """Make ``model``'s float ``[N, 3, H, W]`` input ``name`` (RGB in [0, 1]) a ``uint8``
    ``[N, H, W, 3]`` input that the graph converts itself.

    Built by hand rather than with OpenVINO's preprocessing, whose layout change runs as a
    transpose of the bytes, a conversion in planar layout and a reorder back to channels-last for
    the first convolution: three kernels, 0.15 ms of stage 1 and 0.25 ms of exit 2 on a 2-core
    Xeon (7 % of exit 2's kernel time). Here the conversion runs in the input's own layout, over
    the batch flattened (a vector the conversion kernel vectorises, not rows of three), and the
    transpose that follows is one the CPU plugin merges with its reorder into nothing.
    """
    original = model.input(name).get_node()
    n, channels, height, width = original.get_output_partial_shape(0).to_shape()
    images = opset.parameter([n, height, width, channels], ov.Type.u8, name=name)
    images.output(0).get_tensor().set_names({name})
    flat = opset.reshape(images, opset.constant(np.array([-1], np.int64)), special_zero=False)
    scaled = opset.divide(opset.convert(flat, ov.Type.f32), opset.constant(np.float32(255.0)))
    unflat = opset.reshape(scaled, opset.constant(np.array([n, height, width, channels], np.int64)), special_zero=False)
    planar = opset.transpose(unflat, opset.constant(np.array([0, 3, 1, 2], np.int64)))
    for reader in list(original.output(0).get_target_inputs()):
        reader.replace_source_output(planar.output(0))
    model.replace_parameter(model.get_parameter_index(original), images)


def _array(tensor: ov.Tensor, raw: bool, copy: bool = True) -> np.ndarray:
    """``tensor``'s data as an array (a copy, or a view of its memory); ``raw``: bfloat16, which
    OpenVINO hands out typed float16, read as plain bits."""
    data = tensor.data
    data = data.view(RAW_BF16) if raw else data
    return np.array(data) if copy else data


def _tensor(array: np.ndarray) -> ov.Tensor:
    """An OpenVINO tensor over ``array``'s memory (raw bfloat16 bits typed as such); over a
    C-contiguous copy where the array is strided, or read-only (which OpenVINO refuses to share)."""
    array = np.ascontiguousarray(array)
    if array.dtype == RAW_BF16:
        return ov.Tensor(array, array.shape, ov.Type.bf16)
    if not array.flags.writeable:
        array = array.copy()
    return ov.Tensor(array, shared_memory=True)


def _nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    n, h, w, c = shape
    return n, c, h, w


def _default_precision(core: ov.Core) -> str:
    """The precision OpenVINO's CPU plugin uses when not told: its default inference precision."""
    return _type_name(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))


def _type_name(value: object) -> str:
    """``bf16``/``f32`` from an OpenVINO element type (or its string form)."""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)
