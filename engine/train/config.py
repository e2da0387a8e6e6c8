"""Training configuration (``configs/train/*.yaml``): data, model, and the two phases of the same loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.config import from_mapping, load_yaml
from engine.data.augment import AugmentConfig


@dataclass(frozen=True)
class DataConfig:
    """``path``: a YOLO ``data.yaml`` or a COCO dataset folder."""

    path: str
    imgsz: int = 320
    workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    max_val_images: int = 500

    def __post_init__(self) -> None:
        if self.imgsz % 32 or self.imgsz < 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, got {self.imgsz}")


@dataclass(frozen=True)
class ModelConfig:
    """``arch``: a name under configs/models or a path; class count comes from the dataset.

    ``init_weights`` continues from one of our model files; ``init_torchvision`` starts both
    detectors of a Dy-Faster R-CNN from a torchvision Faster R-CNN or ResNet state-dict file.
    """

    arch: str = "dy-yolov7-tiny"
    width_multiple: float | None = None
    depth_multiple: float | None = None
    init_weights: str | None = None
    init_torchvision: str | None = None


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005
    warmup_epochs: float = 1.0
    final_lr_fraction: float = 0.05
    schedule: Literal["cosine", "constant"] = "cosine"

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be positive and weight_decay non-negative")


@dataclass(frozen=True)
class PhaseConfig:
    """One phase of the loop. ``max_steps_per_epoch`` caps an epoch (quick runs and tests);
    ``augment: false`` feeds the phase the training images as they are (``data.augment`` off)."""

    epochs: int
    batch_size: int
    optim: OptimConfig = field(default_factory=OptimConfig)
    max_steps_per_epoch: int | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")


@dataclass(frozen=True)
class LossConfig:
    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    anchor_threshold: float = 4.0
    router_median_window: int = 2000


@dataclass(frozen=True)
class TrainConfig:
    """Phase ``detectors`` trains both detectors jointly; phase ``router`` freezes them and trains the router."""

    name: str
    data: DataConfig
    detectors: PhaseConfig
    router: PhaseConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    output_dir: str = "runs/train"
    seed: int = 0
    ema_decay: float = 0.9999
    eval_every: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None


def load_train_config(path: str | Path) -> TrainConfig:
    return from_mapping(TrainConfig, load_yaml(path), where=Path(path).name)
