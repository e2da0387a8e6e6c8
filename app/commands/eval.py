"""`eval`: COCO mAP of each exit, the router at every calibrated share, and random routing; one JSON object.

With ``--events E.jsonl --truth CLIP.json`` it scores a recorded run instead: offline and streaming
mAP of one camera's events against its clip's ground truth (:mod:`engine.train.stream_eval`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from app.commands.common import default_weights, input_size
from app.commands.data_args import add_data_arguments, open_eval_data
from engine.bundled import is_installed
from engine.errors import UserError
from engine.model.backend_names import check_backend_available

# Options of the dataset mode that mean nothing when scoring a recorded run.
_MODEL_ONLY = ("weights", "imgsz", "max_images", "plot")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate both exits, the router and random routing; or score a run's events",
        description="With --data: COCO mAP of each exit, of the router at every share and of random routing. "
        "With --events and --truth: offline and streaming mAP of a run's events against the clip's ground truth.",
    )
    add_data_arguments(parser, data_required=False)
    parser.add_argument("--plot", help="trade-off plot PNG (default: beside the weights, <name>-tradeoff.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-routing baseline")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
                        help="inference backend, as for run (auto: the faster of ONNX Runtime and OpenVINO on a CPU)")
    recorded = parser.add_argument_group("scoring a recorded run")
    recorded.add_argument("--events", metavar="E.jsonl", help="events file written by run --events")
    recorded.add_argument("--truth", metavar="CLIP.json", help="the clip's ground truth (synth --video writes it)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.events is not None or args.truth is not None:
        return run_events(args)
    if args.data is None:
        raise UserError("give --data D (a dataset) or --events E.jsonl --truth CLIP.json (a recorded run)")
    return run_dataset(args)


def run_events(args: argparse.Namespace) -> int:
    """Score one run's events against the clip's truth: one JSON line on stdout, a table on stderr."""
    if args.data is not None:
        raise UserError("--events and --data are mutually exclusive: score a recorded run or a dataset")
    if args.events is None or args.truth is None:
        raise UserError("--events and --truth go together: a run's events file and its clip's ground truth")
    for name in _MODEL_ONLY:
        if getattr(args, name) is not None:
            raise UserError(f"--{name.replace('_', '-')} does not apply with --events")
    from engine.train.stream_eval import evaluate_events_file  # brings torch (the mAP)

    result = {"events": args.events, "truth": args.truth, **evaluate_events_file(args.events, args.truth)}
    print(_events_table(result), file=sys.stderr)
    print(json.dumps(result))
    return 0


def _events_table(result: dict) -> str:
    """A few lines for a person reading the terminal; the JSON line is the record."""
    return "\n".join([
        f"{result['events']}: {result['processed']} of {result['frames']} frames processed, "
        f"{100 * result['second_exit_fraction']:.0f}% at exit 2, {result['mean_latency_ms']:.1f} ms mean latency",
        f"{'':<10} {'mAP':>6} {'mAP50':>6}",
        f"{'processed':<10} {result['map']:>6.3f} {result['map50']:>6.3f}",
        f"{'streaming':<10} {result['streaming_map']:>6.3f} {result['streaming_map50']:>6.3f}",
    ])


def run_dataset(args: argparse.Namespace) -> int:
    check_backend_available(args.backend)
    # The model code brings torch: only once the command line holds up.
    from engine.model.backends import evaluation_model
    from engine.model.checkpoint import load_model
    from engine.train.calibrate import exit_latency_ms
    from engine.train.evaluate import evaluate_routing, run_validation
    from engine.train.plots import plot_tradeoff

    weights = Path(args.weights or default_weights())
    loaded = load_model(weights)
    model = loaded.model
    imgsz = input_size(args.imgsz, model.input_size)
    dataset, batches = open_eval_data(args, imgsz, model.class_names)
    runner = evaluation_model(loaded, args.backend, weights_path=weights)
    run_ = run_validation(runner, batches, args.max_images)
    result = evaluate_routing(run_, loaded.spec.num_classes, seed=args.seed)
    exit1_ms, exit2_ms = exit_latency_ms(runner, imgsz)
    for row in result["router"] + result["random"]:
        p = row["second_fraction"]
        row["ms_per_image"] = round((1 - p) * exit1_ms + p * exit2_ms, 2)
    result["exit1"]["ms_per_image"], result["exit2"]["ms_per_image"] = round(exit1_ms, 2), round(exit2_ms, 2)
    result["images"] = len(run_.truth)
    result["difficulty_correlation"] = difficulty_correlation(dataset, run_.scores)
    plot = Path(args.plot) if args.plot else default_plot_path(weights)
    plot_tradeoff(result, plot)
    result["plot"] = str(plot)
    print(_dataset_table(result), file=sys.stderr)
    print(json.dumps(result))
    return 0


def default_plot_path(weights: Path) -> Path:
    """Beside the weights, or under runs/eval when their folder is read-only or theirs is an installed
    package's (a shared or installed model)."""
    if os.access(weights.parent, os.W_OK) and not is_installed(weights):
        return weights.with_name(f"{weights.stem}-tradeoff.png")
    return Path("runs") / "eval" / f"{weights.stem}-tradeoff.png"


def _dataset_table(result: dict) -> str:
    """The evaluation for a person: each exit, then the router against random routing at a few shares."""
    gap = result["exit2"]["map"] - result["exit1"]["map"]
    lines = [f"{result['images']} images; Spearman rho of router score against true difficulty: "
             f"{result['difficulty_correlation']}",
             f"{'':<16} {'mAP':>6} {'mAP50':>6} {'ms/img':>7} {'gap recovered':>14}"]
    for name in ("exit1", "exit2"):
        row = result[name]
        lines.append(f"{name.replace('exit', 'exit '):<16} {row['map']:>6.3f} {row['map50']:>6.3f} "
                     f"{row['ms_per_image']:>7.2f}")
    random = {round(r["second_fraction"], 2): r for r in result["random"]}
    for row in result["router"]:
        share = round(row["second_fraction"], 2)
        if share not in (0.3, 0.5, 0.7) or share not in random:
            continue
        for label, entry in ((f"router {share:.0%}", row), (f"random {share:.0%}", random[share])):
            recovered = (entry["map"] - result["exit1"]["map"]) / gap if gap > 0 else float("nan")
            lines.append(f"{label:<16} {entry['map']:>6.3f} {entry['map50']:>6.3f} "
                         f"{entry.get('ms_per_image', row['ms_per_image']):>7.2f} {recovered:>13.0%}")
    return "\n".join(lines)


def difficulty_correlation(dataset, scores) -> float | None:
    """Spearman rho between router difficulty (1 - easiness) and the dataset's recorded true difficulty."""
    from scipy.stats import spearmanr

    records = dataset.source.records[: len(scores)]
    meta_path = next((p / "metadata.json" for p in Path(records[0].path).parents
                      if (p / "metadata.json").exists()), None) if records else None
    if meta_path is None:
        return None
    meta = json.loads(meta_path.read_text())
    truth = _true_difficulty_by_file(meta)
    pairs = [(1 - s, truth[Path(r.path).name]) for s, r in zip(scores, records) if Path(r.path).name in truth]
    if len(pairs) < 3:
        return None
    rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
    return round(float(rho), 4)


def _true_difficulty_by_file(meta: dict) -> dict[str, float]:
    images = meta.get("images", meta)
    out = {}
    for entry in images if isinstance(images, list) else []:
        name = Path(entry.get("file_name", entry.get("file", ""))).name
        factors = entry.get("factors", entry)
        value = factors.get("true_difficulty")
        if name and value is not None:
            out[name] = float(value)
    return out
