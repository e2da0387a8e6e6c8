"""`detect`: run the dynamic detector on one image, draw the boxes, print them as JSON lines."""

from __future__ import annotations

import argparse
import json

from app.commands.common import finite_float


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
    import cv2

    from app.commands.common import default_weights, input_size, read_image_rgb, resolve_config
    from engine.errors import UserError
    from engine.model.backends import TorchBackend
    from engine.model.checkpoint import load_detector
    from engine.model.predictor import Predictor
    from engine.render import draw_detections

    for name in ("threshold", "conf", "iou"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 1:
            raise UserError(f"--{name} must be between 0 and 1, got {value}")
    image = read_image_rgb(args.source)
    if args.out:
        _check_writable(args.out)
    model = load_detector(args.weights or default_weights(), resolve_config(args.config))
    imgsz = input_size(args.imgsz, model.input_size)
    predictor = Predictor(TorchBackend(model), model.class_names, imgsz, args.conf, args.iou)
    threshold = args.threshold if args.threshold is not None else _default_threshold(model)
    det = predictor.predict([image], threshold=threshold, route=args.route or "auto")[0]
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


def _default_threshold(model) -> float:
    """Half the images to exit 2 when calibrated, else the reference default 0.5."""
    return model.calibration.threshold_for(0.5) if model.calibration else 0.5


def _check_writable(path: str) -> None:
    from pathlib import Path

    from engine.errors import UserError

    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    if Path(path).suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
        raise UserError(f"--out must end in .jpg, .png, .bmp or .webp: {path}")
