#!/usr/bin/env bash
# Rebuilds the bundled model and demo video from scratch (about 90 minutes on a 2-core CPU):
# generate the training world, train both phases, calibrate, evaluate on a held-out world,
# and copy the results into assets/. Run from the repository root: `make model`.
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRAIN_SEED=1          # training images
HELDOUT_SEED=20261123 # evaluation images: a seed never used in training
DEMO_SEED=7

"$PY" main.py synth --out runs/synth-train --images 18000 --seed "$TRAIN_SEED" --imgsz 320 --overwrite
"$PY" main.py train --config configs/train/bundled.yaml "$@"
cp runs/train/bundled/model.safetensors assets/dy-yolov7-tiny.safetensors
cp runs/train/bundled/training.png assets/training.png
"$PY" main.py synth --out runs/synth-heldout --images 1000 --seed "$HELDOUT_SEED" --imgsz 320 \
    --val-fraction 1.0 --overwrite
"$PY" main.py eval --weights assets/dy-yolov7-tiny.safetensors --data runs/synth-heldout/data.yaml \
    --plot assets/tradeoff.png | tee assets/heldout-eval.json
"$PY" main.py synth --video assets/demo.mp4 --frames 900 --fps 30 --size 640x360 --seed "$DEMO_SEED"
