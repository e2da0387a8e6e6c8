"""Target-to-anchor assignment for anchor-based YOLO heads (the YOLOv5-style scheme of YOLOv7's ``ComputeLoss``).

Scheme, per pyramid level (everything in grid units: pixels divided by the level's stride):

1. Shape match. A target may use anchor ``a`` when its width and height are both within a
   factor ``anchor_t`` (default 4) of the anchor's: ``max(w/aw, aw/w, h/ah, ah/h) < anchor_t``.
   The factor comes from the decoding: a predicted size is ``(2 * sigmoid)^2 * anchor``, i.e.
   between 0 and 4 times the anchor, so only such targets are reachable. A target may match
   several anchors of a level, or none (then that level ignores it).
2. Cells. Each matched (target, anchor) pair is assigned to the cell containing the target
   centre and to the two neighbouring cells nearest to the centre: the left or right neighbour,
   whichever side of its cell the centre lies on along x, and the upper or lower neighbour along
   y. Neighbours outside the grid are skipped, so border targets get fewer cells. Up to
   3 cells x matching anchors positives per level; the extra positives speed up training.
   The decoded centre ``2 * sigmoid - 0.5 + cell`` covers ``(cell - 0.5, cell + 1.5)``, so a
   neighbouring cell (offset to the centre in ``(-0.5, 1.5)``) can still predict the centre
   exactly.

The output per level gives indices into the head's raw ``[N, A, H, W, 5 + C]`` map and, for each
positive, the target box relative to the cell's top-left corner, the matched anchor and the class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LevelAssignment:
    """Positives of one pyramid level, ``P`` of them.

    Attributes:
        image: ``[P]`` image index in the batch.
        anchor: ``[P]`` anchor index within the level.
        grid_y: ``[P]`` cell row.
        grid_x: ``[P]`` cell column.
        box: ``[P, 4]`` target ``x, y`` (centre minus the cell's top-left corner) and ``w, h``,
            in grid units.
        anchors: ``[P, 2]`` matched anchor ``w, h`` in grid units.
        classes: ``[P]`` class index.
        target_index: ``[P]`` row of the assigned target in the ``targets`` input.
    """

    image: torch.Tensor
    anchor: torch.Tensor
    grid_y: torch.Tensor
    grid_x: torch.Tensor
    box: torch.Tensor
    anchors: torch.Tensor
    classes: torch.Tensor
    target_index: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.shape[0])


def assign_targets(targets: torch.Tensor, anchors_px: torch.Tensor, strides: Sequence[int],
                   level_shapes: Sequence[tuple[int, int]], anchor_t: float = 4.0) -> list[LevelAssignment]:
    """Assign ground-truth boxes to (anchor, cell) slots of every pyramid level.

    Args:
        targets: ``[M, 6]`` rows ``(image_index, class, cx, cy, w, h)`` in input pixels.
        anchors_px: ``[L, A, 2]`` anchor ``w, h`` in input pixels.
        strides: ``L`` strides, input pixels per cell.
        level_shapes: ``L`` grid sizes ``(H_l, W_l)``.
        anchor_t: largest allowed size ratio between a target and its anchor (per side).

    Returns:
        One :class:`LevelAssignment` per level, on the device of ``targets``.
    """
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(f"targets must be [M, 6] (image, class, cx, cy, w, h), got {tuple(targets.shape)}")
    if anchors_px.ndim != 3 or anchors_px.shape[-1] != 2:
        raise ValueError(f"anchors must be [L, A, 2], got {tuple(anchors_px.shape)}")
    if not len(strides) == len(level_shapes) == anchors_px.shape[0]:
        raise ValueError(f"{anchors_px.shape[0]} anchor levels, {len(strides)} strides and "
                         f"{len(level_shapes)} level shapes must agree")
    if anchor_t <= 1:
        raise ValueError(f"anchor_t must be > 1, got {anchor_t}")
    targets = targets.float()
    anchors_px = anchors_px.to(targets.device, torch.float32)
    return [_assign_level(targets, anchors_px[level] / stride, stride, shape, anchor_t)
            for level, (stride, shape) in enumerate(zip(strides, level_shapes))]


def _assign_level(targets: torch.Tensor, anchors: torch.Tensor, stride: float,
                  shape: tuple[int, int], anchor_t: float) -> LevelAssignment:
    """Assignment for one level; ``anchors`` ``[A, 2]`` already in grid units."""
    centre = targets[:, 2:4] / stride  # [M, 2] x, y in cells
    size = targets[:, 4:6] / stride  # [M, 2] w, h in cells
    ratio = size[:, None, :] / anchors[None]  # [M, A, 2]
    worst = torch.maximum(ratio, 1.0 / ratio).amax(dim=2)  # [M, A]
    target_index, anchor_index = torch.nonzero(worst < anchor_t, as_tuple=True)  # pairs, [P0] each

    xy = centre[target_index]  # [P0, 2]
    limits = torch.tensor([shape[1], shape[0]], device=targets.device)  # W, H
    # Clamping keeps centres lying exactly on the far border (x == W) inside the grid.
    cell = xy.floor().long().clamp(min=torch.zeros_like(limits), max=limits - 1)  # [P0, 2]
    toward = torch.where(xy - cell < 0.5, -1, 1)  # nearer neighbour per axis
    x_step = torch.stack([toward[:, 0], torch.zeros_like(toward[:, 0])], dim=1)
    y_step = torch.stack([torch.zeros_like(toward[:, 1]), toward[:, 1]], dim=1)
    cells = torch.stack([cell, cell + x_step, cell + y_step])  # [3, P0, 2]: own, x and y neighbours
    inside = ((cells >= 0) & (cells < limits)).all(dim=2)  # [3, P0]

    pair = torch.arange(len(target_index), device=targets.device).expand(3, -1)[inside]  # [P]
    cells = cells[inside]  # [P, 2]
    rows = target_index[pair]
    offsets = xy[pair] - cells.to(xy.dtype)  # [P, 2], in (-0.5, 1.5)
    return LevelAssignment(
        image=targets[rows, 0].long(),
        anchor=anchor_index[pair],
        grid_y=cells[:, 1],
        grid_x=cells[:, 0],
        box=torch.cat([offsets, size[rows]], dim=1),
        anchors=anchors[anchor_index[pair]],
        classes=targets[rows, 1].long(),
        target_index=rows,
    )
