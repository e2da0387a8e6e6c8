"""The two phases of DynamicDet training, run by the same loop.

They differ only in which parameters train, which modules stay in eval mode, and which
loss is computed: phase ``detectors`` sums the two detectors' losses; phase ``router`` freezes
the detectors (batch-norm in eval mode) and trains the router with the median-offset loss on
per-image detached detection losses. The model family's loss comes in as a
:class:`~engine.losses.cascade_losses.CascadeLosses`, so the phases are the same for every family.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.losses.cascade_losses import CascadeLosses
from engine.losses.router_loss import RouterLoss
from engine.model.families import Cascade


class DetectorsPhase:
    name = "detectors"

    def __init__(self, losses: CascadeLosses) -> None:
        self.losses = losses

    def trainable(self, model: Cascade) -> list[nn.Parameter]:
        return [p for n, p in model.named_parameters() if not n.startswith("router.")]

    def prepare(self, model: Cascade) -> None:
        model.train()
        model.router.eval()
        for name, p in model.named_parameters():
            p.requires_grad_(not name.startswith("router."))

    def loss(self, model: Cascade, images: torch.Tensor, targets: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, float]]:
        total = images.new_zeros(())
        logs: dict[str, float] = {}
        for head_name, result in zip(("det1", "det2"), self.losses.detectors(model, images, targets)):
            total = total + result.total
            logs[head_name] = float(result.total.detach())
            for part, value in result.parts.items():
                logs[f"{head_name}_{part}"] = value
        return total, logs


class RouterPhase:
    name = "router"

    def __init__(self, losses: CascadeLosses, router_loss: RouterLoss) -> None:
        self.losses = losses
        self.router_loss = router_loss

    def trainable(self, model: Cascade) -> list[nn.Parameter]:
        return list(model.router.parameters())

    def prepare(self, model: Cascade) -> None:
        model.eval()  # frozen detectors keep their batch-norm statistics
        model.router.train()
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("router."))

    def loss(self, model: Cascade, images: torch.Tensor, targets: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, float]]:
        first, second, scores = self.losses.per_image(model, images, targets)
        loss = self.router_loss(scores, first, second)
        logs = {"router": float(loss.detach()), "score": float(scores.detach().mean()),
                "gain": float((first - second).mean()), "median": float(self.router_loss.median)}
        return loss, logs
