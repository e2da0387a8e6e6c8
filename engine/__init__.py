"""DynaStream engine: the dynamic detector, its training and its streaming runtime.

The package root stays free of heavy imports so that torch-free consumers (the GUI)
can import submodules such as :mod:`engine.runtime.frames` without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.model.families import LoadedModel

__all__ = ["load_model"]


def load_model(weights_path: str | Path, config_path: str | Path | None = None) -> LoadedModel:
    """Load a dynamic detector of either family for inference (eval mode, float32, CPU), with its
    spec and calibration.

    Args:
        weights_path: our own model file, or a checkpoint of the reference implementation.
        config_path: architecture description, either one of our ``configs/models`` YAML files
            or a reference ``cfg/*.yaml``; needed only when the weights do not carry it.
    """
    from engine.model.checkpoint import load_model as _load

    return _load(weights_path, config_path)
