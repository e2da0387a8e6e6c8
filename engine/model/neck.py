"""PAN neck of the YOLOv7 family: a pyramid-pooling top, a top-down path, a bottom-up path."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.arch import ArchSpec
from engine.model.backbone import build_block, build_down
from engine.model.blocks import ActLayer, ConvBNAct, RepConv
from engine.model.csp import SPPCSPC, PoolConvDown, TinySPP


class TopDownLevel(nn.Module):
    """Upsample the deeper feature, concatenate with a 1x1 lateral of the backbone feature, aggregate."""

    def __init__(self, deep_channels: int, lateral_in: int, channels: int, block: nn.Module,
                 act: ActLayer) -> None:
        super().__init__()
        self.reduce = ConvBNAct(deep_channels, channels, 1, 1, act)
        self.lateral = ConvBNAct(lateral_in, channels, 1, 1, act)
        self.block = block
        self.out_channels = block.out_channels

    def forward(self, deep: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.reduce(deep), scale_factor=2.0, mode="nearest")
        return self.block(torch.cat([self.lateral(lateral), up], 1))

    def reference_layers(self) -> list[str | None]:
        return ["reduce", None, "lateral", None, *(_prefixed("block", self.block))]


class BottomUpLevel(nn.Module):
    """Downsample the shallower output, concatenate with the top-down feature of this level, aggregate."""

    def __init__(self, down: nn.Module, block: nn.Module) -> None:
        super().__init__()
        self.down = down
        self.block = block
        self.out_channels = block.out_channels

    def forward(self, shallow: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.down(shallow), lateral], 1))

    def reference_layers(self) -> list[str | None]:
        down = _prefixed("down", self.down)
        # The reference concatenates the pool-conv branches and the lateral in one layer;
        # after a plain strided conv that concatenation is a layer of its own.
        concat = [] if isinstance(self.down, PoolConvDown) else [None]
        return [*down, *concat, *_prefixed("block", self.block)]


class PANNeck(nn.Module):
    """Returns one feature per detection level, shallow to deep (``arch.neck.levels`` order)."""

    def __init__(self, arch: ArchSpec, in_channels: Mapping[str, int], act: ActLayer) -> None:
        super().__init__()
        spec = arch.neck
        self.levels = tuple(spec.levels)
        top_in = in_channels[self.levels[-1]]
        top_cls = SPPCSPC if spec.top_type == "sppcspc" else TinySPP
        self.top = top_cls(top_in, arch.channels(spec.top_channels), act_layer=act)
        self.top_down = nn.ModuleList()
        deep = self.top.out_channels
        td_channels = {self.levels[-1]: deep}
        for level in spec.top_down:
            c = arch.channels(level.channels)
            block = build_block(level.block, 2 * c, arch, act)
            self.top_down.append(TopDownLevel(deep, in_channels[level.level], c, block, act))
            deep = block.out_channels
            td_channels[level.level] = deep
        self.bottom_up = nn.ModuleList()
        shallow = deep
        for level in spec.bottom_up:
            down = build_down(level.down, shallow, arch, act)
            block = build_block(level.block, down.out_channels + td_channels[level.level], arch, act)
            self.bottom_up.append(BottomUpLevel(down, block))
            shallow = block.out_channels
        self._check_order(spec)
        level_channels = [td_channels[self.levels[0]]] + [b.out_channels for b in self.bottom_up]
        self.outputs = nn.ModuleList(
            RepConv(c_in, arch.channels(c_out), 1, act) if spec.output_type == "repconv"
            else ConvBNAct(c_in, arch.channels(c_out), 3, 1, act)
            for c_in, c_out in zip(level_channels, spec.output_channels)
        )
        self.out_channels = [m.out_channels for m in self.outputs]

    def _check_order(self, spec) -> None:
        deep_to_shallow = list(reversed(self.levels[:-1]))
        if [t.level for t in spec.top_down] != deep_to_shallow:
            raise ValueError(f"neck.top_down must list levels {deep_to_shallow} (deep to shallow)")
        if [b.level for b in spec.bottom_up] != list(self.levels[1:]):
            raise ValueError(f"neck.bottom_up must list levels {list(self.levels[1:])} (shallow to deep)")

    def forward(self, features: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """``features``: backbone outputs by stage name. Returns ``[N, C_l, H_l, W_l]`` per level."""
        top = self.top(features[self.levels[-1]])
        td = [top]  # deep to shallow
        for level, name in zip(self.top_down, reversed(self.levels[:-1])):
            td.append(level(td[-1], features[name]))
        outs = [td[-1]]  # shallow to deep
        for level, lateral in zip(self.bottom_up, reversed(td[:-1])):
            outs.append(level(outs[-1], lateral))
        return [conv(x) for conv, x in zip(self.outputs, outs)]

    def reference_layers(self) -> list[str | None]:
        layers: list[str | None] = ["top"]
        for i, level in enumerate(self.top_down):
            layers += _prefixed(f"top_down.{i}", level)
        for i, level in enumerate(self.bottom_up):
            layers += _prefixed(f"bottom_up.{i}", level)
        return layers + [f"outputs.{i}" for i in range(len(self.outputs))]


def _prefixed(prefix: str, module: nn.Module) -> list[str | None]:
    """The reference layers of a child module, as paths relative to its parent."""
    if not hasattr(module, "reference_layers"):
        return [prefix]
    return [None if p is None else (f"{prefix}.{p}" if p else prefix) for p in module.reference_layers()]
