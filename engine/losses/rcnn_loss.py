"""Each image's detection loss under each detector of a Dy-Faster R-CNN, for the router."""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch

from engine.model.rcnn.detector import DyFasterRCNN, RCNNStage1

#: A sampling budget no image reaches: the sampler then keeps every labelled region.
EVERY_REGION = 10**9


@torch.no_grad()
def per_image_losses(model: DyFasterRCNN, s1: RCNNStage1, targets: list[dict[str, torch.Tensor]]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's summed detection loss ``[N]`` under each detector, without gradients.

    Args:
        model: the cascade whose detectors are compared.
        s1: its stage-1 output for the batch.
        targets: per image, torchvision's ``{"boxes": [K, 4] xyxy, "labels": [K] class + 1}``.

    torchvision's heads average their losses over a batch, so each image runs alone. Their
    training mode is switched on for the duration (it is how they compute losses at all), but
    with every anchor and proposal counted instead of a random sample: the router compares
    the two detectors on each image, and sampled losses are mostly noise for that (measured
    on 160 validation images: two runs of the sampled difference agree at rho 0.33; counted
    in full it is repeatable and follows the images' difficulty better). The trunks keep
    whatever mode they are in, and the heads get their own mode and samplers back.
    """
    heads = [model.first.rpn, model.first.roi_heads, model.second.rpn, model.second.roi_heads]
    modes = [(m.training, m.fg_bg_sampler) for m in heads]
    for module in heads:
        module.train()
        module.fg_bg_sampler = copy.copy(module.fg_bg_sampler)
        module.fg_bg_sampler.batch_size_per_image = EVERY_REGION
    try:
        second_levels = model.second_levels(s1)
        losses = torch.zeros(2, len(s1.scores))
        for i, target in enumerate(targets):
            one = s1.select(torch.tensor([i], device=s1.scores.device))
            for row, (detector, levels) in enumerate(((model.first, one.levels),
                                                      (model.second, _pick(second_levels, i)))):
                losses[row, i] = sum(detector.detect(one.image_list(), levels, [target])[1].values())
    finally:
        for module, (mode, sampler) in zip(heads, modes):
            module.train(mode)
            module.fg_bg_sampler = sampler
    return losses[0], losses[1]


def _pick(levels: OrderedDict[str, torch.Tensor], i: int) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v[i:i + 1]) for k, v in levels.items())
