"""Helpers shared by subcommands: default paths, model loading, image reading."""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

# The bundled defaults, resolved in a checkout and in an installed package alike.
from engine.bundled import DEFAULT_VIDEO as DEFAULT_VIDEO
from engine.bundled import DEFAULT_WEIGHTS, model_config, model_config_names
from engine.errors import UserError
from engine.model.loading import ModelOptions, load_predictor


def default_weights() -> Path:
    if not DEFAULT_WEIGHTS.exists():
        raise UserError(f"bundled model not found at {DEFAULT_WEIGHTS}; pass --weights")
    return DEFAULT_WEIGHTS


def resolve_config(value: str | None) -> Path | None:
    """A config path, or the name of one of ours (``dy-yolov7``) under configs/models."""
    if value is None:
        return None
    path = Path(value)
    if path.exists():
        return path
    named = model_config(value)
    if named.exists():
        return named
    raise UserError(f"config not found: {value} (give a path or one of: {', '.join(model_config_names())})")


def read_image_rgb(path: str | Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB; a clear error when it cannot be read."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise UserError(f"image not found: {path}")
    if path.is_dir():
        raise UserError(f"expected an image file, got a directory: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot decode image: {path}")
    return np.ascontiguousarray(image[:, :, ::-1])


def input_size(requested: int | None, model_default: int) -> int:
    """The network input size: ``--imgsz`` if given, else the model's; a positive multiple of 32."""
    imgsz = requested or model_default
    if imgsz <= 0 or imgsz % 32:
        raise UserError(f"--imgsz must be a positive multiple of 32, got {imgsz}")
    return imgsz


def with_width(arch, width: float | None):
    """``arch`` with ``--width`` applied; only the YOLO family has a width multiple."""
    if width is None:
        return arch
    from engine.model.families import spec_family  # brings torch; the spec was read with it

    if not spec_family(arch).scalable:
        raise UserError(f"--width applies to the dy-yolov7 family only, not {arch.family}")
    return replace(arch, width_multiple=width)


def check_positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{name} must be positive, got {value}")


def add_model_arguments(parser) -> None:
    """--weights/--config/--backend/--imgsz/--conf/--iou/--threads/--workers/--names, shared by the streaming
    commands."""
    parser.add_argument("--weights", help="model file (default: the bundled model)")
    parser.add_argument("--config", help="architecture YAML for reference checkpoints (ours or theirs)")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
                        help="inference backend (auto: PyTorch on CUDA; on a CPU the faster of ONNX Runtime and "
                             "OpenVINO for this model, measured once and remembered)")
    parser.add_argument("--imgsz", type=int, help="network input size (default: the model's)")
    parser.add_argument("--conf", type=finite_float, default=0.25, help="confidence threshold")
    parser.add_argument("--iou", type=finite_float, default=0.45,
                        help="NMS IoU threshold (YOLO family; Faster R-CNN applies its own)")
    parser.add_argument("--threads", type=int, help="inference threads per worker (default: backend's choice)")
    parser.add_argument("--workers", type=int,
                        help="frames the engine runs at once, each on its own thread (default: 2 for ONNX Runtime "
                             "and OpenVINO on a CPU with 2 or more cores, else 1)")
    parser.add_argument("--names", help="class names for the model: a YAML list, or a data.yaml (its names)")


def model_options(args) -> ModelOptions:
    """The model options of a command's arguments (see :func:`add_model_arguments`)."""
    return ModelOptions(weights=args.weights, config=args.config, backend=args.backend, imgsz=args.imgsz,
                        conf=args.conf, iou=args.iou, threads=args.threads, names=args.names,
                        workers=getattr(args, "workers", None))


def load_model(options: ModelOptions, *, engine: bool = False):
    """A predictor for ``options`` (the bundled model when no weights are named), options checked first.

    ``engine``: the predictor is for the streaming engine, which runs ``options.workers`` frames at
    once (None: the backend's default); otherwise one caller uses it, with every inference thread.

    Returns:
        :class:`engine.model.loading.LoadedPredictor`.
    """
    weights = options.weights or default_weights()
    return load_predictor(weights, config=resolve_config(options.config), backend=options.backend,
                          imgsz=options.imgsz, conf=options.conf, iou=options.iou, threads=options.threads,
                          names=options.names, workers=options.workers if engine else 1)


def finite_float(text: str) -> float:
    """argparse type: a float that is a real number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


@contextlib.contextmanager
def handle_stop_signals():
    """SIGINT and SIGTERM set the yielded event instead of interrupting the process.

    They are caught from the start (loading a model takes seconds, and a Ctrl-C then must
    still end with a summary, not a traceback). Once a stop was asked for, further signals are
    ignored until the process exits, so a second Ctrl-C during shutdown cannot cut the
    summary or a recording short; without one, the previous handlers come back.
    """
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield stop
    finally:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN if stop.is_set() else previous[sig])
