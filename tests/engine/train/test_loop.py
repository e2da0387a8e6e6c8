"""The training loop on a fixed batch: both phases lower their losses; checkpoints resume."""

from __future__ import annotations

import torch

from engine.losses.cascade_losses import AnchorCascadeLosses, RCNNCascadeLosses
from engine.losses.detection_loss import DetectionLoss
from engine.losses.router_loss import RouterLoss
from engine.model.checkpoint import load_model
from engine.model.families import new_model
from engine.model.variants import tiny_rcnn_variant, tiny_variant
from engine.train.config import OptimConfig, PhaseConfig
from engine.train.loop import Trainer, learning_rate
from engine.train.phases import DetectorsPhase, RouterPhase


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four 64 px images with bright squares, and their targets (image, class, cx, cy, w, h)."""
    images = torch.full((4, 3, 64, 64), 0.3)
    rows = []
    for i in range(4):
        x, y, size = 8 + 10 * i, 12 + 6 * i, 14 + 2 * i
        images[i, :, y:y + size, x:x + size] = 1.0
        rows.append([i, i % 3, x + size / 2, y + size / 2, size, size])
    return images, torch.tensor(rows, dtype=torch.float32)


class Repeat:
    def __init__(self, batch, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for _ in range(self.length):
            yield (*self.batch, [])


def test_both_phases_lower_their_losses_and_save(tmp_path):
    torch.manual_seed(0)
    loaded = new_model(tiny_variant(num_classes=3, input_size=64))
    model = loaded.model
    loss = AnchorCascadeLosses(DetectionLoss.from_head(model.first.head, image_size=64))
    batch = fixed_batch()
    trainer = Trainer(loaded, Repeat(batch, 10), tmp_path, ema_decay=0.9)
    optim = OptimConfig(lr=0.02, warmup_epochs=0.0, schedule="constant")
    trainer.run(DetectorsPhase(loss), PhaseConfig(epochs=4, batch_size=4, optim=optim))
    det = [row for row in trainer.history if row["phase"] == "detectors"]
    assert det[-1]["det1"] < 0.8 * det[0]["det1"]
    assert det[-1]["det2"] < 0.8 * det[0]["det2"]
    router_params = [p.detach().clone() for p in model.router.parameters()]
    frozen = model.first.backbone.stem.state_dict() if len(model.first.backbone.stem) else \
        {k: v.clone() for k, v in model.first.head.state_dict().items()}
    adam = OptimConfig(optimizer="adam", lr=0.01, weight_decay=0.0, warmup_epochs=0.0, schedule="constant")
    trainer.run(RouterPhase(loss, RouterLoss(50)), PhaseConfig(epochs=3, batch_size=4, optim=adam))
    router = [row for row in trainer.history if row["phase"] == "router"]
    assert router[-1]["router"] <= router[0]["router"] + 1e-6
    assert any(not torch.equal(a, b) for a, b in zip(router_params, model.router.parameters()))
    for key, value in frozen.items():  # phase 2 leaves the detectors alone
        assert torch.equal(value, model.first.head.state_dict()[key])
    assert (tmp_path / "last.pt").exists() and (tmp_path / "model.safetensors").exists()
    assert load_model(tmp_path / "model.safetensors").spec == loaded.spec
    state = Trainer(new_model(tiny_variant(num_classes=3, input_size=64)), Repeat(batch, 1),
                    tmp_path).load_resume(tmp_path / "last.pt")
    assert state["phase"] == "router" and state["epoch"] == 2


def test_the_same_phases_train_a_dy_faster_rcnn(tmp_path):
    torch.manual_seed(0)
    loaded = new_model(tiny_rcnn_variant(num_classes=3, input_size=64))
    model = loaded.model
    losses = RCNNCascadeLosses()
    batch = fixed_batch()
    trainer = Trainer(loaded, Repeat(batch, 8), tmp_path, ema_decay=0.9)
    adamw = OptimConfig(optimizer="adamw", lr=0.001, warmup_epochs=0.0, schedule="constant")
    trainer.run(DetectorsPhase(losses), PhaseConfig(epochs=3, batch_size=4, optim=adamw))
    det = [row for row in trainer.history if row["phase"] == "detectors"]
    assert det[-1]["det1"] < 0.8 * det[0]["det1"] and det[-1]["det2"] < 0.8 * det[0]["det2"]
    assert {"det1_objectness", "det2_classifier", "det2_box_reg"} <= set(det[-1])
    detectors = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("router.")}
    router_params = [p.detach().clone() for p in model.router.parameters()]
    adam = OptimConfig(optimizer="adam", lr=0.01, weight_decay=0.0, warmup_epochs=0.0, schedule="constant")
    trainer.run(RouterPhase(losses, RouterLoss(50)), PhaseConfig(epochs=2, batch_size=4, optim=adam))
    router = [row for row in trainer.history if row["phase"] == "router"]
    assert all(torch.isfinite(torch.tensor(row["router"])) for row in router)
    assert any(not torch.equal(a, b) for a, b in zip(router_params, model.router.parameters()))
    for key, value in detectors.items():  # weights and batch-norm statistics stay as they were
        assert torch.equal(value, model.state_dict()[key]), key


def test_learning_rate_schedule():
    cfg = OptimConfig(lr=0.1, warmup_epochs=1, final_lr_fraction=0.1)
    assert learning_rate(cfg, 0, 100, 10) == 0.1 / 10
    assert learning_rate(cfg, 10, 100, 10) == 0.1
    assert abs(learning_rate(cfg, 99, 100, 10) - 0.01) < 1e-3
