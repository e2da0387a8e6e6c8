"""Anchor-based detection head with implicit knowledge (YOLOv7 "IDetect") and grid decoding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from engine.model.blocks import ImplicitAdd, ImplicitMul


class DetectHead(nn.Module):
    """Per level: implicit add -> 1x1 conv -> implicit multiply, giving A x (5 + C) maps.

    Raw outputs (training) are ``[N, A, H_l, W_l, 5 + C]`` logits per level. Decoded outputs
    (inference) are ``[N, sum_l H_l*W_l*A, 5 + C]``: box centre x, y and width, height in
    input pixels, then objectness and class probabilities, as the reference has them. Rows go
    level by level, then cell by cell (row-major), then anchor: the order a convolution's output
    has channels-last, which is how CPU runtimes compute it, so the exported graphs hand their
    predictions out without a transpose (:class:`ExportHead`). The reference orders anchor
    before cell: the same rows, permuted.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, anchors: torch.Tensor,
                 strides: Sequence[int]) -> None:
        super().__init__()
        if anchors.ndim != 3 or anchors.shape[0] != len(in_channels) or anchors.shape[-1] != 2:
            raise ValueError(f"anchors must be [levels={len(in_channels)}, A, 2], got {tuple(anchors.shape)}")
        self.num_classes = num_classes
        self.num_outputs = num_classes + 5
        self.num_anchors = anchors.shape[1]
        self.strides = tuple(int(s) for s in strides)
        self.register_buffer("anchors", anchors.float().clone())  # [L, A, 2] in input pixels
        out = self.num_anchors * self.num_outputs
        self.implicit_add = nn.ModuleList(ImplicitAdd(c) for c in in_channels)
        self.predictors = nn.ModuleList(nn.Conv2d(c, out, 1) for c in in_channels)
        self.implicit_mul = nn.ModuleList(ImplicitMul(out) for _ in in_channels)
        self._fused = False
        self._grids: dict[tuple[int, int, int], torch.Tensor] = {}

    def init_biases(self, image_size: int = 640, objects_per_image: float = 8.0,
                    class_prior: float = 0.6) -> None:
        """Start objectness and class logits near their expected frequencies (focal-loss prior)."""
        with torch.no_grad():
            for conv, stride in zip(self.predictors, self.strides):
                bias = conv.bias.view(self.num_anchors, self.num_outputs)
                cells = (image_size / stride) ** 2
                bias[:, 4] += torch.log(torch.tensor(objects_per_image / cells))
                bias[:, 5:] += torch.log(torch.tensor(class_prior / (self.num_classes - 0.99 + 1e-9)))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``features``: neck outputs, shallow to deep. Returns raw ``[N, A, H, W, 5 + C]`` per level."""
        outputs = []
        for i, x in enumerate(features):
            if self._fused:
                y = self.predictors[i](x)
            else:
                y = self.implicit_mul[i](self.predictors[i](self.implicit_add[i](x)))
            n, _, h, w = y.shape
            outputs.append(y.view(n, self.num_anchors, self.num_outputs, h, w).permute(0, 1, 3, 4, 2).contiguous())
        return outputs

    def decode(self, raw: Sequence[torch.Tensor]) -> torch.Tensor:
        """Raw per-level logits -> ``[N, sum H*W*A, 5 + C]`` boxes (cx, cy, w, h px) and probabilities."""
        decoded = []
        for level, y in enumerate(raw):
            n, a, h, w, _ = y.shape
            y = y.sigmoid()
            grid = self._grid(h, w, y.device, y.dtype)  # [1, 1, H, W, 2] (x, y)
            anchor = self.anchors[level].view(1, a, 1, 1, 2).to(y.dtype)
            xy = (y[..., 0:2] * 2.0 - 0.5 + grid) * self.strides[level]
            wh = (y[..., 2:4] * 2.0) ** 2 * anchor
            rows = torch.cat([xy, wh, y[..., 4:]], -1).permute(0, 2, 3, 1, 4)  # [N, H, W, A, 5 + C]
            decoded.append(rows.reshape(n, -1, self.num_outputs))
        return torch.cat(decoded, 1)

    def _grid(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return _make_grid(h, w, device, dtype)
        key = (h, w, hash((device, dtype)))
        if key not in self._grids:
            self._grids[key] = _make_grid(h, w, device, dtype)
        return self._grids[key]

    def fuse(self) -> None:
        """Fold the implicit add (into the bias) and multiply (into weight and bias) of each level."""
        if self._fused:
            return
        with torch.no_grad():
            for conv, add, mul in zip(self.predictors, self.implicit_add, self.implicit_mul):
                weight = conv.weight.view(conv.out_channels, -1)  # [out, in]
                conv.bias += weight @ add.implicit.view(-1)
                scale = mul.implicit.view(-1)
                conv.bias *= scale
                conv.weight *= scale.view(-1, 1, 1, 1)
        self._fused = True

    @staticmethod
    def reference_renames() -> dict[str, str]:
        return {"predictors.": "m.", "implicit_add.": "ia.", "implicit_mul.": "im."}


def _make_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack((xs, ys), 2).view(1, 1, h, w, 2).to(dtype)


class ExportHead(nn.Module):
    """A fused :class:`DetectHead` whose graph decodes lean: the same boxes, fewer glue operators.

    Traced as written, decoding becomes per level a transpose of the logits to channels-last, a
    split into xy / wh / rest, arithmetic on each and a concat along the last axis (OpenVINO runs
    that split and concat with its reference kernels). Here every channel is decoded in the
    convolution's own layout by one expression,
    ``s * (s * quad + lin) + gx * step_x + gy * step_y + shift`` with ``s`` the sigmoid, ``gx`` /
    ``gy`` the cell's column and row and per-channel constants (zero where not named):

    - x, y: ``lin = 2 * stride``, ``step = stride`` on their own axis, ``shift = -stride / 2``,
      which is ``(2 s - 0.5 + grid) * stride``;
    - w, h: ``quad = 4 * anchor``, which is ``(2 s)^2 * anchor``;
    - objectness and classes: ``lin = 1``.

    Then each level goes channels-last, which gives :meth:`DetectHead.decode`'s row order (cell,
    then anchor) and is the layout OpenVINO's CPU plugin already holds the convolution's output
    in: no transpose kernel runs. (Anchor-major rows took a transpose per level with a reference
    kernel, 5 % of exit 1's kernel time; 30 -> 24 % of it outside convolutions.)
    """

    def __init__(self, head: DetectHead) -> None:
        super().__init__()
        if not head._fused:
            raise ValueError("ExportHead needs a fused DetectHead (its implicit layers folded)")
        self.predictors = head.predictors  # shares the weights
        self.num_anchors, self.num_outputs = head.num_anchors, head.num_outputs
        levels, anchors, outputs = len(head.strides), head.num_anchors, head.num_outputs
        quad, lin, step_x, step_y, shift = (torch.zeros(levels, anchors, outputs) for _ in range(5))
        for level, stride in enumerate(head.strides):
            lin[level, :, 0:2] = 2.0 * stride
            step_x[level, :, 0] = stride
            step_y[level, :, 1] = stride
            shift[level, :, 0:2] = -0.5 * stride
            quad[level, :, 2:4] = 4.0 * head.anchors[level]
            lin[level, :, 4:] = 1.0
        constants = {"quad": quad, "lin": lin, "step_x": step_x, "step_y": step_y, "shift": shift}
        for name, value in constants.items():
            self.register_buffer(name, value.view(levels, 1, anchors * outputs, 1, 1))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logits ``[N, A * (5 + C), H_l, W_l]`` per level, as the convolutions give them."""
        return [predictor(x) for predictor, x in zip(self.predictors, features)]

    def decode(self, raw: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-level logits -> ``[N, sum H*W*A, 5 + C]``, as :meth:`DetectHead.decode` gives them."""
        decoded = []
        for level, y in enumerate(raw):
            n, _, h, w = y.shape
            s = y.sigmoid()
            gx = torch.arange(w, dtype=y.dtype, device=y.device).view(1, 1, 1, w)
            gy = torch.arange(h, dtype=y.dtype, device=y.device).view(1, 1, h, 1)
            offset = gx * self.step_x[level] + gy * self.step_y[level] + self.shift[level]
            boxes = s * (s * self.quad[level] + self.lin[level]) + offset
            decoded.append(boxes.permute(0, 2, 3, 1).reshape(n, -1, self.num_outputs))
        return torch.cat(decoded, 1)
