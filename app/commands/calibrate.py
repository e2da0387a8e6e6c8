"""`calibrate`: router thresholds at 0, 10, ..., 100 % second-exit shares and exit latencies, stored in the model."""

from __future__ import annotations

import argparse
import json

from app.commands.data_args import add_data_arguments, open_eval_data


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calibrate", help="measure router thresholds and exit costs; store them")
    add_data_arguments(parser)
    parser.add_argument("--out", help="write the calibrated model here (default: update --weights in place; "
                                      "the bundled model is only rewritten with --in-place)")
    parser.add_argument("--in-place", action="store_true", help="allow rewriting the bundled model itself")
    parser.add_argument("--half", action="store_true",
                        help="store the weights as float16 (half the file; they load back as float32)")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
                        help="inference backend, as for run (auto: the faster of ONNX Runtime and OpenVINO on a CPU)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.commands.common import default_weights, input_size
    from engine.errors import UserError
    from engine.model.backends import evaluation_model
    from engine.model.checkpoint import load_detector, save_model
    from engine.train.calibrate import calibrate

    weights = args.weights or default_weights()
    if args.out is None and not args.in_place and Path(weights).resolve() == default_weights().resolve():
        raise UserError("calibrate would rewrite the bundled model: give --out FILE for a calibrated copy "
                        "(or --in-place to update the bundled model itself)")
    model = load_detector(weights)
    imgsz = input_size(args.imgsz, model.input_size)
    dataset, batches = open_eval_data(args, imgsz, model.class_names)
    runner = evaluation_model(model, args.backend, weights_path=Path(weights))
    model.calibration = sane_costs(calibrate(runner, batches, imgsz, max_images=args.max_images))
    writable = args.out or str(weights).endswith(".safetensors")
    out = save_model(args.out or weights, model, half=args.half) if writable else None
    c = model.calibration
    print(json.dumps({"images": min(len(dataset), args.max_images or len(dataset)), "saved_to": str(out),
                      "exit1_ms": c.exit1_ms, "exit2_ms": c.exit2_ms,
                      "thresholds": dict(zip([f"{p:.0%}" for p in c.second_fractions],
                                             [round(t, 5) for t in c.thresholds]))}))
    return 0



def sane_costs(calibration):
    """The calibration, with exit costs dropped (left for the runtime to measure) when they make no sense.

    Exit 2 runs everything exit 1 runs and more, so a measurement where it was faster means the
    machine was busy while measuring; storing it would mislead the rate controller from its
    first frame.
    """
    import sys
    from dataclasses import replace

    c = calibration
    if c.exit1_ms > 0 and c.exit2_ms > 0 and c.exit1_ms < c.exit2_ms:
        return c
    print(f"warning: measured exit costs make no sense (exit 1 {c.exit1_ms:.1f} ms, exit 2 {c.exit2_ms:.1f} ms; "
          "was the machine busy?): not stored, the runtime measures them live", file=sys.stderr)
    return replace(c, exit1_ms=0.0, exit2_ms=0.0)
