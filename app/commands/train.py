"""`train`: both training phases from a config file; `--set key=value` overrides existing keys."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a dynamic detector (phase 1 detectors, phase 2 router)")
    parser.add_argument("--config", required=True, help="training YAML, e.g. configs/train/bundled.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from <output_dir>/<name>/last.pt")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set detectors.epochs=2 (YAML value syntax)")
    parser.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict[str, object]:
    from engine.config import parse_yaml
    from engine.errors import ConfigError

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = parse_yaml(value, f"--set {key.strip()}")
    return overrides


def run(args: argparse.Namespace) -> int:
    import time

    from engine.config import with_overrides
    from engine.train.config import load_train_config
    from engine.train.run import train

    cfg = with_overrides(load_train_config(args.config), parse_overrides(args.set))
    start = time.perf_counter()
    path = train(cfg, resume=args.resume)
    print(json.dumps({"model": str(path), "minutes": round((time.perf_counter() - start) / 60, 1)}))
    return 0
