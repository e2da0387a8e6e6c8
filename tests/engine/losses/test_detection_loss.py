"""DetectionLoss: finite values, empty targets, decode consistency, per-image terms, fitting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from engine.losses.assigner import assign_targets
from engine.losses.detection_loss import DetectionLoss

ANCHORS = torch.tensor([[[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]],
                        [[30.0, 61.0], [62.0, 45.0], [59.0, 119.0]],
                        [[116.0, 90.0], [156.0, 198.0], [373.0, 326.0]]])  # [3, 3, 2] px
STRIDES = (8, 16, 32)
IMGSZ = 64
NUM_CLASSES = 3
TARGETS = torch.tensor([[0.0, 1.0, 30.0, 26.0, 20.0, 16.0],
                        [1.0, 2.0, 40.0, 40.0, 40.0, 50.0],
                        [1.0, 0.0, 8.0, 60.0, 10.0, 8.0]])


def _outputs(batch: int = 2, num_classes: int = NUM_CLASSES, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, IMGSZ // s, IMGSZ // s, 5 + num_classes, generator=generator, requires_grad=True)
            for s in STRIDES]


def _loss(**kwargs) -> DetectionLoss:
    return DetectionLoss(NUM_CLASSES, ANCHORS, STRIDES, image_size=IMGSZ, **kwargs)


class TinyHead(nn.Module):
    """A 1x1 conv per level on fixed features, shaped like the real head's training output."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.anchors, self.strides, self.num_classes = ANCHORS, STRIDES, NUM_CLASSES
        self.predictors = nn.ModuleList(nn.Conv2d(channels, 3 * (5 + NUM_CLASSES), 1) for _ in STRIDES)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for conv, x in zip(self.predictors, features):
            y = conv(x)
            n, _, h, w = y.shape
            outputs.append(y.view(n, 3, 5 + NUM_CLASSES, h, w).permute(0, 1, 3, 4, 2))  # [N, A, H, W, 5+C]
        return outputs


def test_loss_is_finite_and_backpropagates() -> None:
    outputs = _outputs()
    result = _loss()(outputs, TARGETS)
    assert result.total.ndim == 0 and torch.isfinite(result.total)
    assert set(result.parts) == {"box", "obj", "cls"} and all(not p.requires_grad for p in result.parts.values())
    assert result.per_image.shape == (2,) and not result.per_image.requires_grad
    result.total.backward()
    assert all(o.grad is not None and torch.isfinite(o.grad).all() for o in outputs)


def test_no_targets_leaves_only_objectness() -> None:
    outputs = _outputs()
    result = _loss()(outputs, torch.zeros(0, 6))
    assert result.parts["box"] == 0 and result.parts["cls"] == 0 and result.parts["obj"] > 0
    result.total.backward()
    assert torch.isfinite(outputs[0].grad).all()


def test_prediction_decoding_to_the_target_gives_zero_box_loss() -> None:
    """Raw values set so that the inference decoding reproduces each target exactly."""
    outputs = [torch.full((2, 3, IMGSZ // s, IMGSZ // s, 5 + NUM_CLASSES), -8.0) for s in STRIDES]
    shapes = [(o.shape[2], o.shape[3]) for o in outputs]
    for raw, level in zip(outputs, assign_targets(TARGETS, ANCHORS, STRIDES, shapes)):
        # Inverting xy = (2s - 0.5 + cell) * stride and wh = (2s)^2 * anchor for s = sigmoid(raw).
        xy_sigmoid = (level.box[:, :2] + 0.5) / 2
        wh_sigmoid = torch.sqrt(level.box[:, 2:] / level.anchors) / 2
        raw[level.image, level.anchor, level.grid_y, level.grid_x, :4] = torch.logit(
            torch.cat([xy_sigmoid, wh_sigmoid], dim=1))
    assert _loss()(outputs, TARGETS).parts["box"] < 1e-4


def test_per_image_is_each_image_alone() -> None:
    loss = _loss()
    outputs = _outputs(batch=2)
    per_image = loss(outputs, TARGETS).per_image
    for index in range(2):
        rows = TARGETS[TARGETS[:, 0] == index].clone()
        rows[:, 0] = 0
        alone = loss([o[index:index + 1] for o in outputs], rows)
        torch.testing.assert_close(per_image[index], alone.per_image[0])
        torch.testing.assert_close(alone.total.detach(), alone.per_image[0])


def test_total_equals_sum_of_per_image_for_identical_images() -> None:
    single = _outputs(batch=1)
    outputs = [o.detach().expand(3, -1, -1, -1, -1) for o in single]
    rows = TARGETS[TARGETS[:, 0] == 0]
    targets = torch.cat([rows.clone().index_fill_(1, torch.tensor([0]), float(i)) for i in range(3)])
    result = _loss()(outputs, targets)
    torch.testing.assert_close(result.total, result.per_image.sum())
    torch.testing.assert_close(result.total, 3 * sum(result.parts.values()))


def test_fitting_one_target_lowers_the_loss() -> None:
    torch.manual_seed(0)
    head = TinyHead()
    features = [torch.randn(1, 8, IMGSZ // s, IMGSZ // s) for s in STRIDES]
    loss = DetectionLoss.from_head(head, image_size=IMGSZ)
    target = torch.tensor([[0.0, 1.0, 30.0, 26.0, 20.0, 16.0]])
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    history = []
    for _ in range(30):
        result = loss(head(features), target)
        optimizer.zero_grad()
        result.total.backward()
        optimizer.step()
        history.append(result)
    assert history[-1].total < 0.3 * history[0].total
    assert history[-1].parts["box"] < 0.5 * history[0].parts["box"]
    assert history[-1].parts["cls"] < 0.5 * history[0].parts["cls"]


def test_single_class_has_no_class_term() -> None:
    loss = DetectionLoss(1, ANCHORS, STRIDES, image_size=IMGSZ)
    targets = TARGETS.clone()
    targets[:, 1] = 0
    assert loss(_outputs(num_classes=1), targets).parts["cls"] == 0


def test_label_smoothing_softens_class_targets() -> None:
    plain, smooth = _loss(), _loss(label_smoothing=0.1)
    assert (smooth.positive_target, smooth.negative_target) == pytest.approx((0.95, 0.05))
    outputs = _outputs()
    assert smooth(outputs, TARGETS).parts["cls"] != plain(outputs, TARGETS).parts["cls"]


def test_four_levels_use_their_default_balance() -> None:
    anchors = torch.cat([ANCHORS, ANCHORS[-1:] * 2])
    loss = DetectionLoss(NUM_CLASSES, anchors, (8, 16, 32, 64), image_size=128)
    assert loss.balance == (4.0, 1.0, 0.25, 0.06)
    outputs = [torch.randn(1, 3, 128 // s, 128 // s, 5 + NUM_CLASSES) for s in (8, 16, 32, 64)]
    assert torch.isfinite(loss(outputs, torch.tensor([[0.0, 0.0, 64.0, 64.0, 100.0, 90.0]])).total)


def test_gain_scaling_matches_reference_setting() -> None:
    reference = DetectionLoss(80, ANCHORS, STRIDES, image_size=640)
    assert (reference.box_gain, reference.obj_gain, reference.cls_gain) == pytest.approx((0.05, 1.0, 0.5))
    small = DetectionLoss(8, ANCHORS, STRIDES, image_size=320)
    assert (small.obj_gain, small.cls_gain) == pytest.approx((0.25, 0.05))


def test_from_head_and_contract_errors() -> None:
    head = SimpleNamespace(anchors=ANCHORS, strides=STRIDES)
    with pytest.raises(ValueError, match="num_classes"):
        DetectionLoss.from_head(head)
    loss = DetectionLoss.from_head(head, num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="level 0"):
        loss([torch.zeros(1, 3, 8, 8, 7), *_outputs(batch=1)[1:]], TARGETS[:1])
    with pytest.raises(ValueError, match="class ids"):
        loss(_outputs(), torch.tensor([[0.0, 3.0, 10.0, 10.0, 5.0, 5.0]]))


def test_consistent_with_the_model_heads_inference_decoding() -> None:
    """The positives' boxes, decoded as the loss decodes them, are ``DetectHead.decode``'s boxes."""
    from engine.model.head import DetectHead

    head = DetectHead([4, 4, 4], NUM_CLASSES, ANCHORS, STRIDES)
    raw = [torch.randn(2, 3, IMGSZ // s, IMGSZ // s, 5 + NUM_CLASSES) for s in STRIDES]
    shapes = [(r.shape[2], r.shape[3]) for r in raw]
    decoded = head.decode(raw)  # [N, sum H*W*A, 5 + C]: level-major, then row, column, anchor
    offset = 0
    for level_raw, stride, level in zip(raw, STRIDES, assign_targets(TARGETS, ANCHORS, STRIDES, shapes)):
        picked = level_raw[level.image, level.anchor, level.grid_y, level.grid_x]  # [P, 5 + C]
        cells = torch.stack([level.grid_x, level.grid_y], dim=1)
        xy = (picked[:, :2].sigmoid() * 2 - 0.5 + cells) * stride
        wh = (picked[:, 2:4].sigmoid() * 2) ** 2 * level.anchors * stride
        height, width = level_raw.shape[2:4]
        rows = offset + (level.grid_y * width + level.grid_x) * 3 + level.anchor
        torch.testing.assert_close(decoded[level.image, rows, :4], torch.cat([xy, wh], dim=1))
        offset += 3 * height * width
    features = [torch.randn(2, 4, IMGSZ // s, IMGSZ // s) for s in STRIDES]
    assert torch.isfinite(DetectionLoss.from_head(head, image_size=IMGSZ)(head(features), TARGETS).total)
