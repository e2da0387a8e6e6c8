"""Detection loss of an anchor-based YOLO head: CIoU box + BCE objectness + BCE classes.

One :class:`DetectionLoss` serves every head of the model; the trainer calls it once per head
and sums the results (``sum(loss(outputs, targets).total for outputs in heads)``).

Per level ``l`` with positives from :func:`~engine.losses.assigner.assign_targets`:

- box: mean over positives of ``1 - CIoU(pred, target)``, the prediction decoded exactly as at
  inference (``xy = 2 * sigmoid - 0.5 + cell``, ``wh = (2 * sigmoid)^2 * anchor``, grid units);
- objectness: BCE over every ``(anchor, cell)``, target 0 except at positives, where it is
  the positive's CIoU (detached, clamped at 0; where two targets claim the same slot the larger
  one wins), weighted by ``balance[l]`` (deep, coarse levels have far fewer cells);
- classes: BCE of the class logits at positives against one-hot targets (optionally smoothed);
  skipped for single-class models, where objectness already is the class score.

The level terms are summed, multiplied by their gains and the total is ``N * (box + obj + cls)``
for a batch of ``N`` images, like YOLOv7: the loss grows with the batch while the learning rate
stays per image. Gains are given for 3 levels, 80 classes and 640 px inputs (YOLOv7's
reference); with ``scale_gains`` they are rescaled as YOLOv7 does: ``box *= 3 / L``,
``cls *= C / 80 * 3 / L``, ``obj *= (image_size / 640)^2 * 3 / L``.

``per_image`` holds each image's loss as if it were alone in the batch (its own positives'
means; the objectness mean over its own cells), detached: what the router loss compares between
the two detectors. The batch ``total`` averages box and class terms over all positives of the
batch instead, so ``total == per_image.sum()`` holds exactly for a single image (the router
stage runs with batch size 1) and for batches of identical images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from engine.losses.assigner import LevelAssignment, assign_targets
from engine.losses.box_ops import bbox_ciou

logger = logging.getLogger(__name__)

DEFAULT_BALANCE: dict[int, tuple[float, ...]] = {
    3: (4.0, 1.0, 0.4),
    4: (4.0, 1.0, 0.25, 0.06),
    5: (4.0, 1.0, 0.25, 0.06, 0.02),
}


class AnchorHead(Protocol):
    """What :meth:`DetectionLoss.from_head` reads from a head."""

    anchors: torch.Tensor
    strides: Sequence[int]


@dataclass(frozen=True)
class LossOutput:
    """Loss of one head on one batch.

    Attributes:
        total: scalar to back-propagate, ``N * (box + obj + cls)``.
        parts: detached scalars ``box``, ``obj``, ``cls``, gains applied, averaged over the batch
            (``total == N * sum(parts)``).
        per_image: ``[N]`` detached loss of each image on its own, the same terms and gains.
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor]
    per_image: torch.Tensor


class DetectionLoss:
    """YOLOv7-style loss for raw head outputs ``[N, A, H_l, W_l, 5 + C]`` per level."""

    def __init__(self, num_classes: int, anchors: torch.Tensor, strides: Sequence[int], *,
                 box_gain: float = 0.05, obj_gain: float = 1.0, cls_gain: float = 0.5,
                 balance: Sequence[float] | None = None, anchor_t: float = 4.0, label_smoothing: float = 0.0,
                 scale_gains: bool = True, image_size: int = 640) -> None:
        """Args:
            num_classes: number of classes ``C``.
            anchors: ``[L, A, 2]`` anchor sizes in input pixels (copied).
            strides: ``L`` level strides in input pixels.
            box_gain, obj_gain, cls_gain: weights of the three terms.
            balance: per-level objectness weights; default from :data:`DEFAULT_BALANCE`.
            anchor_t: anchor shape-match threshold of the assigner.
            label_smoothing: ``eps`` in [0, 1): class targets become ``1 - eps/2`` and ``eps/2``.
            scale_gains: rescale the gains for ``L``, ``C`` and ``image_size`` (module docstring).
            image_size: training input side, used by ``scale_gains``.
        """
        levels = len(strides)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if anchors.ndim != 3 or anchors.shape[0] != levels or anchors.shape[2] != 2:
            raise ValueError(f"anchors must be [levels={levels}, A, 2], got {tuple(anchors.shape)}")
        if balance is None and levels not in DEFAULT_BALANCE:
            raise ValueError(f"no default objectness balance for {levels} levels; pass balance=")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.balance = tuple(float(b) for b in (balance if balance is not None else DEFAULT_BALANCE[levels]))
        if len(self.balance) != levels:
            raise ValueError(f"balance has {len(self.balance)} values for {levels} levels")
        self.num_classes = num_classes
        self.anchors_px = anchors.detach().float().cpu().clone()
        self.strides = tuple(int(s) for s in strides)
        self.anchor_t = anchor_t
        self.positive_target = 1.0 - label_smoothing / 2
        self.negative_target = label_smoothing / 2
        scale = 3.0 / levels if scale_gains else 1.0
        self.box_gain = box_gain * scale
        self.cls_gain = cls_gain * scale * (num_classes / 80.0 if scale_gains else 1.0)
        self.obj_gain = obj_gain * scale * ((image_size / 640.0) ** 2 if scale_gains else 1.0)

    @classmethod
    def from_head(cls, head: AnchorHead, num_classes: int | None = None, **kwargs: Any) -> DetectionLoss:
        """Loss for ``head``, reading its ``anchors``, ``strides`` and (if present) ``num_classes``."""
        if num_classes is None:
            num_classes = getattr(head, "num_classes", None)
            if num_classes is None:
                raise ValueError("the head has no num_classes attribute; pass num_classes=")
        return cls(num_classes, head.anchors, head.strides, **kwargs)

    def __call__(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> LossOutput:
        """Compute the loss.

        Args:
            outputs: per level raw logits ``[N, A, H_l, W_l, 5 + C]`` (tx, ty, tw, th, obj, classes).
            targets: ``[M, 6]`` rows ``(image_index, class, cx, cy, w, h)`` in input pixels.

        Returns:
            The batch loss, its detached parts and the detached per-image losses.
        """
        self._check(outputs, targets)
        batch = outputs[0].shape[0]
        device = outputs[0].device
        targets = targets.to(device, torch.float32)
        shapes = [(int(raw.shape[2]), int(raw.shape[3])) for raw in outputs]
        assignments = assign_targets(targets, self.anchors_px.to(device), self.strides, shapes, self.anchor_t)
        terms = {name: torch.zeros(batch, device=device) for name in ("box", "obj", "cls")}  # per image
        batch_terms = {name: torch.zeros((), device=device) for name in ("box", "cls")}
        for raw, assigned, weight in zip(outputs, assignments, self.balance):
            box_per_image, box_batch, cls_per_image, cls_batch, obj_per_image = self._level(raw, assigned)
            terms["box"] = terms["box"] + box_per_image
            terms["cls"] = terms["cls"] + cls_per_image
            terms["obj"] = terms["obj"] + weight * obj_per_image
            batch_terms["box"] = batch_terms["box"] + box_batch
            batch_terms["cls"] = batch_terms["cls"] + cls_batch
        gains = {"box": self.box_gain, "obj": self.obj_gain, "cls": self.cls_gain}
        # Every image has the same number of cells, so the batch objectness mean is the mean of
        # the per-image means; box and class terms are averaged over the batch's positives.
        parts = {"box": batch_terms["box"] * gains["box"], "obj": terms["obj"].mean() * gains["obj"],
                 "cls": batch_terms["cls"] * gains["cls"]}
        total = (parts["box"] + parts["obj"] + parts["cls"]) * batch
        per_image = sum(terms[name] * gains[name] for name in terms)
        return LossOutput(total=total, parts={k: v.detach() for k, v in parts.items()},
                          per_image=per_image.detach())

    def _level(self, raw: torch.Tensor, assigned: LevelAssignment) -> tuple[torch.Tensor, ...]:
        """Box, class and objectness terms of one level: per image ``[N]`` and batch scalars."""
        batch = raw.shape[0]
        picked = raw[assigned.image, assigned.anchor, assigned.grid_y, assigned.grid_x]  # [P, 5 + C]
        xy = picked[:, 0:2].sigmoid() * 2.0 - 0.5
        wh = (picked[:, 2:4].sigmoid() * 2.0) ** 2 * assigned.anchors
        ciou = bbox_ciou(torch.cat([xy, wh], dim=1), assigned.box)  # [P]
        box_per_image, box_batch = _means(1.0 - ciou, assigned.image, batch)
        if self.num_classes > 1:
            cls_target = torch.full_like(picked[:, 5:], self.negative_target)  # [P, C]
            cls_target[torch.arange(len(assigned), device=raw.device), assigned.classes] = self.positive_target
            cls_bce = F.binary_cross_entropy_with_logits(picked[:, 5:], cls_target, reduction="none").mean(dim=1)
            cls_per_image, cls_batch = _means(cls_bce, assigned.image, batch)
        else:
            cls_per_image, cls_batch = torch.zeros(batch, device=raw.device), torch.zeros((), device=raw.device)
        obj_target = _objectness_target(raw, assigned, ciou.detach().clamp(min=0).to(raw.dtype))
        obj_bce = F.binary_cross_entropy_with_logits(raw[..., 4], obj_target, reduction="none")  # [N, A, H, W]
        return box_per_image, box_batch, cls_per_image, cls_batch, obj_bce.flatten(1).mean(dim=1)

    def _check(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> None:
        if len(outputs) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} output levels, got {len(outputs)}")
        anchors_per_level = self.anchors_px.shape[1]
        for level, raw in enumerate(outputs):
            if raw.ndim != 5 or raw.shape[1] != anchors_per_level or raw.shape[4] != 5 + self.num_classes:
                raise ValueError(f"level {level}: expected [N, {anchors_per_level}, H, W, {5 + self.num_classes}], "
                                 f"got {tuple(raw.shape)}")
        if targets.ndim != 2 or targets.shape[1] != 6:
            raise ValueError(f"targets must be [M, 6] (image, class, cx, cy, w, h), got {tuple(targets.shape)}")
        # Checked only on the CPU, where it costs no device synchronisation (collated targets live there).
        if targets.device.type == "cpu" and len(targets):
            if targets[:, 1].min() < 0 or targets[:, 1].max() >= self.num_classes:
                raise ValueError(f"target class ids must be in 0..{self.num_classes - 1}, "
                                 f"got {targets[:, 1].min():.0f}..{targets[:, 1].max():.0f}")
            if targets[:, 0].min() < 0 or targets[:, 0].max() >= outputs[0].shape[0]:
                raise ValueError(f"target image indices must be in 0..{outputs[0].shape[0] - 1}")


def _means(values: torch.Tensor, image: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of per-positive ``values`` ``[P]`` per image ``[N]`` and over the whole batch (0 when empty)."""
    sums = torch.zeros(batch, device=values.device, dtype=values.dtype).index_add(0, image, values)
    counts = torch.bincount(image, minlength=batch).to(values.dtype)
    return sums / counts.clamp(min=1), sums.sum() / counts.sum().clamp(min=1)


def _objectness_target(raw: torch.Tensor, assigned: LevelAssignment, quality: torch.Tensor) -> torch.Tensor:
    """``[N, A, H, W]`` zeros with each positive slot set to its quality (the larger on collisions)."""
    batch, anchors, height, width = raw.shape[:4]
    target = torch.zeros(batch * anchors * height * width, device=raw.device, dtype=raw.dtype)
    flat = ((assigned.image * anchors + assigned.anchor) * height + assigned.grid_y) * width + assigned.grid_x
    target.scatter_reduce_(0, flat, quality, reduce="amax")
    return target.view(batch, anchors, height, width)
