#!/usr/bin/env bash
# Trains the Dy-Faster R-CNN (two half-width ResNet-18-FPN detectors, 320 px) on the generated
# world, about an hour on a 2-core CPU, and evaluates it on the held-out world: `make model-rcnn`.
# The model goes to assets/dy-faster-rcnn-r18.safetensors (float16 storage), its evaluation and
# plots to docs/dy-faster-rcnn/. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRAIN_SEED=1          # the same training world as the bundled YOLO model
HELDOUT_SEED=20261123 # evaluation images: a seed never used in training
OUT=docs/dy-faster-rcnn
MODEL=assets/dy-faster-rcnn-r18.safetensors

if [ ! -f runs/synth-train/data.yaml ]; then
    "$PY" main.py synth --out runs/synth-train --images 18000 --seed "$TRAIN_SEED" --imgsz 320 --overwrite
fi
"$PY" main.py train --config configs/train/rcnn.yaml "$@"
mkdir -p "$OUT"
cp runs/train/rcnn/training.png "$OUT/training.png"
cp runs/train/rcnn/metrics.csv "$OUT/metrics.csv"
# Re-measure thresholds and exit costs on the training world's validation split, store as float16.
"$PY" main.py calibrate --weights runs/train/rcnn/model.safetensors --data runs/synth-train/data.yaml \
    --max-images 400 --out "$MODEL" --half
if [ ! -f runs/synth-heldout/data.yaml ]; then
    "$PY" main.py synth --out runs/synth-heldout --images 1000 --seed "$HELDOUT_SEED" --imgsz 320 \
        --val-fraction 1.0 --overwrite
fi
"$PY" main.py eval --weights "$MODEL" --data runs/synth-heldout/data.yaml --plot "$OUT/tradeoff.png" \
    | tee "$OUT/heldout-eval.json"
"$PY" main.py info --weights "$MODEL" | tee "$OUT/info.json"
