"""Dy-Faster R-CNN's per-image losses: every region counted, the model left as it was found."""

from __future__ import annotations

import torch

from engine.losses.rcnn_loss import per_image_losses
from tests.engine.model.test_rcnn import HEIGHT, WIDTH, dynamic_with, torchvision_reference


def test_per_image_losses_leave_the_model_as_they_found_it():
    model = dynamic_with(torchvision_reference().state_dict()).eval()
    images = torch.rand(2, 3, HEIGHT, WIDTH)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    samplers = [model.first.rpn.fg_bg_sampler, model.second.roi_heads.fg_bg_sampler]
    s1 = model.stage1(images)
    first, second = per_image_losses(model, s1, targets)
    assert first.shape == second.shape == (2,)
    assert (first >= 0).all() and (second >= 0).all() and not first.requires_grad
    again = per_image_losses(model, s1, targets)  # every region counted: no sampling noise
    assert torch.equal(again[0], first) and torch.equal(again[1], second)
    assert not any(m.training for m in model.modules())
    assert [model.first.rpn.fg_bg_sampler, model.second.roi_heads.fg_bg_sampler] == samplers
    assert samplers[0].batch_size_per_image == 256
