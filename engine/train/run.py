"""Wiring for a training run: datasets, model, loss, the two phases, calibration, final files."""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from engine.bundled import model_config
from engine.data.collate import collate_detections
from engine.data.datasets import DetectionDataset
from engine.errors import ConfigError
from engine.losses.cascade_losses import CascadeLosses, LossSettings
from engine.losses.router_loss import RouterLoss
from engine.model.checkpoint import arch_from_config, load_model, save_model
from engine.model.families import Cascade, LoadedModel, new_model, spec_family
from engine.train.calibrate import calibrate
from engine.train.config import TrainConfig
from engine.train.evaluate import coco_map, run_validation
from engine.train.loop import Trainer
from engine.train.phases import DetectorsPhase, RouterPhase
from engine.train.plots import plot_training

logger = logging.getLogger(__name__)


def open_datasets(cfg: TrainConfig, augment_train: bool = True) -> tuple[DetectionDataset, DetectionDataset]:
    """Train (augmented unless told otherwise) and validation datasets from a YOLO data.yaml or a COCO folder."""
    path = Path(cfg.data.path)
    augment = cfg.data.augment if augment_train else None
    imgsz = cfg.data.imgsz
    if path.suffix in (".yaml", ".yml"):
        train = DetectionDataset.from_yolo(path, "train", imgsz, augment, seed=cfg.seed)
        val = DetectionDataset.from_yolo(path, "val", imgsz, None)
    elif (path / "annotations").is_dir():
        train = DetectionDataset.from_coco(path / "images" / "train", path / "annotations" / "instances_train.json",
                                           imgsz, augment, seed=cfg.seed)
        val = DetectionDataset.from_coco(path / "images" / "val", path / "annotations" / "instances_val.json",
                                         imgsz, None)
    else:
        raise ConfigError(f"data.path: expected a YOLO data.yaml or a COCO folder with annotations/, got {path}")
    return train, val


def loader(dataset: DetectionDataset, batch_size: int, shuffle: bool, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      collate_fn=collate_detections, drop_last=shuffle and len(dataset) >= batch_size,
                      persistent_workers=workers > 0)


def build_model(cfg: TrainConfig, dataset: DetectionDataset) -> LoadedModel:
    if cfg.model.init_weights:
        loaded = load_model(cfg.model.init_weights)
        if loaded.model.class_names != dataset.names:
            raise ConfigError(f"model.init_weights classes {loaded.model.class_names} differ from the dataset's")
        loaded.model.train()
        return loaded.with_calibration(None)  # thresholds of the old weights would not fit the new ones
    path = Path(cfg.model.arch)
    spec = arch_from_config(path if path.suffix in (".yaml", ".yml") else model_config(cfg.model.arch))
    family = spec_family(spec)
    overrides = {k: v for k, v in (("width_multiple", cfg.model.width_multiple),
                                   ("depth_multiple", cfg.model.depth_multiple)) if v is not None}
    if overrides and not family.scalable:
        raise ConfigError(f"model: {', '.join(overrides)} applies to the YOLO family only, not {family.name}")
    if cfg.model.init_torchvision and not family.torchvision_init:
        raise ConfigError(f"model.init_torchvision does not apply to the {family.name} family ({cfg.model.arch})")
    loaded = new_model(replace(spec, num_classes=dataset.num_classes, class_names=tuple(dataset.names),
                               input_size=cfg.data.imgsz, **overrides))
    if cfg.model.init_torchvision:
        from engine.model.rcnn.torchvision_init import init_from_torchvision

        init_from_torchvision(loaded.model, cfg.model.init_torchvision)
    return loaded


def cascade_losses(loaded: LoadedModel, cfg: TrainConfig) -> CascadeLosses:
    """The detection loss of the model's family, in the form both training phases use."""
    settings = LossSettings(box=cfg.loss.box, obj=cfg.loss.obj, cls=cfg.loss.cls,
                            anchor_threshold=cfg.loss.anchor_threshold, image_size=cfg.data.imgsz)
    return loaded.family.losses(loaded.model, settings)


def make_evaluator(val_loader: DataLoader, num_classes: int, max_images: int):
    def evaluate(model: Cascade) -> dict[str, float]:
        run = run_validation(model, val_loader, max_images)
        first = coco_map(run.first, run.truth, num_classes)
        second = coco_map(run.second, run.truth, num_classes)
        return {"val_map_exit1": first["map"], "val_map50_exit1": first["map50"],
                "val_map_exit2": second["map"], "val_map50_exit2": second["map50"]}

    return evaluate


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run both phases, calibrate, and write ``<output_dir>/<name>/model.safetensors``."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    train_set, val_set = open_datasets(cfg)
    logger.info("data: %d training and %d validation images, %d classes", len(train_set), len(val_set),
                train_set.num_classes)
    loaded = build_model(cfg, train_set)
    model = loaded.model
    out = Path(cfg.output_dir) / cfg.name
    val_loader = loader(val_set, 16, False, 0)
    evaluator = make_evaluator(val_loader, train_set.num_classes, cfg.data.max_val_images)
    trainer = Trainer(loaded, loader(train_set, cfg.detectors.batch_size, True, cfg.data.workers), out,
                      evaluator, cfg.ema_decay, device, cfg.eval_every)
    state = trainer.load_resume(out / "last.pt") if resume and (out / "last.pt").exists() else None
    det_loss = cascade_losses(loaded, cfg)
    router_loss = RouterLoss(cfg.loss.router_median_window)
    if state is not None and "router_loss" in state:
        router_loss.load_state_dict(state["router_loss"])
    if state is None or state["phase"] == "detectors":
        trainer.run(DetectorsPhase(det_loss), cfg.detectors, state)
        state = None
    # Phase 2 starts from the averaged detectors, which validate better than the raw weights.
    if state is None:
        model.load_state_dict(trainer.ema.module.state_dict())
        trainer.ema.updates = 0
    # Augmented images can teach the router the wrong thing: on the Dy-Faster R-CNN it learned to
    # send the easy images to exit 2 (held-out rho -0.86 against true difficulty), and +0.84 on
    # the same images unaugmented. `router.augment: false` trains it on the images as they come.
    router_set = train_set if cfg.router.augment else open_datasets(cfg, augment_train=False)[0]
    trainer.loader = loader(router_set, cfg.router.batch_size, True, cfg.data.workers)
    trainer.run(RouterPhase(det_loss, router_loss), cfg.router, state)
    final = trainer.ema.module
    calibration = calibrate(final, val_loader, cfg.data.imgsz, max_images=cfg.data.max_val_images)
    path = save_model(out / "model.safetensors", LoadedModel(final, loaded.spec, calibration))
    if trainer.history:
        plot_training(trainer.history, out / "training.png")
    logger.info("model written to %s", path)
    return path
