"""`info`: architecture summary, parameter count and GFLOPs of each exit."""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import replace

from app.commands.common import check_positive, default_weights, finite_float, input_size, resolve_config, with_width


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="print architecture, parameters and GFLOPs per exit")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="model file (default: the bundled model)")
    source.add_argument("--config", help="architecture YAML (ours or a reference cfg) or a name like dy-yolov7")
    parser.add_argument("--imgsz", type=int, help="square input size for the FLOP count (default: model's)")
    parser.add_argument("--width", type=finite_float, help="width multiple override (with --config)")
    parser.add_argument("--classes", type=int, help="class count override (with --config)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_positive("--imgsz", args.imgsz)
    # The model code brings torch: only once the command line holds up.
    import torch

    from engine.model.checkpoint import arch_from_config, load_model
    from engine.model.complexity import count_parameters, exit_gflops
    from engine.model.families import new_model, spec_family

    if args.config:
        arch = with_width(arch_from_config(resolve_config(args.config)), args.width)
        if args.classes:
            arch = replace(arch, num_classes=args.classes, class_names=())
        # Shapes only where the family allows: no memory, no random init (region proposals need
        # real numbers to run: top-k, NMS).
        with torch.device("meta") if spec_family(arch).shapes_on_meta else contextlib.nullcontext():
            loaded = new_model(arch)
    else:
        loaded = load_model(args.weights or default_weights())
    model = loaded.model
    imgsz = input_size(args.imgsz, model.input_size)
    params = count_parameters(model)
    model.eval().fuse()
    flops = exit_gflops(model, imgsz)
    summary = {**loaded.describe(), "imgsz": imgsz, "parameters": params,
               "parameters_fused": count_parameters(model), "gflops": {k: round(v, 2) for k, v in flops.items()}}
    calibration = loaded.calibration
    if calibration is not None:
        summary["calibration"] = {"exit1_ms": calibration.exit1_ms, "exit2_ms": calibration.exit2_ms}
    print(json.dumps(summary))
    return 0
