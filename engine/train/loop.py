"""One training loop for both phases: fetch, forward, loss, backward, step; the rest around it.

Around the step: learning-rate schedule, EMA of weights, progress bar with live losses,
per-epoch validation, a checkpoint every epoch (resumable), a CSV/JSON log and plots.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from engine.model.checkpoint import save_model
from engine.model.families import Cascade, LoadedModel
from engine.train.config import OptimConfig, PhaseConfig
from engine.train.ema import ModelEMA

logger = logging.getLogger(__name__)

Evaluator = Callable[[Cascade], dict[str, float]]


class Phase(Protocol):
    name: str

    def trainable(self, model: Cascade) -> list[nn.Parameter]: ...

    def prepare(self, model: Cascade) -> None: ...

    def loss(self, model: Cascade, images: torch.Tensor, targets: torch.Tensor
             ) -> tuple[torch.Tensor, dict[str, float]]: ...


def build_optimizer(params: Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """Weight decay on convolution weights only (not on biases, batch-norm or implicit vectors)."""
    params = list(params)
    decay = [p for p in params if p.ndim == 4 and p.shape[-1] * p.shape[-2] * p.shape[1] > 1]
    no_decay = [p for p in params if not any(p is q for q in decay)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def learning_rate(cfg: OptimConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Linear warm-up, then cosine decay to ``lr * final_lr_fraction`` (or constant)."""
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "constant" or total_steps <= warmup:
        return cfg.lr
    progress = (step - warmup) / max(1, total_steps - warmup)
    return cfg.lr * (cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    """Runs phases on one model; writes ``last.pt`` (resume state), ``model.safetensors`` (EMA weights),
    ``metrics.csv`` / ``metrics.json`` and plots into ``output_dir``.

    Args:
        model: the model to train, with its spec (each epoch's model file needs it); the loop
            trains ``model.model`` in place.
    """

    def __init__(self, model: LoadedModel, train_loader: Iterable, output_dir: str | Path,
                 evaluator: Evaluator | None = None, ema_decay: float = 0.9999, device: str = "cpu",
                 eval_every: int = 1) -> None:
        self.spec = model.spec
        self.model = model.model.to(device)
        self.loader = train_loader
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.evaluator = evaluator
        self.ema = ModelEMA(self.model, ema_decay)
        self.device = torch.device(device)
        self.eval_every = eval_every
        self.history: list[dict[str, Any]] = []

    def run(self, phase: Phase, cfg: PhaseConfig, resume: dict[str, Any] | None = None) -> None:
        if cfg.epochs == 0:
            return
        phase.prepare(self.model)
        optimizer = build_optimizer(phase.trainable(self.model), cfg.optim)
        steps_per_epoch = min(len(self.loader), cfg.max_steps_per_epoch or len(self.loader))
        start_epoch = 0
        if resume is not None and resume.get("phase") == phase.name:
            optimizer.load_state_dict(resume["optimizer"])
            start_epoch = int(resume["epoch"]) + 1
        for epoch in range(start_epoch, cfg.epochs):
            phase.prepare(self.model)
            logs = self._epoch(phase, cfg, optimizer, epoch, steps_per_epoch)
            if self.evaluator is not None and ((epoch + 1) % self.eval_every == 0 or epoch + 1 == cfg.epochs):
                logs.update(self.evaluator(self.ema.module))
            self.history.append({"phase": phase.name, "epoch": epoch, **logs})
            self._save(phase, epoch, optimizer)
            logger.info("%s epoch %d/%d: %s", phase.name, epoch + 1, cfg.epochs,
                        ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if isinstance(v, float)))

    def _epoch(self, phase: Phase, cfg: PhaseConfig, optimizer: torch.optim.Optimizer, epoch: int,
               steps: int) -> dict[str, float]:
        total_steps = cfg.epochs * steps
        sums: dict[str, float] = {}
        start = time.perf_counter()
        bar = tqdm(total=steps, desc=f"{phase.name} {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                   dynamic_ncols=True)
        seen = 0
        for step, (images, targets, *_) in enumerate(self.loader):
            if step >= steps:
                break
            lr = learning_rate(cfg.optim, epoch * steps + step, total_steps, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, targets = images.to(self.device, non_blocking=True), targets.to(self.device)
            loss, logs = phase.loss(self.model, images, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{phase.name} loss became {loss.item()} at epoch {epoch + 1} step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(phase.trainable(self.model), 10.0)
            optimizer.step()
            self.ema.update(self.model)
            seen += len(images)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix({k: f"{v / (step + 1):.3f}" for k, v in list(sums.items())[:4]}, refresh=False)
            bar.update(1)
        bar.close()
        elapsed = time.perf_counter() - start
        means = {k: v / max(1, steps) for k, v in sums.items()}
        means.update({"lr": lr if steps else 0.0, "images_per_s": seen / max(elapsed, 1e-9),
                      "epoch_s": elapsed})
        return means

    def _save(self, phase: Phase, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        state = {"phase": phase.name, "epoch": epoch, "model": self.model.state_dict(),
                 "ema": self.ema.state_dict(), "optimizer": optimizer.state_dict(), "history": self.history}
        if hasattr(phase, "router_loss"):
            state["router_loss"] = phase.router_loss.state_dict()
        tmp = self.output_dir / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.output_dir / "last.pt")
        save_model(self.output_dir / "model.safetensors", LoadedModel(self.ema.module, self.spec))
        write_history(self.history, self.output_dir)

    def load_resume(self, path: str | Path) -> dict[str, Any]:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.history = list(state.get("history", []))
        return state


def write_history(history: list[dict[str, Any]], output_dir: Path) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with (output_dir / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    (output_dir / "metrics.json").write_text(json.dumps(history, indent=1))
