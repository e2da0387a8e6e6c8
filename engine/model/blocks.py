"""Basic layers of the YOLOv7 family: conv-BN-act, RepConv, implicit knowledge, space-to-depth.

Every block that the reference implementation indexes as one layer implements
``reference_layers()`` (the relative paths of its indexed sub-layers, ``None`` for the
parameter-free ones such as concatenations) or ``reference_renames()`` (how its
parameter names differ from the reference ones). :mod:`engine.model.reference` uses
them to derive the checkpoint name mapping from the architecture itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ActLayer = Callable[[], nn.Module]
NormLayer = Callable[[int], nn.Module]

# The YOLOv7 family trains batch-norm with eps 1e-3 and momentum 0.03; checkpoints depend on the eps.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def silu() -> nn.Module:
    return nn.SiLU(inplace=True)


def leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


ACTIVATIONS: dict[str, ActLayer] = {"silu": silu, "leaky_relu": leaky_relu, "relu": lambda: nn.ReLU(inplace=True)}


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution with a bias that computes ``bn(conv(x))`` in eval mode."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        groups=conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype,
    )
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [C_out]
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((conv_bias - bn.running_mean) * scale + bn.bias)
    return fused


class ConvBNAct(nn.Module):
    """Convolution without bias, batch-norm, activation ('same' padding for odd kernels)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        act_layer: ActLayer | None = silu,
        norm_layer: NormLayer = batch_norm,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn: nn.Module = norm_layer(out_channels)
        self.act = act_layer() if act_layer is not None else nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = nn.Identity()


class RepConv(nn.Module):
    """RepVGG block: 3x3 conv-BN + 1x1 conv-BN (+ BN identity) summed, then the activation.

    ``fuse()`` re-parameterises the branches into one 3x3 convolution with the same output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        act_layer: ActLayer = silu,
        norm_layer: NormLayer = batch_norm,
    ) -> None:
        super().__init__()
        self.dense = ConvBNAct(in_channels, out_channels, 3, stride, None, norm_layer)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, stride, None, norm_layer)
        self.identity = norm_layer(in_channels) if in_channels == out_channels and stride == 1 else None
        self.act = act_layer()
        self.fused: nn.Conv2d | None = None
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        y = self.dense(x) + self.pointwise(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(y)

    def fuse(self) -> None:
        if self.fused is not None:
            return
        dense = fuse_conv_bn(self.dense.conv, self.dense.bn)
        pointwise = fuse_conv_bn(self.pointwise.conv, self.pointwise.bn)
        with torch.no_grad():
            dense.weight += F.pad(pointwise.weight, [1, 1, 1, 1])
            dense.bias += pointwise.bias
            if self.identity is not None:
                channels = self.identity.num_features
                ident_conv = nn.Conv2d(channels, channels, 1, bias=False, device=dense.weight.device)
                ident_conv.weight.copy_(torch.eye(channels, device=dense.weight.device).view(channels, channels, 1, 1))
                ident = fuse_conv_bn(ident_conv, self.identity)
                dense.weight += F.pad(ident.weight, [1, 1, 1, 1])
                dense.bias += ident.bias
        self.fused = dense
        del self.dense, self.pointwise
        self.identity = None

    @staticmethod
    def reference_renames() -> dict[str, str]:
        return {
            "dense.conv.": "rbr_dense.0.",
            "dense.bn.": "rbr_dense.1.",
            "pointwise.conv.": "rbr_1x1.0.",
            "pointwise.bn.": "rbr_1x1.1.",
            "identity.": "rbr_identity.",
        }


class ImplicitAdd(nn.Module):
    """Learned per-channel offset added to the input (YOLOR implicit knowledge)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=0.0, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.implicit


class ImplicitMul(nn.Module):
    """Learned per-channel scale applied to the input (YOLOR implicit knowledge)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.implicit = nn.Parameter(torch.empty(1, channels, 1, 1))
        nn.init.normal_(self.implicit, mean=1.0, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.implicit


class SpaceToDepth(nn.Module):
    """Halves the resolution by moving each 2x2 pixel block into channels (W6 "ReOrg" stem).

    Channel order follows the reference: (even row, even col), (odd row, even col),
    (even row, odd col), (odd row, odd col).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], dim=1)
