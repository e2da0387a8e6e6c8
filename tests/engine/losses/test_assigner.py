"""Target-to-anchor assignment: shape matching, neighbour cells, borders, empty input."""

from __future__ import annotations

import pytest
import torch

from engine.losses.assigner import assign_targets

STRIDES = (8, 16)
SHAPES = [(8, 8), (4, 4)]  # a 64 x 64 input
ANCHORS = torch.tensor([[[10.0, 10.0], [50.0, 50.0]], [[20.0, 40.0], [64.0, 64.0]]])  # [L=2, A=2, 2] px


def _cells(assigned) -> set[tuple[int, int, int]]:
    return {(int(a), int(x), int(y)) for a, x, y in zip(assigned.anchor, assigned.grid_x, assigned.grid_y)}


def test_empty_targets_give_empty_levels() -> None:
    levels = assign_targets(torch.zeros(0, 6), ANCHORS, STRIDES, SHAPES)
    assert len(levels) == 2
    for level in levels:
        assert len(level) == 0 and level.box.shape == (0, 4) and level.anchors.shape == (0, 2)
        assert level.image.dtype == torch.long and level.grid_x.dtype == torch.long


def test_centre_cell_plus_nearest_neighbours() -> None:
    # Centre (2.3, 3.7) cells at stride 8: left neighbour along x, lower neighbour along y.
    targets = torch.tensor([[1.0, 4.0, 2.3 * 8, 3.7 * 8, 12.0, 9.0]])
    level = assign_targets(targets, ANCHORS, STRIDES, SHAPES)[0]
    assert _cells(level) == {(0, 2, 3), (0, 1, 3), (0, 2, 4)}  # (anchor, x, y); anchor 1 (50 px) too big
    boxes = {(int(x), int(y)): b.tolist() for x, y, b in zip(level.grid_x, level.grid_y, level.box)}
    assert boxes[(2, 3)] == pytest.approx([0.3, 0.7, 1.5, 1.125], abs=1e-5)
    assert boxes[(1, 3)][:2] == pytest.approx([1.3, 0.7], abs=1e-5)
    assert boxes[(2, 4)][:2] == pytest.approx([0.3, -0.3], abs=1e-5)
    assert level.image.tolist() == [1, 1, 1] and level.classes.tolist() == [4, 4, 4]
    assert level.anchors.tolist() == [[1.25, 1.25]] * 3


@pytest.mark.parametrize(("centre", "expected_cells"), [
    ((2.0, 2.0), {(0, 0)}),  # top-left corner: both neighbours would be outside
    ((64.0, 64.0), {(7, 7)}),  # exactly on the far border: clamped into the last cell
    ((62.0, 3.0), {(7, 0)}),  # top-right corner
    ((61.0, 6.0), {(7, 0), (7, 1)}),  # right edge: the right neighbour is outside, the lower one is not
])
def test_border_targets_skip_cells_outside_the_grid(centre: tuple[float, float], expected_cells: set) -> None:
    targets = torch.tensor([[0.0, 0.0, *centre, 10.0, 10.0]])
    level = assign_targets(targets, ANCHORS, STRIDES, SHAPES)[0]
    assert {(x, y) for _, x, y in _cells(level)} == expected_cells
    assert (level.grid_x >= 0).all() and (level.grid_x < 8).all() and (level.grid_y >= 0).all()


@pytest.mark.parametrize(("size", "matched"), [
    ((10.0, 10.0), {0}),
    ((12.0, 39.0), {0}),  # height ratio 3.9 still matches the 10 px anchor
    ((13.0, 41.0), {1}),  # 4.1 x the small anchor: rejected; 50/13 = 3.8 fits the large one
    ((2.0, 2.0), set()),  # 5 x smaller than the smallest anchor: no positive on this level
    ((30.0, 30.0), {0, 1}),
])
def test_anchor_shape_ratio_threshold(size: tuple[float, float], matched: set[int]) -> None:
    targets = torch.tensor([[0.0, 0.0, 28.0, 28.0, *size]])
    level = assign_targets(targets, ANCHORS, STRIDES, SHAPES, anchor_t=4.0)[0]
    assert set(level.anchor.tolist()) == matched


def test_offsets_reconstruct_the_centre_within_reach() -> None:
    generator = torch.Generator().manual_seed(0)
    count = 50
    targets = torch.cat([torch.randint(0, 3, (count, 1), generator=generator).float(),
                         torch.randint(0, 5, (count, 1), generator=generator).float(),
                         torch.rand(count, 2, generator=generator) * 64,
                         torch.rand(count, 2, generator=generator) * 40 + 8], dim=1)
    for stride, level in zip(STRIDES, assign_targets(targets, ANCHORS, STRIDES, SHAPES)):
        cells = torch.stack([level.grid_x, level.grid_y], dim=1).float()
        rows = targets[level.target_index]
        torch.testing.assert_close(cells + level.box[:, :2], rows[:, 2:4] / stride)
        torch.testing.assert_close(level.box[:, 2:], rows[:, 4:6] / stride)
        assert (level.box[:, :2] > -0.5).all() and (level.box[:, :2] < 1.5).all()
        torch.testing.assert_close(level.image.float(), rows[:, 0])
    # Every target finds at least one positive somewhere: sizes 8..48 px fit these anchors.
    indices = torch.cat([level.target_index for level in assign_targets(targets, ANCHORS, STRIDES, SHAPES)])
    assert set(indices.tolist()) == set(range(count))


def test_rejects_malformed_inputs() -> None:
    with pytest.raises(ValueError, match=r"\[M, 6\]"):
        assign_targets(torch.zeros(3, 5), ANCHORS, STRIDES, SHAPES)
    with pytest.raises(ValueError, match="must agree"):
        assign_targets(torch.zeros(0, 6), ANCHORS, (8,), SHAPES)
