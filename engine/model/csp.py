"""Composite blocks of the YOLOv7 family: ELAN aggregation, downsampling, spatial pyramid pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.model.blocks import ActLayer, ConvBNAct, NormLayer, batch_norm, silu


class ELAN(nn.Module):
    """Efficient layer aggregation: two 1x1 branches, a chain of 3x3 convs, a 1x1 fuse.

    The concatenation takes, deepest first, every ``tap_every``-th output of the chain,
    then the chain's input branch and the shortcut branch. The YOLOv7 backbone uses
    ``depth=4, tap_every=2``; its neck and YOLOv7-tiny tap every chain output.
    """

    def __init__(
        self,
        in_channels: int,
        branch_channels: int,
        chain_channels: int,
        out_channels: int,
        depth: int = 4,
        tap_every: int = 2,
        act_layer: ActLayer = silu,
        norm_layer: NormLayer = batch_norm,
    ) -> None:
        super().__init__()
        if depth < 1 or tap_every < 1:
            raise ValueError(f"ELAN needs depth >= 1 and tap_every >= 1, got {depth}, {tap_every}")
        self.shortcut = ConvBNAct(in_channels, branch_channels, 1, 1, act_layer, norm_layer)
        self.branch = ConvBNAct(in_channels, branch_channels, 1, 1, act_layer, norm_layer)
        chain_in = [branch_channels] + [chain_channels] * (depth - 1)
        self.chain = nn.ModuleList(ConvBNAct(c, chain_channels, 3, 1, act_layer, norm_layer) for c in chain_in)
        # Chain outputs that join the concatenation, deepest first (indices into self.chain).
        self.taps = list(range(depth - 1, -1, -tap_every))
        concat_channels = len(self.taps) * chain_channels + 2 * branch_channels
        self.fuse_conv = ConvBNAct(concat_channels, out_channels, 1, 1, act_layer, norm_layer)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        branch = self.branch(x)
        outputs = []
        y = branch
        for conv in self.chain:
            y = conv(y)
            outputs.append(y)
        pieces = [outputs[i] for i in self.taps]
        return self.fuse_conv(torch.cat([*pieces, branch, shortcut], 1))

    def reference_layers(self) -> list[str | None]:
        return ["shortcut", "branch", *(f"chain.{i}" for i in range(len(self.chain))), None, "fuse_conv"]


class PoolConvDown(nn.Module):
    """YOLOv7 "MP" transition: ``cat[conv3x3/2(conv1x1(x)), conv1x1(maxpool(x))]``, 2x channels.

    ``forward`` accepts a separate input (of the same shape) for the strided-conv branch because
    one published architecture (Dy-YOLOv7-X) feeds that branch of its second backbone from the
    first backbone.
    """

    def __init__(
        self, in_channels: int, channels: int, act_layer: ActLayer = silu, norm_layer: NormLayer = batch_norm
    ) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2)
        self.pool_proj = ConvBNAct(in_channels, channels, 1, 1, act_layer, norm_layer)
        self.reduce = ConvBNAct(in_channels, channels, 1, 1, act_layer, norm_layer)
        self.down = ConvBNAct(channels, channels, 3, 2, act_layer, norm_layer)
        self.out_channels = 2 * channels

    def forward(self, x: torch.Tensor, conv_input: torch.Tensor | None = None) -> torch.Tensor:
        pooled = self.pool_proj(self.pool(x))
        strided = self.down(self.reduce(x if conv_input is None else conv_input))
        return torch.cat([strided, pooled], 1)

    def reference_layers(self) -> list[str | None]:
        return [None, "pool_proj", "reduce", "down", None]


class ConvDown(ConvBNAct):
    """Strided 3x3 conv-BN-act transition."""

    def __init__(
        self, in_channels: int, channels: int, act_layer: ActLayer = silu, norm_layer: NormLayer = batch_norm
    ) -> None:
        super().__init__(in_channels, channels, 3, 2, act_layer, norm_layer)

    def reference_layers(self) -> list[str | None]:
        return [""]


class MaxPoolDown(nn.Module):
    """2x2 max-pool transition (YOLOv7-tiny backbone)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)

    def reference_layers(self) -> list[str | None]:
        return [None]


class PyramidPools(nn.Module):
    """Max pools of several odd sizes over one input (stride 1, the input's size out).

    Outside training each is computed from the next smaller one: a ``k`` pool of a ``j`` pool is
    a ``j + k - 1`` pool (windows clipped at the border compose the same way), so sizes 5, 9 and
    13 cost three 5x5 pools instead of windows of 25, 81 and 169 pixels (OpenVINO: each exit's
    pooling kernels 0.07 -> 0.05 ms at 320 px, exit 1 2-3 % faster). Training keeps one pool
    per size: the values are the same, but where a window holds equal maxima the chained pools
    send the gradient to another of them, and training would no longer retrace earlier runs.
    Returns the pooled maps in ``kernels``' order.
    """

    def __init__(self, kernels: tuple[int, ...]) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"pyramid pool sizes must be odd, got {kernels}")
        self.kernels = tuple(kernels)
        self._ascending = sorted(set(self.kernels))
        steps = [b - a + 1 for a, b in zip([1, *self._ascending], self._ascending)]
        self.steps = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in steps)

    def __len__(self) -> int:
        return len(self.kernels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.training:
            return [F.max_pool2d(x, k, 1, k // 2) for k in self.kernels]
        pooled = {}
        for kernel, step in zip(self._ascending, self.steps):
            x = pooled[kernel] = step(x)
        return [pooled[k] for k in self.kernels]


class SPPCSPC(nn.Module):
    """Spatial pyramid pooling in a cross-stage-partial block (YOLOv7 neck top).

    One path goes 1x1 -> 3x3 -> 1x1, max-pools at several sizes, concatenates, 1x1 -> 3x3;
    the other is a 1x1 shortcut; a final 1x1 fuses both.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernels: tuple[int, ...] = (5, 9, 13),
        act_layer: ActLayer = silu, norm_layer: NormLayer = batch_norm,
    ) -> None:
        super().__init__()
        hidden = out_channels

        def conv(c_in: int, c_out: int, k: int = 1) -> ConvBNAct:
            return ConvBNAct(c_in, c_out, k, 1, act_layer, norm_layer)

        self.pre_reduce = conv(in_channels, hidden)
        self.shortcut = conv(in_channels, hidden)
        self.pre_spatial = conv(hidden, hidden, 3)
        self.pre_project = conv(hidden, hidden)
        self.pools = PyramidPools(kernels)
        self.post_reduce = conv(hidden * (len(kernels) + 1), hidden)
        self.post_spatial = conv(hidden, hidden, 3)
        self.fuse_conv = conv(2 * hidden, out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pre_project(self.pre_spatial(self.pre_reduce(x)))
        y = torch.cat([y, *self.pools(y)], 1)
        y = self.post_spatial(self.post_reduce(y))
        return self.fuse_conv(torch.cat([y, self.shortcut(x)], 1))

    @staticmethod
    def reference_renames() -> dict[str, str]:
        return {
            "pre_reduce.": "cv1.", "shortcut.": "cv2.", "pre_spatial.": "cv3.", "pre_project.": "cv4.",
            "post_reduce.": "cv5.", "post_spatial.": "cv6.", "fuse_conv.": "cv7.",
        }


class TinySPP(nn.Module):
    """YOLOv7-tiny's pyramid pooling: pools of a 1x1 branch (largest first), fused with a shortcut."""

    def __init__(
        self, in_channels: int, out_channels: int, kernels: tuple[int, ...] = (5, 9, 13),
        act_layer: ActLayer = silu, norm_layer: NormLayer = batch_norm,
    ) -> None:
        super().__init__()
        self.shortcut = ConvBNAct(in_channels, out_channels, 1, 1, act_layer, norm_layer)
        self.branch = ConvBNAct(in_channels, out_channels, 1, 1, act_layer, norm_layer)
        self.pools = PyramidPools(kernels)
        self.pool_fuse = ConvBNAct(out_channels * (len(kernels) + 1), out_channels, 1, 1, act_layer, norm_layer)
        self.fuse_conv = ConvBNAct(2 * out_channels, out_channels, 1, 1, act_layer, norm_layer)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.branch(x)
        pooled = self.pools(branch)
        y = self.pool_fuse(torch.cat([*reversed(pooled), branch], 1))
        return self.fuse_conv(torch.cat([y, self.shortcut(x)], 1))

    def reference_layers(self) -> list[str | None]:
        return ["shortcut", "branch", *([None] * len(self.pools)), None, "pool_fuse", None, "fuse_conv"]
