"""`export`: write the model's three ONNX graphs (stage 1, exit 1, exit 2), or reuse the cached ones."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.commands.common import check_positive, default_weights, resolve_config
from engine.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export the model to ONNX graphs cached beside the weights")
    parser.add_argument("--weights", help="model file (default: the bundled model)")
    parser.add_argument("--config", help="architecture YAML for reference checkpoints (ours or theirs)")
    parser.add_argument("--imgsz", type=int,
                        help="example input size traced while exporting (the graphs accept any multiple of the "
                             "largest stride; default: a small size)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_positive("--imgsz", args.imgsz)
    weights = Path(args.weights) if args.weights else default_weights()
    # The model code brings torch: only once the command line holds up.
    from engine.model.checkpoint import load_model
    from engine.model.onnx_export import DEFAULT_OPSET, export_staged

    loaded = load_model(weights, resolve_config(args.config))
    model = loaded.model
    if not model.onnx_exportable:
        raise UserError(f"the {model.family} family does not export to ONNX (its region proposals and RoI "
                        "heads run data-dependent Python); run it with --backend torch")
    stride = model.stride
    if args.imgsz is not None and args.imgsz % stride:
        raise UserError(f"--imgsz must be a multiple of {stride}, got {args.imgsz}")
    try:
        graphs = export_staged(loaded, weights, sample_size=(args.imgsz, args.imgsz) if args.imgsz else None)
    except PermissionError as exc:
        raise UserError(f"cannot write the ONNX cache beside {weights}: {exc.strerror}") from None
    sizes = graphs.sizes()
    print(json.dumps({
        "directory": str(graphs.directory), "key": graphs.key, "reused": graphs.reused, "opset": DEFAULT_OPSET,
        "graphs": {name: {"path": str(path), "bytes": sizes[name]} for name, path in graphs.files.items()},
    }))
    return 0
