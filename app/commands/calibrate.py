"""`calibrate`: router thresholds at 0, 10, ..., 100 % second-exit shares and exit latencies, stored in the model.

The images come from a labelled dataset (``--data``) or from the user's own unlabelled footage
(``--source``, a video file or an image folder): neither thresholds nor exit costs need labels, and
thresholds measured on the cameras' own footage send the asked share of their frames to exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from app.commands.data_args import add_data_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calibrate", help="measure router thresholds and exit costs; store them")
    add_data_arguments(parser, data_required=False)
    parser.add_argument("--source", help="calibrate on your own footage instead of --data: a video file or a "
                                         "folder of images, no labels needed (--max-images frames spread over "
                                         "it, default 300)")
    parser.add_argument("--out", help="write the calibrated model here (default: update --weights in place; "
                                      "the bundled model is only rewritten with --in-place)")
    parser.add_argument("--in-place", action="store_true", help="allow rewriting the bundled model itself")
    parser.add_argument("--half", action="store_true",
                        help="store the weights as float16 (half the file; they load back as float32)")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
                        help="inference backend, as for run (auto: the faster of ONNX Runtime and OpenVINO on a CPU)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import contextlib
    import copy
    from pathlib import Path

    from app.commands.common import input_size
    from app.commands.data_args import open_eval_data
    from engine.model.backends import evaluation_model
    from engine.model.checkpoint import load_model, save_model
    from engine.train.footage import Footage

    weights = check_arguments(args)
    with contextlib.ExitStack() as stack:
        # The footage is opened before the model is loaded, so a bad source fails at once.
        footage = stack.enter_context(Footage(args.source)) if args.source is not None else None
        loaded = load_model(weights)
        model = loaded.model
        imgsz = input_size(args.imgsz, model.input_size)
        data = open_eval_data(args, imgsz, model.class_names) if footage is None else None
        # The PyTorch backend fuses the model it is given in place; the model saved below must keep
        # its batch-norms, or the file no longer fits the architecture.
        runner = evaluation_model(copy.deepcopy(loaded), args.backend, weights_path=Path(weights))
        if footage is not None:
            calibration, report = calibrate_on_footage(footage, runner, imgsz, model.stride, args.max_images)
        else:
            calibration, report = calibrate_on_data(*data, runner, imgsz, args.max_images)
    calibrated = loaded.with_calibration(sane_costs(calibration))
    writable = args.out or str(weights).endswith(".safetensors")
    out = save_model(args.out or weights, calibrated, half=args.half) if writable else None
    c = calibrated.calibration
    print(summary_text(c, report, out), file=sys.stderr)
    print(json.dumps({**report, "saved_to": str(out), "exit1_ms": c.exit1_ms, "exit2_ms": c.exit2_ms,
                      "thresholds": dict(zip([f"{p:.0%}" for p in c.second_fractions],
                                             [round(t, 5) for t in c.thresholds]))}))
    return 0


def check_arguments(args: argparse.Namespace):
    """The weights to calibrate, once the options make sense; each problem is one UserError line."""
    from pathlib import Path

    from app.commands.common import default_weights
    from engine.errors import UserError

    if (args.data is None) == (args.source is None):
        raise UserError("calibrate needs exactly one of --data DATASET (a labelled dataset) or "
                        "--source VIDEO|FOLDER (your own footage, no labels needed)"
                        + (", not both" if args.data is not None else ""))
    if args.max_images is not None and args.max_images < 1:
        raise UserError(f"--max-images must be positive, got {args.max_images}")
    weights = args.weights or default_weights()
    if args.out is None and not args.in_place and Path(weights).resolve() == default_weights().resolve():
        raise UserError("calibrate would rewrite the bundled model: give --out FILE for a calibrated copy "
                        "(or --in-place to update the bundled model itself)")
    return weights


def calibrate_on_data(dataset, batches, runner, imgsz: int, max_images: int | None):
    """The calibration on ``--data`` and what to report about it."""
    from engine.train.calibrate import calibrate

    calibration = calibrate(runner, batches, imgsz, max_images=max_images)
    return calibration, {"images": min(len(dataset), max_images or len(dataset))}


def calibrate_on_footage(footage, runner, imgsz: int, stride: int, max_frames: int | None):
    """The calibration on ``--source`` footage and what to report about it; a tqdm bar on stderr while reading."""
    from tqdm import tqdm

    from engine.train.calibrate import calibration_from_scores
    from engine.train.footage import DEFAULT_FRAMES

    total = footage.info.frame_count
    with tqdm(total=total, unit="frame", desc=footage.display[-40:], file=sys.stderr, dynamic_ncols=True,
              leave=False, disable=None) as bar:
        def on_frame(sampled: int) -> None:
            bar.update(1)
            bar.set_postfix({"sampled": sampled}, refresh=False)

        scored = footage.router_scores(runner, imgsz, stride, max_frames or DEFAULT_FRAMES, on_frame)
    if scored.warning:
        print(f"warning: {scored.warning}", file=sys.stderr)
    return calibration_from_scores(runner, scored.scores, imgsz), {
        "images": len(scored.scores), "source": footage.display, "frames_read": scored.frames_read}


def summary_text(calibration, report: dict, saved_to) -> str:
    """A few lines for people: what was measured, on what, and where it went."""
    c = calibration
    on = (f"{report['images']} frames of {report['source']} ({report['frames_read']} read)" if "source" in report
          else f"{report['images']} images of the dataset")
    inner = "  ".join(f"{p:.0%} {t:.4g}" for p, t in zip(c.second_fractions, c.thresholds) if 0 < p < 1)
    quantiles = " / ".join(f"{c.threshold_for(q):.4g}" for q in (0.1, 0.5, 0.9))
    costs = (f"exit 1 {c.exit1_ms:.1f} ms, exit 2 {c.exit2_ms:.1f} ms" if c.exit1_ms and c.exit2_ms
             else "not stored (the runtime measures them live)")
    saved = (f"saved to {saved_to}" if saved_to is not None
             else "not saved: only .safetensors model files are rewritten; give --out FILE.safetensors")
    return "\n".join([f"calibrated on {on} at {c.imgsz} px",
                      f"  thresholds (raw router score) by exit-2 share: {inner}",
                      f"  readable score scale: raw {quantiles} read as 0.1 / 0.5 / 0.9",
                      f"  exit costs: {costs}",
                      f"  {saved}"])


def sane_costs(calibration):
    """The calibration, with exit costs dropped (left for the runtime to measure) when they make no sense.

    Exit 2 runs everything exit 1 runs and more, so a measurement where it was faster means the
    machine was busy while measuring; storing it would mislead the rate controller from its
    first frame.
    """
    from dataclasses import replace

    c = calibration
    if c.exit1_ms > 0 and c.exit2_ms > 0 and c.exit1_ms < c.exit2_ms:
        return c
    print(f"warning: measured exit costs make no sense (exit 1 {c.exit1_ms:.1f} ms, exit 2 {c.exit2_ms:.1f} ms; "
          "was the machine busy?): not stored, the runtime measures them live", file=sys.stderr)
    return replace(c, exit1_ms=0.0, exit2_ms=0.0)
