"""The dataset arguments shared by `calibrate` and `eval`."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.errors import UserError


def add_data_arguments(parser: argparse.ArgumentParser, data_required: bool = True) -> None:
    """Add the model and dataset options; ``data_required=False`` for commands with another input mode."""
    parser.add_argument("--weights", help="model file (default: the bundled model)")
    parser.add_argument("--data", required=data_required, help="YOLO data.yaml or COCO dataset folder")
    parser.add_argument("--split", default="val", help="split of a YOLO data.yaml (default: val)")
    parser.add_argument("--imgsz", type=int, help="network input size (default: the model's)")
    parser.add_argument("--max-images", type=int, help="use at most this many images")
    parser.add_argument("--batch-size", type=int, default=16)


def open_eval_data(args: argparse.Namespace, imgsz: int, class_names):
    """A validation-mode dataset of the model's classes, and its loader."""
    from engine.data.datasets import DetectionDataset  # brings torch
    from engine.train.run import loader

    path = Path(args.data)
    if path.suffix in (".yaml", ".yml"):
        dataset = DetectionDataset.from_yolo(path, args.split, imgsz, None)
    elif (path / "annotations").is_dir():
        dataset = DetectionDataset.from_coco(path / "images" / args.split,
                                             path / "annotations" / f"instances_{args.split}.json", imgsz, None)
    else:
        raise UserError(f"--data: expected a YOLO data.yaml or a COCO folder with annotations/, got {path}")
    if args.max_images is not None and args.max_images < 1:
        raise UserError(f"--max-images must be positive, got {args.max_images}")
    if tuple(dataset.names) != tuple(class_names):
        raise UserError(f"dataset classes {list(dataset.names)} differ from the model's {list(class_names)}")
    return dataset, loader(dataset, args.batch_size, False, 0)
