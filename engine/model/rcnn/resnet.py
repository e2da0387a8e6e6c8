"""A ResNet trunk for two-stage detectors, with its stages addressed by name and a fuse hook.

The modules keep torchvision's attribute names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``),
so a torchvision ResNet or Faster R-CNN state dict loads into it unchanged. The hook lets the
composite link add backbone-1 features into each stage's input of backbone 2.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

#: Stage names, shallow to deep (the FPN's input levels), and the torchvision layer of each.
STAGES = ("c2", "c3", "c4", "c5")
_LAYERS = dict(zip(STAGES, ("layer1", "layer2", "layer3", "layer4")))
#: Block type and blocks per stage of each depth.
_BLOCKS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3)),
}

FuseHook = Callable[[str, torch.Tensor], torch.Tensor]

#: Batch-norm kinds: ``frozen`` (fixed statistics, for starting from pretrained weights) or
#: ``batch`` (statistics learned in training, for starting from scratch).
NORMS = {"frozen": FrozenBatchNorm2d, "batch": nn.BatchNorm2d}


def stage_channels(depth: int, width: int = 64) -> dict[str, int]:
    """Output channels of each stage of a ResNet of ``depth`` layers and base ``width``."""
    block = _BLOCKS[depth][0]
    return {name: width * 2**i * block.expansion for i, name in enumerate(STAGES)}


def stage_input_channels(depth: int, width: int = 64) -> dict[str, int]:
    """Input channels of each stage (the stem gives ``width``; later stages read the previous one)."""
    outputs = stage_channels(depth, width)
    return {"c2": width, **{name: outputs[prev] for prev, name in itertools.pairwise(STAGES)}}


class ResNetBody(nn.Module):
    """Stem and four stages of a ResNet (no pooling head), from torchvision's residual blocks.

    At the default width of 64 the module tree, names and shapes are torchvision's ResNet's.

    Args:
        depth: 18, 34, 50 or 101.
        frozen_stages: how many of stem, c2, ... stay frozen in training (torchvision's
            detection models train the last three stages: ``frozen_stages=2``).
        norm: ``frozen`` or ``batch`` (see :data:`NORMS`).
        width: channels of the stem and of the first stage's blocks (each later stage doubles them).
    """

    def __init__(self, depth: int = 50, frozen_stages: int = 0, norm: str = "frozen", width: int = 64) -> None:
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(_BLOCKS)}, got {depth}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
        if width < 8 or width % 8:
            raise ValueError(f"ResNet width must be a positive multiple of 8, got {width}")
        block, counts = _BLOCKS[depth]
        norm_layer = NORMS[norm]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = width
        for i, (name, count) in enumerate(zip(STAGES, counts)):
            planes = width * 2**i
            layer, channels = _stage(block, channels, planes, count, 1 if i == 0 else 2, norm_layer)
            setattr(self, _LAYERS[name], layer)
        self.channels = stage_channels(depth, width)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
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

    def fuse(self) -> None:
        """Fold every batch-norm into the convolution before it (inference only)."""
        pairs = [(self, "conv1", "bn1")]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                pairs += [(block, f"conv{i}", f"bn{i}") for i in (1, 2, 3) if hasattr(block, f"bn{i}")]
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        for owner, conv, norm in pairs:
            bn = getattr(owner, norm)
            if isinstance(bn, nn.Identity):
                continue
            setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv).eval(), _as_batch_norm(bn)))
            setattr(owner, norm, nn.Identity())


def _as_batch_norm(bn: nn.Module) -> nn.BatchNorm2d:
    """An eval-mode ``BatchNorm2d`` with ``bn``'s statistics (frozen batch-norm has the same four)."""
    if isinstance(bn, nn.BatchNorm2d):
        return bn.eval()
    plain = nn.BatchNorm2d(bn.weight.numel(), eps=bn.eps).eval()
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(plain, name).copy_(getattr(bn, name))
    return plain


def _stage(block: type[BasicBlock] | type[Bottleneck], in_channels: int, planes: int, count: int, stride: int,
           norm_layer: type[nn.Module]) -> tuple[nn.Sequential, int]:
    """One stage of ``count`` blocks; the first projects the shortcut when the shape changes."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   norm_layer(out_channels))
    blocks = [block(in_channels, planes, stride, downsample, norm_layer=norm_layer)]
    blocks += [block(out_channels, planes, norm_layer=norm_layer) for _ in range(count - 1)]
    return nn.Sequential(*blocks), out_channels
