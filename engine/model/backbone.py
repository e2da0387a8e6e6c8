"""YOLOv7-family backbone: named stages, each a transition then a body, returning named features."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from engine.model.arch import ArchSpec, BlockSpec, DownSpec
from engine.model.blocks import ActLayer, ConvBNAct
from engine.model.csp import ELAN, ConvDown, MaxPoolDown, PoolConvDown

# Called by a backbone between a stage's transition and its body: (stage name, features) -> features.
FuseHook = Callable[[str, torch.Tensor], torch.Tensor]


def build_down(spec: DownSpec, in_channels: int, arch: ArchSpec, act: ActLayer) -> nn.Module:
    if spec.type == "conv":
        return ConvDown(in_channels, arch.channels(spec.channels), act)
    if spec.type == "pool_conv":
        return PoolConvDown(in_channels, arch.channels(spec.channels), act)
    if spec.type == "maxpool":
        return MaxPoolDown(in_channels)
    return Passthrough(in_channels)


def build_block(spec: BlockSpec, in_channels: int, arch: ArchSpec, act: ActLayer) -> nn.Module:
    if spec.type == "conv":
        return ConvBNAct(in_channels, arch.channels(spec.out_channels), 3, 1, act)
    if spec.type == "elan":
        return ELAN(
            in_channels,
            arch.channels(spec.branch_channels),
            arch.channels(spec.chain_channels),
            arch.channels(spec.out_channels),
            depth=arch.depth(spec.depth),
            tap_every=spec.tap_every,
            act_layer=act,
        )
    return Passthrough(in_channels)


class Passthrough(nn.Identity):
    """A stage part that the architecture leaves out (no parameters, no reference layer)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.out_channels = channels

    def reference_layers(self) -> list[str | None]:
        return []


class Stage(nn.Module):
    """A transition (``down``) that sets the stage's resolution, then a body (``block``)."""

    def __init__(self, down: nn.Module, block: nn.Module) -> None:
        super().__init__()
        self.down = down
        self.block = block
        self.in_channels = down.out_channels  # channels at the fusion point, between down and block
        self.out_channels = block.out_channels


class Backbone(nn.Module):
    """Stem convs followed by named stages.

    ``forward(x)`` returns ``{stage name: feature}`` for every stage, shallow to deep.
    ``fuse_hook`` lets a composite link add features after each transition;
    ``cross_inputs`` feeds a pool-conv transition's strided branch from outside (see ArchSpec).
    """

    def __init__(self, arch: ArchSpec, act_layer: ActLayer, in_channels: int,
                 cross_stage_inputs: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.stem = nn.Sequential()
        channels = in_channels
        for c in arch.backbone.stem_channels:
            self.stem.append(ConvBNAct(channels, arch.channels(c), 3, 1, act_layer))
            channels = arch.channels(c)
        self.stages = nn.ModuleDict()
        for spec in arch.backbone.stages:
            down = build_down(spec.down, channels, arch, act_layer)
            block = build_block(spec.block, down.out_channels, arch, act_layer)
            self.stages[spec.name] = Stage(down, block)
            channels = block.out_channels
        self.cross_stage_inputs = tuple(cross_stage_inputs)
        self.out_channels = {name: stage.out_channels for name, stage in self.stages.items()}
        self.fusion_channels = {name: stage.in_channels for name, stage in self.stages.items()}

    def forward(
        self,
        x: torch.Tensor,
        fuse_hook: FuseHook | None = None,
        cross_inputs: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args:
            x: ``[N, C, H, W]`` input (the image, or its space-to-depth fold).
            fuse_hook: called as ``hook(stage, features)`` after each stage's transition.
            cross_inputs: for each name in ``cross_stage_inputs``, the feature that stage's
                strided-conv branch reads instead of the previous stage's output.

        Returns:
            ``{stage name: [N, C_stage, H / stride, W / stride]}`` in stage order.
        """
        x = self.stem(x)
        features: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            if name in self.cross_stage_inputs:
                if cross_inputs is None or name not in cross_inputs:
                    raise ValueError(f"stage {name} needs a cross input")
                x = stage.down(x, conv_input=cross_inputs[name])
            else:
                x = stage.down(x)
            if fuse_hook is not None:
                x = fuse_hook(name, x)
            x = stage.block(x)
            features[name] = x
        return features
