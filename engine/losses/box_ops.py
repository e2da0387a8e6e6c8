"""Box helpers for the losses, built on ``torchvision.ops``."""

from __future__ import annotations

import logging

import torch
from torchvision.ops import box_convert, complete_box_iou_loss

logger = logging.getLogger(__name__)

# Predicted sizes come from (2 * sigmoid)^2 and underflow to exactly 0 for very negative logits;
# the CIoU aspect term divides by the height, so sizes are kept at least this large (in the
# caller's units, grid cells for the detection loss).
_MIN_SIZE = 1e-4


def bbox_ciou(pred_cxcywh: torch.Tensor, target_cxcywh: torch.Tensor) -> torch.Tensor:
    """Complete IoU (Zheng et al. 2020) of matching box pairs.

    CIoU = IoU - centre distance^2 / enclosing diagonal^2 - alpha * v, where v measures the
    aspect-ratio mismatch and alpha (not differentiated) weighs it. It lies in (-1.5, 1] and is
    1 only for identical boxes. Both inputs use the same units.

    Args:
        pred_cxcywh: ``[P, 4]`` predicted boxes ``cx, cy, w, h``.
        target_cxcywh: ``[P, 4]`` target boxes ``cx, cy, w, h``.

    Returns:
        ``[P]`` CIoU values, differentiable with respect to both inputs.
    """
    pred = torch.cat([pred_cxcywh[:, :2], pred_cxcywh[:, 2:].clamp(min=_MIN_SIZE)], dim=1)
    target = torch.cat([target_cxcywh[:, :2], target_cxcywh[:, 2:].clamp(min=_MIN_SIZE)], dim=1)
    loss = complete_box_iou_loss(box_convert(pred, "cxcywh", "xyxy"), box_convert(target, "cxcywh", "xyxy"))
    return 1.0 - loss
