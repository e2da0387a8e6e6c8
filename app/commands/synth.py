"""`synth`: write a synthetic training dataset (YOLO + COCO) or a demo video with ground truth."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from engine.errors import UserError

_SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
# Two decimal numbers joined by a dash; a leading minus sign is accepted so that the range check,
# not the pattern, tells the user that values below 0 are out of range.
_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)"
_RANGE_PATTERN = re.compile(rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*$")
_DATASET_ONLY = ("images", "imgsz", "val_fraction", "overwrite")
_VIDEO_ONLY = ("frames", "fps", "size", "difficulty")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` command to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic dataset or demo video",
        description="Render procedural shape scenes with exact ground truth: a dataset (--out) in YOLO and "
        "COCO layouts, or a video (--video) with per-frame COCO JSON beside it.",
    )
    parser.add_argument("--out", metavar="DIR", help="dataset root to write")
    parser.add_argument("--video", metavar="OUT.mp4", help="video file to write (ground truth goes to OUT.json)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; equal seeds give identical output")
    dataset = parser.add_argument_group("dataset options (with --out)")
    dataset.add_argument("--images", type=int, metavar="N", help="number of images (default 1000)")
    dataset.add_argument("--imgsz", type=int, metavar="S", help="square image side in px (default 320)")
    dataset.add_argument("--val-fraction", type=float, metavar="F", help="validation share (default 0.2)")
    dataset.add_argument("--overwrite", action="store_true", default=None, help="replace an earlier dataset in DIR")
    video = parser.add_argument_group("video options (with --video)")
    video.add_argument("--frames", type=int, metavar="N", help="number of frames (default 450)")
    video.add_argument("--fps", type=int, metavar="F", help="frame rate (default 15)")
    video.add_argument("--size", metavar="WxH", help="frame size, even sides (default 640x360)")
    video.add_argument("--difficulty", metavar="LO-HI",
                       help="range the clip's difficulty stays in, e.g. 0.0-0.3 (calm) or 0.7-1.0 (busy); "
                       "default 0-1")
    parser.set_defaults(func=run)


def parse_size(value: str) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)``."""
    match = _SIZE_PATTERN.match(value)
    if match is None:
        raise UserError(f"--size must look like WIDTHxHEIGHT, e.g. 640x360; got {value!r}")
    return int(match.group(1)), int(match.group(2))


def parse_range(value: str) -> tuple[float, float]:
    """``"0.2-0.6"`` -> ``(0.2, 0.6)``; the bounds themselves are checked by the generator."""
    match = _RANGE_PATTERN.match(value)
    if match is None:
        raise UserError(f"--difficulty must be two numbers LO-HI, e.g. 0.0-0.3; got {value!r}")
    return float(match.group(1)), float(match.group(2))


def _reject_foreign_options(args: argparse.Namespace, names: tuple[str, ...], mode: str) -> None:
    for name in names:
        if getattr(args, name) is not None:
            raise UserError(f"--{name.replace('_', '-')} does not apply with {mode}")


def run(args: argparse.Namespace) -> int:
    """Write the dataset or video the arguments ask for and print a one-line JSON summary."""
    if (args.out is None) == (args.video is None):
        raise UserError("give exactly one of --out DIR (dataset) or --video OUT.mp4")
    started = time.perf_counter()
    if args.out is not None:
        _reject_foreign_options(args, _VIDEO_ONLY, "--out")
        summary = _write_dataset(args)
    else:
        _reject_foreign_options(args, _DATASET_ONLY, "--video")
        summary = _write_video(args)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary))
    return 0


def _write_dataset(args: argparse.Namespace) -> dict:
    from engine.data.synthetic import write_dataset

    data_yaml = write_dataset(
        args.out,
        1000 if args.images is None else args.images,
        args.seed,
        imgsz=320 if args.imgsz is None else args.imgsz,
        val_fraction=0.2 if args.val_fraction is None else args.val_fraction,
        overwrite=bool(args.overwrite),
    )
    metadata = json.loads((data_yaml.parent / "metadata.json").read_text(encoding="utf-8"))
    return {
        "kind": "dataset",
        "out": str(data_yaml.parent),
        "data_yaml": str(data_yaml),
        "coco": str(data_yaml.parent / "annotations"),
        "images": metadata["num_images"],
        **metadata["counts"],
        "imgsz": metadata["imgsz"],
        "seed": args.seed,
    }


def _write_video(args: argparse.Namespace) -> dict:
    from engine.data.synthetic import ground_truth_path, write_video
    from engine.data.synthetic.difficulty import FULL_RANGE

    size = parse_size(args.size) if args.size is not None else (640, 360)
    difficulty = parse_range(args.difficulty) if args.difficulty is not None else FULL_RANGE
    frames = 450 if args.frames is None else args.frames
    fps = 15 if args.fps is None else args.fps
    video = write_video(args.video, frames, args.seed, fps=fps, size=size, difficulty_range=difficulty)
    return {
        "kind": "video",
        "video": str(video),
        "ground_truth": str(ground_truth_path(video)),
        "frames": frames,
        "fps": fps,
        "size": list(size),
        "duration_s": round(frames / fps, 3),
        "difficulty": list(difficulty),
        "bytes": Path(video).stat().st_size,
        "seed": args.seed,
    }
