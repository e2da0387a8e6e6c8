"""`detect`: run the dynamic detector on one image, draw the boxes, print them as JSON lines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.commands.common import finite_float, load_model, read_image_rgb
from engine.errors import UserError
from engine.model.loading import ModelOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detect", help="detect objects in an image")
    parser.add_argument("--weights", help="model file (default: the bundled model)")
    parser.add_argument("--config", help="architecture YAML for reference checkpoints (ours or theirs)")
    parser.add_argument("--source", required=True, help="image file")
    parser.add_argument("--out", help="where to write the annotated image")
    routing = parser.add_mutually_exclusive_group()
    routing.add_argument("--threshold", type=finite_float, help="router threshold: score >= T leaves at exit 1")
    routing.add_argument("--route", choices=["first", "second"], help="force one exit")
    parser.add_argument("--imgsz", type=int, help="network input size (default: the model's)")
    parser.add_argument("--conf", type=finite_float, default=0.25, help="confidence threshold")
    parser.add_argument("--iou", type=finite_float, default=0.45, help="NMS IoU threshold")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")
    import cv2

    from engine.render import draw_detections  # brings cv2 too

    image = read_image_rgb(args.source)
    if args.out:
        _check_writable(args.out)
    # One image: eager PyTorch answers at once, where an exported graph would first be built.
    loaded = load_model(ModelOptions(weights=args.weights, config=args.config, backend="torch", imgsz=args.imgsz,
                                     conf=args.conf, iou=args.iou))
    threshold = args.threshold if args.threshold is not None else _default_threshold(loaded.calibration)
    det = loaded.predictor.predict([image], threshold=threshold, route=args.route or "auto")[0]
    for record in det.to_records():
        print(json.dumps(record))
    summary = {"exit": det.exit, "router_score": round(det.router_score, 5), "threshold": det.threshold,
               "detections": len(det), "timings_ms": {k: round(v, 2) for k, v in det.timings_ms.items()}}
    print(json.dumps(summary))
    if args.out:
        annotated = draw_detections(image, det)
        if not cv2.imwrite(args.out, annotated[:, :, ::-1]):
            raise UserError(f"cannot write image: {args.out}")
    return 0


def _default_threshold(calibration) -> float:
    """Half the images to exit 2 when calibrated, else the reference default 0.5."""
    return calibration.threshold_for(0.5) if calibration else 0.5


def _check_writable(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    if Path(path).suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
        raise UserError(f"--out must end in .jpg, .png, .bmp or .webp: {path}")
