"""Each detector family's detection loss, behind the two questions the training phases ask.

``detectors(model, images, targets)`` gives each detector's batch loss (with gradients) and its
parts; ``per_image(model, images, targets)`` gives each image's detached loss under each
detector and the router scores (with gradients), for the router's median-offset loss. Targets
arrive as the collate function makes them: ``[M, 6]`` rows ``(image, class, cx, cy, w, h)``
in input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from engine.data.collate import image_boxes
from engine.losses.detection_loss import DetectionLoss
from engine.losses.rcnn_loss import per_image_losses


@dataclass
class DetectorLoss:
    """One detector's batch loss (with gradients) and its named, detached parts."""

    total: torch.Tensor
    parts: dict[str, float]


@dataclass(frozen=True)
class LossSettings:
    """The training config's loss weights and input size, for the families that use them (the YOLO
    family's anchor loss; torchvision's Faster R-CNN heads weigh their own parts)."""

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    anchor_threshold: float = 4.0
    image_size: int = 640


class CascadeLosses(Protocol):
    def detectors(self, model: Any, images: torch.Tensor, targets: torch.Tensor
                  ) -> tuple[DetectorLoss, DetectorLoss]: ...

    def per_image(self, model: Any, images: torch.Tensor, targets: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class AnchorCascadeLosses:
    """YOLO family: the one :class:`DetectionLoss` applied to both heads' raw outputs."""

    def __init__(self, loss: DetectionLoss) -> None:
        self.loss = loss

    @classmethod
    def for_model(cls, model: Any, settings: LossSettings) -> AnchorCascadeLosses:
        """The loss for ``model``'s heads (both share anchors and strides)."""
        return cls(DetectionLoss.from_head(
            model.first.head, box_gain=settings.box, obj_gain=settings.obj, cls_gain=settings.cls,
            anchor_t=settings.anchor_threshold, image_size=settings.image_size))

    def detectors(self, model: Any, images: torch.Tensor, targets: torch.Tensor
                  ) -> tuple[DetectorLoss, DetectorLoss]:
        out = model.forward_training(images)
        results = [self.loss(raw, targets) for raw in (out.raw_first, out.raw_second)]
        return tuple(DetectorLoss(r.total, {k: float(v) for k, v in r.parts.items()}) for r in results)

    def per_image(self, model: Any, images: torch.Tensor, targets: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = model.forward_training(images)
        with torch.no_grad():
            first = self.loss(out.raw_first, targets).per_image
            second = self.loss(out.raw_second, targets).per_image
        return first, second, out.scores


class RCNNCascadeLosses:
    """Faster R-CNN family: the sum of torchvision's RPN and RoI-head losses of each detector."""

    @classmethod
    def for_model(cls, model: Any, settings: LossSettings) -> RCNNCascadeLosses:
        """torchvision's heads weigh their own loss parts: ``settings`` do not apply."""
        return cls()

    def detectors(self, model: Any, images: torch.Tensor, targets: torch.Tensor
                  ) -> tuple[DetectorLoss, DetectorLoss]:
        first, second, _ = model.forward_training(images, as_box_targets(targets, len(images)))
        return tuple(DetectorLoss(sum(d.values()), {_short(k): float(v.detach()) for k, v in d.items()})
                     for d in (first, second))

    def per_image(self, model: Any, images: torch.Tensor, targets: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s1 = model.stage1(images)
        first, second = per_image_losses(model, s1, as_box_targets(targets, len(images)))
        return first.to(s1.scores.device), second.to(s1.scores.device), s1.scores


def as_box_targets(targets: torch.Tensor, batch: int) -> list[dict[str, torch.Tensor]]:
    """Collated ``[M, 6]`` rows -> torchvision's per-image ``{"boxes": xyxy, "labels": class + 1}``."""
    out = []
    for i in range(batch):
        classes, boxes = image_boxes(targets, i)
        out.append({"boxes": boxes, "labels": classes.long() + 1})  # label 0 is torchvision's background
    return out


def _short(name: str) -> str:
    return name.removeprefix("loss_")
