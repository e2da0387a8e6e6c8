"""`bench`: every available backend (PyTorch, ONNX Runtime, OpenVINO) side by side in one process.

Per backend: stage 1 alone and each exit path (``exit1`` is stage 1 then exit 1, ``exit2`` is
stage 1 then exit 2), each exit alone, achieved GFLOP/s, the speed-up over eager PyTorch, and the
streaming pipeline's rate on the demo clip at each exit beside the rate its network allows. The
top-level figures describe the backend ``--backend`` selects (``auto``: also which runtime it
picked and from what). Batch 1, float32 input, a fixed random image, warm-up runs first; the
machine's float32 peak comes from its CPU flags and clock.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.commands.common import (
    DEFAULT_VIDEO,
    check_positive,
    default_weights,
    finite_float,
    resolve_config,
    with_width,
)
from engine.errors import UserError
from engine.model.backend_names import GRAPH_BACKENDS, check_backend_available
from engine.runtime.queues import StreamEnd, get_item
from engine.runtime.routing import RoutingMode

PATHS = ("stage1", "exit1", "exit2")
# One AMX tile multiply unit per core: 512 bf16 multiply-adds per cycle (Intel's figure).
AMX_BF16_FLOP_PER_CYCLE = 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="time each exit with a backend against eager PyTorch")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="model file (default: the bundled model)")
    source.add_argument("--config", help="architecture YAML or a name like dy-yolov7: random weights")
    parser.add_argument("--imgsz", type=int, help="square input size (default: the model's)")
    parser.add_argument("--backend", default="auto",
                        help="auto, torch, onnxruntime or openvino: the one the top-level figures describe; every "
                             "available backend is timed beside it (default: auto)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per path (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per path first (default: 2)")
    parser.add_argument("--threads", type=int, help="compute threads (default: the backend's choice)")
    parser.add_argument("--width", type=finite_float, help="width multiple override (with --config)")
    parser.add_argument("--demo-frames", type=int,
                        help="frames of the demo clip run through the pipeline at each exit per backend "
                             "(default: all with --weights or the bundled model, none with --config)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    # The model code brings torch: only once the command line holds up.
    import torch

    from engine.model.backends import TorchBackend
    from engine.model.complexity import exit_gflops

    loaded, weights, source = _load_model(args)
    model = loaded.model
    imgsz = _input_size(args.imgsz, model)
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # eager PyTorch gets the same thread budget
    # Before any timing: a backend this model cannot use is refused here.
    graphs, chosen, choice = _open_graph_backends(loaded, args.backend, args.threads, weights)
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    # Eager before the staged PyTorch backend, which fuses the model in place (the graph
    # runtimes export a fused copy and leave it as it is).
    eager = _time_paths({"eager": TorchBackend(model, fuse=False, channels_last=False)}, x, args.runs,
                        args.warmup)["eager"]
    backends = {"torch": _torch_backend(loaded, selected=chosen == "torch", threads=args.threads), **graphs}
    measured = _time_paths(backends, x, args.runs, args.warmup)
    gflops = exit_gflops(model.fuse(), imgsz)  # what inference costs: fused
    threads = getattr(backends[chosen], "threads", torch.get_num_threads())
    report = {"model": loaded.spec.name, "source": source,
              **_summary(chosen, imgsz, threads, measured[chosen], eager, gflops),
              "backends": {name: _backend_row(backends[name], times, eager, gflops)
                           for name, times in measured.items()},
              "machine": machine_peak(threads)}
    for name, backend in backends.items():
        if hasattr(backend, "kernel_ms"):  # a runtime that counts its kernels (OpenVINO)
            report["backends"][name]["kernels"] = _kernel_split(backend, imgsz, args.runs)
    if choice is not None:
        report["auto"] = {"chose": choice.name, "reason": choice.reason, "path_ms": choice.path_ms}
    # Random weights (--config) find nothing worth timing on the demo unless asked.
    demo_frames = args.demo_frames if args.demo_frames is not None else (None if weights is not None else 0)
    if demo_frames != 0:
        report["pipeline"] = {name: _pipeline_rates(loaded, backend, demo_frames)
                              for name, backend in backends.items()}
        report["pipeline_workers"] = _pipeline_with_workers(loaded, graphs, args.threads, weights, demo_frames)
    print(json.dumps(report))
    return 0


def check_arguments(args: argparse.Namespace) -> None:
    """Everything about the command line that holds without the model; one line per problem."""
    for name in ("imgsz", "runs", "threads", "width"):
        check_positive(f"--{name}", getattr(args, name))
    if args.warmup < 0 or (args.demo_frames is not None and args.demo_frames < 0):
        raise UserError("--warmup and --demo-frames must not be negative")
    if args.width is not None and not args.config:
        raise UserError("--width applies to --config (random weights) only")
    check_backend_available(args.backend)


def _open_graph_backends(loaded: Any, name: str, threads: int | None, weights: Any) -> tuple[dict, str, Any]:
    """Every installed graph runtime ``loaded``'s model runs on (none when it does not export), the name of
    the backend ``--backend`` selects, and ``auto``'s choice (None unless measured for auto).

    Raises:
        UserError: ``--backend`` names a graph runtime and the model does not export.
    """
    import torch

    from engine.model import backends as staged

    model = loaded.model
    if name == "auto" and (torch.cuda.is_available() or not model.onnx_exportable):
        name = "torch"  # as the runtime's auto decides (see make_backend)
    opened, choice = {}, None
    if name == "auto":
        selected, choice = staged.choose_graph_backend(loaded, threads, weights)
        name, opened[selected.name] = selected.name, selected
    elif name in GRAPH_BACKENDS:
        opened[name] = staged.make_backend(loaded, name, threads, weights)
    runtimes = staged.available_graph_backends() if model.onnx_exportable else ()
    for runtime in runtimes:
        if runtime not in opened:
            opened[runtime] = staged.open_graph_backend(runtime, loaded, threads, weights)
    return {runtime: opened[runtime] for runtime in runtimes}, name, choice


def _torch_backend(loaded: Any, selected: bool, threads: int | None) -> Any:
    """The staged PyTorch backend: as the runtime opens it when ``--backend`` selects it (CUDA when
    there is one), else on the CPU beside the graph runtimes."""
    from engine.model import backends as staged

    return staged.make_backend(loaded, "torch", threads) if selected else staged.TorchBackend(loaded.model)


def _load_model(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The model with its spec, its weights file (None for random weights) and a description of its source."""
    import torch

    from engine.model.checkpoint import arch_from_config, load_model
    from engine.model.families import new_model

    if args.config:
        arch = with_width(arch_from_config(resolve_config(args.config)), args.width)
        torch.manual_seed(0)
        loaded = new_model(arch)
        loaded.model.eval()
        return loaded, None, f"config:{args.config}"
    if args.weights:
        weights = Path(args.weights)
    else:
        try:
            weights = default_weights()
        except UserError:
            raise UserError("no bundled model yet: pass --weights FILE, or --config NAME to time random "
                            "weights") from None
    return load_model(weights), weights, str(weights)


def _input_size(imgsz: int | None, model: Any) -> int:
    size = imgsz or model.input_size
    stride = model.stride
    if size % stride:
        raise UserError(f"--imgsz must be a multiple of {stride}, got {size}")
    return size


def _time_paths(backends: dict[str, Any], x: Any, runs: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per run of stage 1 alone and of each whole exit path, per backend; the
    backends take turns run by run, so load on a shared machine hits them alike."""
    def paths(backend: Any) -> dict[str, Callable[[], object]]:
        return {"stage1": lambda: backend.stage1(x),
                "exit1": lambda: backend.exit1(backend.stage1(x)[0]),
                "exit2": lambda: backend.exit2(backend.stage1(x)[0])}

    runners = {name: paths(backend) for name, backend in backends.items()}
    for by_path in runners.values():
        for run in by_path.values():
            for _ in range(warmup):
                run()
    times = {name: {path: [] for path in PATHS} for name in backends}
    for _ in range(runs):
        for name, by_path in runners.items():
            for path, run in by_path.items():
                start = time.perf_counter()
                run()  # every backend returns host memory, so this also waits for a GPU
                times[name][path].append((time.perf_counter() - start) * 1000)
    return times


def _stats(times: list[float]) -> dict[str, float]:
    return {"median": round(float(np.median(times)), 2), "p90": round(float(np.percentile(times, 90)), 2)}


def _medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {path: float(np.median(t)) for path, t in times.items()}


def _summary(backend: str, imgsz: int, threads: int, measured: dict[str, list[float]],
             eager: dict[str, list[float]], gflops: dict[str, float]) -> dict[str, Any]:
    exits = ("exit1", "exit2")
    median, eager_median = _medians(measured), _medians(eager)

    def rate(ms: dict[str, float]) -> dict[str, float]:
        return {e: round(gflops[e] / (ms[e] / 1000), 1) for e in exits}

    return {
        "backend": backend, "imgsz": imgsz, "threads": threads, "runs": len(measured["exit1"]),
        **{f"{path}_ms": _stats(measured[path]) for path in PATHS},
        "gflops": {e: round(gflops[e], 3) for e in exits},
        "gflop_per_s": rate(median),
        "eager": {**{f"{path}_ms": _stats(eager[path]) for path in PATHS}, "gflop_per_s": rate(eager_median)},
        "speedup_vs_eager": {e: round(eager_median[e] / median[e], 2) for e in exits},
    }


def _backend_row(backend: Any, measured: dict[str, list[float]], eager: dict[str, list[float]],
                 gflops: dict[str, float]) -> dict[str, Any]:
    """One backend's stage and exit times (each exit alone: its path less stage 1), GFLOP/s and
    speed-up over eager PyTorch."""
    median, eager_median = _medians(measured), _medians(eager)
    row: dict[str, Any] = {f"{path}_ms": _stats(measured[path]) for path in PATHS}
    for e in ("exit1", "exit2"):
        row[f"{e}_only_ms"] = round(median[e] - median["stage1"], 2)
    row["gflop_per_s"] = {e: round(gflops[e] / (median[e] / 1000), 1) for e in ("exit1", "exit2")}
    row["speedup_vs_eager"] = {e: round(eager_median[e] / median[e], 2) for e in ("exit1", "exit2")}
    precision = getattr(backend, "precision", "f32")
    row["precision"] = precision
    return row


def _kernel_split(backend: Any, imgsz: int, runs: int) -> dict[str, Any]:
    """Per graph, on one frame as the pipeline hands it over (letterboxed ``uint8``): kernel time,
    the share of it outside convolutions (fused activations count as convolution) and the
    largest kinds of operation there."""
    frame = np.random.default_rng(0).integers(0, 256, (1, imgsz, imgsz, 3), dtype=np.uint8)
    split = {}
    for graph, by_op in backend.kernel_ms(frame, runs=max(runs, 20)).items():
        total = sum(by_op.values())
        others = [(op, ms) for op, ms in by_op.most_common() if op != "Convolution"]
        split[graph] = {"kernel_ms": round(total, 3), "non_conv_share": round(1 - by_op["Convolution"] / total, 3),
                        "largest_non_conv_ms": {op: round(ms, 3) for op, ms in others[:4]}}
    return split


def machine_peak(threads: int) -> dict[str, Any]:
    """This CPU's float32 peak from its flags and clock, with the assumption spelled out.

    Peak = threads x clock x 2 FMA pipes x lanes x 2 (an FMA is two FLOPs); lanes are 16 with
    AVX-512F, 8 with AVX2+FMA, else 4 (SSE, no FMA: counted as separate mul and add pipes).
    AMD Zen 4 executes a 512-bit FMA as two 256-bit halves, so there the AVX-512 figure is
    counted at 256-bit width. AVX-512 BF16 dot products double the per-cycle rate; AMX tiles
    (Intel Xeon from Sapphire Rapids on) multiply bf16 at 1024 FLOPs per cycle per core.
    """
    from engine.model.backends import cpu_flags, cpu_model  # brings torch

    flags, name = cpu_flags(), cpu_model()
    amd = "AMD" in name.upper()
    if "avx512f" in flags:
        isa, lanes = "avx512", 8 if amd else 16
    elif {"avx2", "fma"} <= flags:
        isa, lanes = "avx2+fma", 8
    else:
        isa, lanes = "sse", 4
    ghz = _clock_ghz()
    per_cycle = 2 * lanes * 2
    peak = threads * ghz * per_cycle if ghz else None
    bf16 = bool({"avx512_bf16", "amx_bf16"} & flags)
    amx = "amx_bf16" in flags
    peak_bf16 = (threads * ghz * AMX_BF16_FLOP_PER_CYCLE if amx else 2 * peak) if peak and bf16 else None
    return {"cpu": name, "isa": isa, "bf16": bf16, "amx": amx, "clock_ghz": ghz, "threads": threads,
            "flop_per_cycle_per_core": per_cycle, "peak_gflop_per_s": round(peak, 1) if peak else None,
            "peak_bf16_gflop_per_s": round(peak_bf16, 1) if peak_bf16 else None,
            "assumption": "2 FMA pipes per core; " + ("AMD splits AVX-512 into 256-bit halves; " if amd and
                                                      isa == "avx512" else "")
                          + (f"AMX: {AMX_BF16_FLOP_PER_CYCLE} bf16 FLOPs per cycle per core; " if amx else "")
                          + "clock from cpufreq max, else /proc/cpuinfo's current MHz"}


def _clock_ghz() -> float | None:
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e6
    except (OSError, ValueError):
        pass
    from engine.model.backends import _cpuinfo_field

    mhz = _cpuinfo_field("cpu MHz")
    return round(float(mhz) / 1000, 3) if mhz else None


def _pipeline_with_workers(loaded: Any, graphs: dict[str, Any], threads: int | None, weights: Any,
                           frames: int | None) -> dict[str, Any]:
    """The pipeline as ``run`` runs it by default on each graph runtime: with the engine's default
    number of workers, each on its share of the threads (see :func:`engine.model.backends.default_workers`)."""
    from engine.model import backends as staged

    rows = {}
    for name in graphs:
        workers = staged.default_workers(loaded, name)
        if workers > 1:
            backend = staged.open_graph_backend(name, loaded, staged.worker_threads(workers, threads), weights)
            rows[name] = {"workers": workers, **_pipeline_rates(loaded, backend, frames, workers)}
    return rows


def _pipeline_rates(loaded: Any, backend: Any, frames: int | None, workers: int = 1) -> dict[str, Any]:
    """The streaming pipeline on the demo clip (not real time) at each exit: its frame rate, the
    rate stage 1 + that exit allow (their times inside the pipeline; ``workers`` calls at once),
    and the share of the engine's per-frame time spent outside the network. The predictor is
    made as ``run`` makes it (its readable score scale included)."""
    from engine.model.predictor import Predictor  # brings torch
    from engine.model.score_scale import readable_calibration

    model = loaded.model
    scale, _ = readable_calibration(loaded.calibration)
    predictor = Predictor(backend, model.class_names, model.input_size, stride=model.stride, score_scale=scale,
                          workers=workers)
    rows = {f"exit{e}": _run_demo(predictor, route, str(DEFAULT_VIDEO), frames, workers)
            for e, route in ((1, "first"), (2, "second"))}
    first, second = rows["exit1"], rows["exit2"]
    graph_ratio = second["network_ms"] / first["network_ms"]
    rows["exit1_over_exit2_fps"] = round(first["fps"] / second["fps"], 3)
    rows["graph_exit2_over_exit1_ms"] = round(graph_ratio, 3)
    rows["range_kept"] = round(first["fps"] / second["fps"] / graph_ratio, 3)
    # Letterboxed on the capture thread (then not in the engine's time), as `run` does it here.
    rows["letterbox_on_capture"] = predictor.prepares_ahead
    return rows


def _run_demo(predictor: Any, route: str, video: str, frames: int | None, workers: int = 1) -> dict[str, Any]:
    from engine.runtime.pipeline import Pipeline, PipelineConfig  # brings the decoders (cv2, PyAV)

    pipeline = Pipeline(PipelineConfig(video, RoutingMode(route)), predictor)
    network, engine, count, first_at = [], [], 0, None
    split = dict.fromkeys(("preprocess", "nms", "total"), 0.0)
    pipeline.start()
    try:
        while frames is None or count < frames:
            item = get_item(pipeline.results, 1.0)
            if item is None:
                continue
            if isinstance(item, StreamEnd):
                break
            count += 1
            if first_at is None:  # the rate counts from the first result: start-up is not throughput
                first_at = time.perf_counter()
                continue
            timings = item.detections.timings_ms
            network.append(timings["stage1"] + timings[f"exit{item.detections.exit}"])
            engine.append(item.extra.get("engine_ms", timings["total"]))
            for part in ("preprocess", "nms", "total"):
                split[part] += timings[part]
        elapsed = time.perf_counter() - first_at if first_at else 0.0
    finally:
        pipeline.shutdown()
    fps = (count - 1) / elapsed if elapsed else 0.0
    network_ms = float(np.mean(network)) if network else float("nan")
    # With several workers the network runs that many frames at once: it allows workers / time per call.
    network_fps = workers * 1000 / network_ms
    return {"frames": count, "fps": round(fps, 1), "network_ms": round(network_ms, 3),
            "network_fps": round(network_fps, 1), "fps_over_network_fps": round(fps / network_fps, 3),
            "outside_network_share": round(1 - sum(network) / sum(engine), 3) if engine else None,
            # Where the engine's time outside the network goes, as shares of its whole time.
            "outside_split": {
                "preprocess": _share(split["preprocess"], engine), "postprocess": _share(split["nms"], engine),
                "predictor_other": _share(split["total"] - split["preprocess"] - split["nms"] - sum(network), engine),
                "engine_loop": _share(sum(engine) - split["total"], engine)}}


def _share(part: float, engine: list[float]) -> float | None:
    return round(part / sum(engine), 3) if engine else None
