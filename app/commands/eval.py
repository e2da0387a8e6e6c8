"""`eval`: COCO mAP of each exit, the router at every calibrated share, and random routing; one JSON object."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.commands.data_args import add_data_arguments, open_eval_data


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate both exits, the router and random routing")
    add_data_arguments(parser)
    parser.add_argument("--plot", help="trade-off plot PNG (default: beside the weights, <name>-tradeoff.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-routing baseline")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.commands.common import default_weights, input_size
    from engine.model.checkpoint import load_detector
    from engine.train.calibrate import exit_latency_ms
    from engine.train.evaluate import evaluate_routing, run_validation
    from engine.train.plots import plot_tradeoff

    weights = Path(args.weights or default_weights())
    model = load_detector(weights)
    imgsz = input_size(args.imgsz, model.input_size)
    dataset, batches = open_eval_data(args, imgsz, model.class_names)
    run_ = run_validation(model, batches, args.max_images)
    result = evaluate_routing(run_, model.arch.num_classes, seed=args.seed)
    exit1_ms, exit2_ms = exit_latency_ms(model, imgsz)
    for row in result["router"] + result["random"]:
        p = row["second_fraction"]
        row["ms_per_image"] = round((1 - p) * exit1_ms + p * exit2_ms, 2)
    result["exit1"]["ms_per_image"], result["exit2"]["ms_per_image"] = round(exit1_ms, 2), round(exit2_ms, 2)
    result["images"] = len(run_.truth)
    result["difficulty_correlation"] = difficulty_correlation(dataset, run_.scores)
    plot = Path(args.plot) if args.plot else weights.with_name(f"{weights.stem}-tradeoff.png")
    plot_tradeoff(result, plot)
    result["plot"] = str(plot)
    print(json.dumps(result))
    return 0


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
