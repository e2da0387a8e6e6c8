"""Batching detection samples for a ``torch.utils.data.DataLoader``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torchvision.ops import box_convert

logger = logging.getLogger(__name__)


def collate_detections(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Stack images and concatenate targets, tagging each target row with its image's index.

    Args:
        batch: samples ``(image [3, H, W], targets [K_i, 5], info)`` of equal image size, as
            returned by :class:`~engine.data.datasets.DetectionDataset`.

    Returns:
        ``images [N, 3, H, W]``, ``targets [M, 6]`` rows ``(image_index, class, cx, cy, w, h)``
        with ``M = sum K_i``, and the list of ``info`` dicts.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(image.shape) for image, _, _ in batch}
    if len(shapes) != 1:
        raise ValueError(f"all images of a batch must have the same shape, got {sorted(shapes)}")
    images = torch.stack([image for image, _, _ in batch])  # [N, 3, H, W]
    rows = []
    for index, (_, targets, _) in enumerate(batch):
        image_column = torch.full((targets.shape[0], 1), float(index), dtype=targets.dtype)
        rows.append(torch.cat([image_column, targets.reshape(-1, 5)], dim=1))  # [K_i, 6]
    return images, torch.cat(rows), [info for _, _, info in batch]


def image_boxes(targets: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes ``[K]`` and ``x1, y1, x2, y2`` boxes ``[K, 4]`` of image ``index`` in collated targets."""
    rows = targets[targets[:, 0] == index]
    return rows[:, 1], box_convert(rows[:, 2:6], "cxcywh", "xyxy")
