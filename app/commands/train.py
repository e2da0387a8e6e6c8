"""`train`: both training phases from a config file; `--set key=value` overrides existing keys."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from engine.errors import ConfigError, UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a dynamic detector (phase 1 detectors, phase 2 router)")
    parser.add_argument("--config", required=True, help="training YAML, e.g. configs/train/bundled.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from <output_dir>/<name>/last.pt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set detectors.epochs=2 (YAML value syntax)")
    parser.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict[str, object]:
    from engine.config import parse_yaml  # yaml: kept out of the other commands' start-up

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = parse_yaml(value, f"--set {key.strip()}")
    return overrides


def run(args: argparse.Namespace) -> int:
    # The training code brings torch and the data's decoders (cv2).
    from engine.config import with_overrides
    from engine.train.config import load_train_config
    from engine.train.run import train

    cfg = with_overrides(load_train_config(args.config), parse_overrides(args.set))
    check_data_exists(cfg.data.path)
    start = time.perf_counter()
    path = train(cfg, resume=args.resume)
    print(json.dumps({"model": str(path), "minutes": round((time.perf_counter() - start) / 60, 1)}))
    print(next_steps(path, cfg.data.path), file=sys.stderr)
    return 0


def check_data_exists(data_path: str) -> None:
    """Missing training data is named as such, with the command that makes the generated kind."""
    path = Path(data_path)
    if path.exists():
        return
    folder = path.parent if path.suffix in (".yaml", ".yml") else path
    raise UserError(f"training data not found: {path} (data.path); generate a dataset there with "
                    f"`python main.py synth --out {folder} --images 200`, or point data.path at your own "
                    "data.yaml or COCO folder (docs/data.md)")


def next_steps(model: object, data_path: str) -> str:
    """What a person does with a freshly trained model."""
    return "\n".join([
        f"trained and calibrated on the validation split: {model}. Next:",
        f"  python main.py eval --weights {model} --data {data_path}   # mAP of each exit and the router",
        f"  python main.py calibrate --weights {model} --data DATA --out OUT   # thresholds, costs on this machine",
        f"  python main.py run --weights {model} --source VIDEO        # or gui, or monitor with cameras.yaml",
    ])
