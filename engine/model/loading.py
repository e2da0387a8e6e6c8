"""One typed way to get a ready predictor from a model file: used by every command and the GUI.

Importing this module is cheap (no torch): the GUI and the command-line front end read
:class:`ModelOptions` from here before any model code is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.model.calibration import Calibration

if TYPE_CHECKING:
    from engine.model.predictor import Predictor


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how: the ``--weights``/``--backend``/... options of every command,
    the ``model:`` section of ``cameras.yaml`` and the GUI's model choice.

    Attributes:
        weights: model file; None for the bundled model (resolved by the caller).
        config: architecture YAML (a path or one of ours by name) for reference checkpoints.
    """

    weights: str | None = None
    config: str | None = None
    backend: str = "auto"
    imgsz: int | None = None
    conf: float = 0.25
    iou: float = 0.45
    threads: int | None = None  # per inference worker
    names: str | None = None  # a YAML list of class names, or a data.yaml, replacing the model's own
    workers: int | None = None  # frames the engine runs at once (None: the backend's default)


@dataclass(frozen=True)
class LoadedPredictor:
    """A predictor on its backend, with what the runtime needs to know about the model."""

    predictor: Predictor
    class_names: tuple[str, ...]
    calibration: Calibration | None


def check_model_options(*, imgsz: int | None, conf: float, iou: float, threads: int | None,
                        workers: int | None = None) -> None:
    """The model options' ranges; each problem is one UserError line naming the option."""
    if workers is not None and workers <= 0:
        raise UserError(f"--workers must be positive, got {workers}")
    for name, value in (("conf", conf), ("iou", iou)):
        if not (math.isfinite(value) and 0 <= value <= 1):
            raise UserError(f"--{name} must be between 0 and 1, got {value}")
    if threads is not None and threads <= 0:
        raise UserError(f"--threads must be positive, got {threads}")
    if imgsz is not None and (imgsz <= 0 or imgsz % 32):
        raise UserError(f"--imgsz must be a positive multiple of 32, got {imgsz}")


def load_predictor(weights: str | Path, *, config: str | Path | None = None, backend: str = "auto",
                   imgsz: int | None = None, conf: float = 0.25, iou: float = 0.45,
                   threads: int | None = None, names: str | Path | None = None,
                   workers: int | None = 1) -> LoadedPredictor:
    """Load ``weights`` (our model files or reference checkpoints) onto ``backend``.

    Args:
        weights: the model file.
        config: architecture YAML for reference checkpoints (None: recognised from the weights).
        backend: a name from :data:`engine.model.backends.BACKEND_NAMES`.
        imgsz: network input size (None: the model's own).
        conf, iou: confidence and NMS IoU thresholds.
        threads: inference threads per worker (None: the backend's choice, shared out among the workers).
        workers: how many threads will call the predictor at once (the engine's workers; 1 for
            one caller, None: :func:`~engine.model.backends.default_workers` for this backend).
        names: a YAML file with the class names (a list, or a data.yaml's ``names``), for a model
            file that lacks them or has placeholders; their count must match the model's.

    Raises:
        UserError: an option out of range, or a model file that cannot be used.
    """
    from engine.model import backends
    from engine.model.checkpoint import load_model
    from engine.model.predictor import Predictor
    from engine.model.score_scale import readable_calibration

    check_model_options(imgsz=imgsz, conf=conf, iou=iou, threads=threads, workers=workers)
    weights = Path(weights)
    loaded = load_model(weights, config)
    model = loaded.model
    if workers is None:
        workers = backends.default_workers(loaded, backend)
    if threads is None and workers > 1:
        threads = backends.worker_threads(workers)
    size = imgsz or model.input_size
    class_names = tuple(model.class_names) if names is None else read_class_names(names, len(model.class_names))
    staged = backends.make_backend(loaded, backend, threads=threads, weights_path=weights)
    # Everything downstream (thresholds, the controller, events, badges) reads the readable score.
    scale, calibration = readable_calibration(loaded.calibration)
    predictor = Predictor(staged, class_names, size, conf, iou, stride=model.stride, score_scale=scale,
                          workers=workers)
    return LoadedPredictor(predictor, class_names, calibration)


def read_class_names(path: str | Path, count: int) -> tuple[str, ...]:
    """Class names from a YAML list or a data.yaml (``names``/``nc``); exactly ``count`` of them."""
    from engine.config import load_yaml_any
    from engine.data.yolo_format import class_names

    data = load_yaml_any(path)
    names = tuple(str(n) for n in data) if isinstance(data, list) else class_names(data, Path(path))
    if len(names) != count:
        raise UserError(f"--names {path}: {len(names)} names for a model with {count} classes")
    return names
