"""A ResNet trunk for two-stage detectors, with its stages addressed by name and a fuse hook.

The modules keep torchvision's attribute names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``),
so a torchvision ResNet or Faster R-CNN state dict loads into it unchanged. The hook lets the
composite link add backbone-1 features into each stage's input of backbone 2.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

#: Stage names, shallow to deep (the FPN's input levels), and the torchvision layer of each.
STAGES = ("c2", "c3", "c4", "c5")
_LAYERS = dict(zip(STAGES, ("layer1", "layer2", "layer3", "layer4")))
_BUILDERS = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50,
             101: torchvision.models.resnet101}

FuseHook = Callable[[str, torch.Tensor], torch.Tensor]


def stage_channels(depth: int) -> dict[str, int]:
    """Output channels of each stage of a ResNet of ``depth`` layers."""
    width = 64 if depth < 50 else 256
    return {name: width * 2**i for i, name in enumerate(STAGES)}


def stage_input_channels(depth: int) -> dict[str, int]:
    """Input channels of each stage (the stem gives 64; later stages read the previous one)."""
    outputs = stage_channels(depth)
    return {"c2": 64, **{name: outputs[prev] for prev, name in itertools.pairwise(STAGES)}}


class ResNetBody(nn.Module):
    """Stem and four stages of a torchvision ResNet (no pooling head), frozen batch-norm.

    Args:
        depth: 18, 34, 50 or 101.
        frozen_stages: how many of stem, c2, ... stay frozen in training (torchvision's
            detection models train the last three stages: ``frozen_stages=2``).
    """

    def __init__(self, depth: int = 50, frozen_stages: int = 0) -> None:
        super().__init__()
        if depth not in _BUILDERS:
            raise ValueError(f"ResNet depth must be one of {sorted(_BUILDERS)}, got {depth}")
        net = _BUILDERS[depth](weights=None, norm_layer=FrozenBatchNorm2d)
        self.depth = depth
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = stage_channels(depth)
        frozen = [self.conv1, self.layer1, self.layer2, self.layer3, self.layer4][:frozen_stages]
        for module in frozen:
            module.requires_grad_(False)

    def stage(self, name: str) -> nn.Module:
        return getattr(self, _LAYERS[name])

    def forward(self, x: torch.Tensor, fuse_hook: FuseHook | None = None) -> dict[str, torch.Tensor]:
        """``x``: normalised images ``[N, 3, H, W]``. Returns each stage's output by name.

        ``fuse_hook(stage, x)`` may change the input of each stage (backbone 2's composite link).
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = {}
        for name in STAGES:
            if fuse_hook is not None:
                x = fuse_hook(name, x)
            x = self.stage(name)(x)
            features[name] = x
        return features
