"""Start both detectors of a Dy-Faster R-CNN from a torchvision checkpoint the user already has.

Accepted files (loaded with ``torch.load(weights_only=True)``, so nothing in them runs):
a Faster R-CNN state dict (``fasterrcnn_resnet50_fpn`` and friends: ``backbone.body.*``,
``backbone.fpn.*``, ``rpn.*``, ``roi_heads.*``) or a plain ResNet classification state dict
(``conv1.*``, ``layer1.*`` ... ``fc.*``), optionally wrapped in ``{"model": ...}`` or
``{"state_dict": ...}``. Tensors whose shape differs (the class layer of a model trained on
another class list) are left at their initial values and reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import CheckpointError
from engine.model.rcnn.detector import DyFasterRCNN, RCNNDetector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitReport:
    """What one detector took from the file."""

    loaded: int
    skipped_shape: tuple[str, ...]
    missing: tuple[str, ...]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision checkpoint file, safely loaded.

    Raises:
        CheckpointError: the file is missing, unreadable, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, refused globals: all mean "not usable"
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    for key in ("model", "state_dict"):
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
    if not isinstance(content, dict) or not any(isinstance(v, torch.Tensor) for v in content.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    return {k: v for k, v in content.items() if isinstance(v, torch.Tensor)}


def as_detector_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a plain ResNet classifier's keys onto a detector's trunk; detector keys pass through."""
    if any(key.startswith(("backbone.", "rpn.", "roi_heads.")) for key in state):
        return state
    return {f"backbone.body.{key}": value for key, value in state.items() if not key.startswith("fc.")}


def init_detector(detector: RCNNDetector, state: dict[str, torch.Tensor]) -> InitReport:
    """Copy every tensor of ``state`` whose name and shape match into ``detector``."""
    own = detector.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = tuple(sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape))
    if not usable:
        raise CheckpointError("no tensor of the file matches the detector (is it a ResNet or Faster R-CNN?)")
    detector.load_state_dict(usable, strict=False)
    missing = tuple(sorted(k for k in own if k not in usable and not k.endswith("num_batches_tracked")))
    return InitReport(len(usable), skipped, missing)


def init_from_torchvision(model: DyFasterRCNN, path: str | Path) -> tuple[InitReport, InitReport]:
    """Start both detectors from the torchvision checkpoint at ``path``; the link and router keep
    their initial values. Returns what each detector took."""
    state = as_detector_keys(read_state_dict(path))
    reports = (init_detector(model.first, state), init_detector(model.second, state))
    for name, report in zip(("detector 1", "detector 2"), reports):
        logger.info("%s: %d tensors from %s; %d kept their initial values (%d of another shape)", name,
                    report.loaded, Path(path).name, len(report.missing), len(report.skipped_shape))
    return reports
