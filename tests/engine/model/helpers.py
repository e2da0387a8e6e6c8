"""Building tiny models with every parameter and buffer randomised (so every part matters)."""

from __future__ import annotations

import numpy as np
import torch

from engine.model.build import build_dynamic_detector
from engine.model.detector import DynamicDetector
from engine.model.families import LoadedModel
from engine.model.variants import tiny_variant


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("anchors"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
    return model


def tiny_model(seed: int = 0, **overrides) -> DynamicDetector:
    return tiny_loaded(seed, **overrides).model


def tiny_loaded(seed: int = 0, **overrides) -> LoadedModel:
    """:func:`tiny_model` with its spec, as a model file holds it."""
    torch.manual_seed(seed)
    spec = tiny_variant(**overrides)
    return LoadedModel(randomise(build_dynamic_detector(spec), seed).eval(), spec)


def cell_major(predictions, image_size: tuple[int, int], head) -> np.ndarray:
    """The reference's decoded predictions (anchor before cell within a level) in our row order
    (cell before anchor, see :class:`~engine.model.head.DetectHead`): the same rows, permuted."""
    predictions = np.asarray(predictions)
    batch, _, outputs = predictions.shape
    parts, start = [], 0
    for stride in head.strides:
        cells = (image_size[0] // stride) * (image_size[1] // stride)
        level = predictions[:, start:start + head.num_anchors * cells]
        parts.append(level.reshape(batch, head.num_anchors, cells, outputs).transpose(0, 2, 1, 3)
                     .reshape(batch, -1, outputs))
        start += head.num_anchors * cells
    assert start == predictions.shape[1], "the predictions do not fit the image size"
    return np.concatenate(parts, 1)
