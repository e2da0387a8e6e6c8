"""DynaStream engine: the dynamic detector, its training and its streaming runtime.

The package root stays free of heavy imports so that torch-free consumers (the GUI)
can import submodules such as :mod:`engine.runtime.frames` without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.model.detector import DynamicDetector

__all__ = ["load_detector"]


def load_detector(weights_path: str | Path, config_path: str | Path | None = None) -> DynamicDetector:
    """Load a dynamic detector for inference: eval mode, float32, CPU.

    Args:
        weights_path: our own model file, or a checkpoint of the reference implementation.
        config_path: architecture description, either one of our ``configs/models`` YAML files
            or a reference ``cfg/*.yaml``; needed only when the weights do not carry it.
    """
    from engine.model.checkpoint import load_detector as _load

    return _load(weights_path, config_path)
