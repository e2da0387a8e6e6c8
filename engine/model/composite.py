"""Composite link (CBNet style) from backbone 1 into backbone 2: the CBLinear / CBFuse roles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CompositeLink(nn.Module):
    """Projects backbone-1 stages and adds them into backbone 2 after each stage's transition.

    Stage ``j`` of backbone 1 (one of ``stages``, ordered shallow to deep) is projected by a
    1x1 conv with bias into one piece per target stage ``k <= j`` (every stage at its own
    resolution or a finer one), with that target's channel count. At target ``k`` the pieces
    from all sources ``j >= k`` are resized by nearest neighbour and summed with backbone 2's
    features (dense higher-level composition).
    """

    def __init__(self, stages: Sequence[str], source_channels: Mapping[str, int],
                 target_channels: Mapping[str, int]) -> None:
        super().__init__()
        self.stages = tuple(stages)
        self.projections = nn.ModuleDict()
        self.splits: dict[str, list[int]] = {}
        for j, name in enumerate(self.stages):
            split = [target_channels[target] for target in self.stages[: j + 1]]
            self.splits[name] = split
            self.projections[name] = nn.Conv2d(source_channels[name], sum(split), 1, bias=True)

    def project(self, features: Mapping[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """For each target stage, the pieces aimed at it (one per source, shallow to deep)."""
        pieces: dict[str, list[torch.Tensor]] = {name: [] for name in self.stages}
        for name in self.stages:
            parts = self.projections[name](features[name]).split(self.splits[name], dim=1)
            for target, part in zip(self.stages, parts):
                pieces[target].append(part)
        return pieces

    @staticmethod
    def fuse_into(x: torch.Tensor, pieces: Sequence[torch.Tensor]) -> torch.Tensor:
        """``x + sum(resize(piece))``; ``x``: ``[N, C, H, W]``, pieces ``[N, C, h_i, w_i]``."""
        size = x.shape[2:]
        resized = [p if p.shape[2:] == size else F.interpolate(p, size=size, mode="nearest") for p in pieces]
        return torch.stack([*resized, x]).sum(dim=0)

    def hook(self, features: Mapping[str, torch.Tensor]):
        """A backbone fuse hook that adds the projected ``features`` at the linked stages."""
        pieces = self.project(features)

        def fuse(stage: str, x: torch.Tensor) -> torch.Tensor:
            return self.fuse_into(x, pieces[stage]) if stage in pieces else x

        return fuse


class ExportLink(nn.Module):
    """A :class:`CompositeLink` with glue that exports lean: its graph computes the same sums.

    Traced as written, ``fuse_into`` becomes per target stage an Unsqueeze per piece, a Concat
    and a ReduceSum (the stack), and per resize a Shape/Gather/Slice/Concat chain feeding
    Resize's output size. Here the pieces are added one at a time (see :meth:`fuse_into`), each
    resized by a constant integer factor (see :func:`_enlarge`). Each source's projection becomes
    one 1x1 conv per target (its rows of the weight) instead of one conv and a Split: OpenVINO
    runs a channel split of a channels-last tensor with its reference kernel, slower than the
    smaller convolutions.
    """

    def __init__(self, link: CompositeLink) -> None:
        super().__init__()
        self.stages = link.stages
        self.projections = nn.ModuleDict()
        for name in self.stages:
            whole, parts, start = link.projections[name], nn.ModuleList(), 0
            for channels in link.splits[name]:
                part = nn.Conv2d(whole.in_channels, channels, 1, bias=True)
                with torch.no_grad():
                    part.weight.copy_(whole.weight[start:start + channels])
                    part.bias.copy_(whole.bias[start:start + channels])
                parts.append(part)
                start += channels
            self.projections[name] = parts

    def project(self, features: Mapping[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """The pieces :meth:`CompositeLink.project` gives, one convolution each."""
        pieces: dict[str, list[torch.Tensor]] = {name: [] for name in self.stages}
        for name in self.stages:
            for target, conv in zip(self.stages, self.projections[name]):
                pieces[target].append(conv(features[name]))
        return pieces

    @staticmethod
    def fuse_into(x: torch.Tensor, pieces: Sequence[torch.Tensor]) -> torch.Tensor:
        """``x + sum(resize(piece))``, the pieces summed coarsest first at their own resolutions.

        Nearest-neighbour resizes by integer factors compose (twice x2 is x4), so each partial
        sum is enlarged only to the next finer piece's size: one resize per source level, each to
        the resolution one level up, instead of every piece enlarged to ``x``'s size and added
        there. At the finest target (four sources) that is one resize and one add at full size
        where there were three of each; OpenVINO folds the other additions into the projections'
        convolutions (exit 2 at 320 px: resize kernels 0.15 -> 0.10 ms).
        """
        total = pieces[-1]
        for piece in reversed(pieces[:-1]):
            total = piece + _enlarge(total, piece)
        return x + _enlarge(total, x)

    def hook(self, features: Mapping[str, torch.Tensor]):
        """The backbone fuse hook, as :meth:`CompositeLink.hook` gives it."""
        pieces = self.project(features)

        def fuse(stage: str, x: torch.Tensor) -> torch.Tensor:
            return self.fuse_into(x, pieces[stage]) if stage in pieces else x

        return fuse


def _enlarge(piece: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``piece`` resized by nearest neighbour to ``like``'s height and width: by a constant integer
    factor (taken when traced, not computed by the graph; every stage halves its input, so the
    factors hold for every input size the graphs accept)."""
    factors = (int(like.shape[2]) // int(piece.shape[2]), int(like.shape[3]) // int(piece.shape[3]))
    if factors == (1, 1):
        return piece
    return F.interpolate(piece, scale_factor=(float(factors[0]), float(factors[1])), mode="nearest")
