"""The two phases of DynamicDet training, run by the same loop.

They differ only in which parameters train, which modules stay in eval mode, and which
loss is computed: phase ``detectors`` sums one detection loss over both heads; phase
``router`` freezes the detectors (batch-norm in eval mode) and trains the router with the
median-offset loss on per-image detached detection losses.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.losses.detection_loss import DetectionLoss
from engine.losses.router_loss import RouterLoss
from engine.model.detector import DynamicDetector


class DetectorsPhase:
    name = "detectors"

    def __init__(self, loss: DetectionLoss) -> None:
        self.loss_fn = loss

    def trainable(self, model: DynamicDetector) -> list[nn.Parameter]:
        return [p for n, p in model.named_parameters() if not n.startswith("router.")]

    def prepare(self, model: DynamicDetector) -> None:
        model.train()
        model.router.eval()
        for name, p in model.named_parameters():
            p.requires_grad_(not name.startswith("router."))

    def loss(self, model: DynamicDetector, images: torch.Tensor, targets: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, float]]:
        out = model.forward_training(images)
        total = images.new_zeros(())
        logs: dict[str, float] = {}
        for head_name, raw in (("det1", out.raw_first), ("det2", out.raw_second)):
            result = self.loss_fn(raw, targets)
            total = total + result.total
            logs[head_name] = float(result.total.detach())
            for part, value in result.parts.items():
                logs[f"{head_name}_{part}"] = float(value)
        return total, logs


class RouterPhase:
    name = "router"

    def __init__(self, loss: DetectionLoss, router_loss: RouterLoss) -> None:
        self.loss_fn = loss
        self.router_loss = router_loss

    def trainable(self, model: DynamicDetector) -> list[nn.Parameter]:
        return list(model.router.parameters())

    def prepare(self, model: DynamicDetector) -> None:
        model.eval()  # frozen detectors keep their batch-norm statistics
        model.router.train()
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("router."))

    def loss(self, model: DynamicDetector, images: torch.Tensor, targets: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, float]]:
        out = model.forward_training(images)
        with torch.no_grad():
            first = self.loss_fn(out.raw_first, targets).per_image
            second = self.loss_fn(out.raw_second, targets).per_image
        loss = self.router_loss(out.scores, first, second)
        logs = {"router": float(loss.detach()), "score": float(out.scores.detach().mean()),
                "gain": float((first - second).mean()), "median": float(self.router_loss.median)}
        return loss, logs
