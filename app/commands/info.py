"""`info`: architecture summary, parameter count and GFLOPs of each exit."""

from __future__ import annotations

import argparse
import json

from app.commands.common import default_weights, resolve_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="print architecture, parameters and GFLOPs per exit")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="model file (default: the bundled model)")
    source.add_argument("--config", help="architecture YAML (ours or a reference cfg) or a name like dy-yolov7")
    parser.add_argument("--imgsz", type=int, help="square input size for the FLOP count (default: model's)")
    parser.add_argument("--width", type=float, help="width multiple override (with --config)")
    parser.add_argument("--classes", type=int, help="class count override (with --config)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from app.commands.common import check_positive, input_size
    from engine.model.build import build_dynamic_detector
    from engine.model.checkpoint import arch_from_config, load_detector
    from engine.model.complexity import count_parameters, exit_gflops

    check_positive("--imgsz", args.imgsz)
    if args.config:
        arch = arch_from_config(resolve_config(args.config))
        from dataclasses import replace

        arch = replace(arch, width_multiple=args.width or arch.width_multiple,
                       num_classes=args.classes or arch.num_classes, class_names=() if args.classes else
                       arch.class_names)
        with torch.device("meta"):  # shapes only: no memory, no random init
            model = build_dynamic_detector(arch)
    else:
        model = load_detector(args.weights or default_weights())
        arch = model.arch
    imgsz = input_size(args.imgsz, arch.input_size)
    params = count_parameters(model)
    model.eval().fuse()
    flops = exit_gflops(model, imgsz)
    summary = {
        "name": arch.name, "num_classes": arch.num_classes, "width_multiple": arch.width_multiple,
        "depth_multiple": arch.depth_multiple, "activation": arch.activation, "imgsz": imgsz,
        "stages": {s.name: stride for s, stride in zip(arch.backbone.stages, arch.strides.values())},
        "detection_levels": list(arch.neck.levels), "router_inputs": list(arch.router_inputs),
        "link_stages": list(arch.link_stages), "parameters": params, "parameters_fused": count_parameters(model),
        "gflops": {k: round(v, 2) for k, v in flops.items()},
    }
    if model.calibration is not None:
        summary["calibration"] = {"exit1_ms": model.calibration.exit1_ms, "exit2_ms": model.calibration.exit2_ms}
    print(json.dumps(summary))
    return 0
