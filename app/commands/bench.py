"""`bench`: latency of each exit path with one backend, against eager PyTorch in the same process.

A path is everything a frame runs: ``exit1`` is stage 1 then exit 1, ``exit2`` is stage 1 then
exit 2. Batch 1, float32, a fixed random image, warm-up runs before the timed ones.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from app.commands.common import finite_float

PATHS = ("stage1", "exit1", "exit2")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="time each exit with a backend against eager PyTorch")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="model file (default: the bundled model)")
    source.add_argument("--config", help="architecture YAML or a name like dy-yolov7: random weights")
    parser.add_argument("--imgsz", type=int, help="square input size (default: the model's)")
    parser.add_argument("--backend", default="auto", help="auto, torch or onnxruntime (default: auto)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per path (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per path first (default: 2)")
    parser.add_argument("--threads", type=int, help="compute threads (default: the backend's choice)")
    parser.add_argument("--width", type=finite_float, help="width multiple override (with --config)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from app.commands.common import check_positive
    from engine.errors import UserError
    from engine.model.backends import TorchBackend, check_backend_name, make_backend
    from engine.model.complexity import exit_gflops

    for name in ("imgsz", "runs", "threads", "width"):
        check_positive(f"--{name}", getattr(args, name))
    if args.warmup < 0:
        raise UserError(f"--warmup must not be negative, got {args.warmup}")
    check_backend_name(args.backend)
    model, weights, source = _load_model(args)
    imgsz = _input_size(args.imgsz, model)
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # eager PyTorch gets the same thread budget
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    # Eager first: the PyTorch backend fuses the model in place.
    eager = _time_paths(TorchBackend(model, fuse=False, channels_last=False), x, args.runs, args.warmup)
    backend = make_backend(model, args.backend, args.threads, weights)
    measured = _time_paths(backend, x, args.runs, args.warmup)
    gflops = exit_gflops(model.fuse(), imgsz)  # what inference costs: fused
    threads = getattr(backend, "threads", torch.get_num_threads())
    print(json.dumps({"model": model.arch.name if model.arch else None, "source": source,
                      **_summary(backend.name, imgsz, threads, measured, eager, gflops)}))
    return 0


def _load_model(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The model, its weights file (None for random weights) and a description of its source."""
    from pathlib import Path

    import torch

    from app.commands.common import default_weights, resolve_config, with_width
    from engine.errors import UserError
    from engine.model.checkpoint import arch_from_config, load_detector
    from engine.model.families import build_cascade

    if args.width is not None and not args.config:
        raise UserError("--width applies to --config (random weights) only")
    if args.config:
        arch = with_width(arch_from_config(resolve_config(args.config)), args.width)
        torch.manual_seed(0)
        return build_cascade(arch).eval(), None, f"config:{args.config}"
    if args.weights:
        weights = Path(args.weights)
    else:
        try:
            weights = default_weights()
        except UserError:
            raise UserError("no bundled model yet: pass --weights FILE, or --config NAME to time random "
                            "weights") from None
    return load_detector(weights), weights, str(weights)


def _input_size(imgsz: int | None, model: Any) -> int:
    from engine.errors import UserError

    size = imgsz or model.input_size
    stride = model.stride
    if size % stride:
        raise UserError(f"--imgsz must be a multiple of {stride}, got {size}")
    return size


def _time_paths(backend: Any, x: Any, runs: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per run of stage 1 alone and of each whole exit path."""
    paths: dict[str, Callable[[], object]] = {
        "stage1": lambda: backend.stage1(x),
        "exit1": lambda: backend.exit1(backend.stage1(x)[0]),
        "exit2": lambda: backend.exit2(backend.stage1(x)[0]),
    }
    return {name: _time(run, runs, warmup) for name, run in paths.items()}


def _time(run: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()  # every backend returns host memory, so this also waits for a GPU
        times.append((time.perf_counter() - start) * 1000)
    return times


def _stats(times: list[float]) -> dict[str, float]:
    import numpy as np

    return {"median": round(float(np.median(times)), 2), "p90": round(float(np.percentile(times, 90)), 2)}


def _medians(times: dict[str, list[float]]) -> dict[str, float]:
    import numpy as np

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
