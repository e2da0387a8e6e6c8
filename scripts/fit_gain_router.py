"""Refit a model's router to rank frames by what exit 2 adds to their AP (see engine/train/gain_router.py).

Training frames are generated at seeds that neither the bundled model's data, its held-out set,
the demo, nor the allocation study's and benchmarks' cameras use: stills of nominal difficulty
uniform over [0, 1], and clips (moving scenes, H.264 as a camera delivers them) whose difficulty
stays calm, busy, in between or anywhere. Both exits run on every frame once; the samples are
cached under ``runs/gain-router``, so refits with other settings cost seconds.

    python scripts/fit_gain_router.py --out runs/router-gain.safetensors
    python scripts/allocation_study.py --router runs/router-gain.safetensors
    python main.py calibrate --weights runs/router-gain.safetensors --data runs/synth-heldout/data.yaml

The written model has the same detectors; its calibration is dropped (its thresholds belonged to
the old router): calibrate it before use.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.data.synthetic.video import write_video  # noqa: E402
from engine.model.checkpoint import load_model, save_model  # noqa: E402
from engine.train.gain_router import GainSamples, collect, fit_router  # noqa: E402
from scripts.allocation_study import clip_frames, detectors_key, generated_frames  # noqa: E402

WORK = REPO / "runs" / "gain-router"
#: Stills: allocation-study seed streams from here on (the study's own cameras use 0 and 1).
STILL_STREAM = 100
#: Clips: (difficulty range, seed); seeds apart from the demo (7) and the benchmarks' (71xx, 72xx).
CLIPS = (((0.0, 0.3), 9101), ((0.7, 1.0), 9201), ((0.3, 0.7), 9301), ((0.0, 1.0), 9401),
         ((0.0, 0.3), 9102), ((0.7, 1.0), 9202), ((0.3, 0.7), 9302), ((0.0, 1.0), 9402))


def samples(model, args) -> GainSamples:
    key = hashlib.sha256(f"{detectors_key(model)}-{args.stills}-{args.clips}-{args.clip_frames}-{args.imgsz}"
                         .encode()).hexdigest()[:12]
    cache = WORK / f"samples-{key}.npz"
    if cache.exists():
        return GainSamples(**np.load(cache))
    parts = []
    stills = ((image, truth) for image, truth, _ in generated_frames(0.0, 1.0, args.stills, STILL_STREAM, args.imgsz))
    parts.append(collect(model, stills, args.imgsz))
    for (lo, hi), seed in CLIPS[:args.clips]:
        path = WORK / f"clip-{seed}-{args.clip_frames}.mp4"
        if not path.exists():
            write_video(path, args.clip_frames, seed, difficulty_range=(lo, hi))
        parts.append(collect(model, ((image, truth) for image, truth, _ in clip_frames(path)), args.imgsz))
        print(f"clip {seed} ({lo}-{hi}): {len(parts[-1])} frames, mean gain {parts[-1].gain.mean():.4f}",
              file=sys.stderr, flush=True)
    out = GainSamples.concat(parts)
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **asdict(out))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(REPO / "assets/dy-yolov7-tiny.safetensors"))
    parser.add_argument("--out", required=True, help="model file to write, with the refitted router")
    parser.add_argument("--stills", type=int, default=2000)
    parser.add_argument("--clips", type=int, default=len(CLIPS))
    parser.add_argument("--clip-frames", type=int, default=300)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loaded = load_model(args.weights)
    model = loaded.model.eval()
    data = samples(model, args)
    result = fit_router(model.router, data, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay)
    save_model(args.out, replace(loaded, calibration=None))
    print(json.dumps({"out": args.out, "frames": len(data), "mean_gain": round(float(data.gain.mean()), 4),
                      **asdict(result)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
