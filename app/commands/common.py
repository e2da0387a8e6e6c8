"""Helpers shared by subcommands: default paths, model loading, image reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS = ROOT / "assets" / "dy-yolov7-tiny.safetensors"
DEFAULT_VIDEO = ROOT / "assets" / "demo.mp4"
MODEL_CONFIGS = ROOT / "configs" / "models"


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
    named = MODEL_CONFIGS / f"{value}.yaml"
    if named.exists():
        return named
    raise UserError(f"config not found: {value} (give a path or one of: "
                    f"{', '.join(sorted(p.stem for p in MODEL_CONFIGS.glob('*.yaml')))})")


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


def check_positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{name} must be positive, got {value}")
