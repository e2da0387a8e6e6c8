"""Per-exit CPU latency of the PyTorch model (fused, batch 1), beside the reference figures.

Prints one JSON line per configuration. Medians of repeated runs after warm-up; compare the
ratios, not the absolute numbers, on shared machines.
    python scripts/bench_model.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.model.build import build_dynamic_detector
from engine.model.variants import arch_by_name

# Reference implementation on this machine kind (fused, batch 1): ../shared/reference/parity/README.md.
REFERENCE_MS = {("dy-yolov7", 320): (327.0, 675.0), ("dy-yolov7", 640): (1187.0, 2443.0)}


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@torch.inference_mode()
def bench(name: str, imgsz: int, runs: int, width: float | None = None) -> dict:
    arch = arch_by_name(name, **({"width_multiple": width} if width else {}))
    model = build_dynamic_detector(arch).eval().fuse()
    x = torch.rand(1, 3, imgsz, imgsz)
    row = {"model": name, "width": arch.width_multiple, "imgsz": imgsz}
    for layout in ("contiguous", "channels_last"):
        m = model.to(memory_format=torch.channels_last) if layout == "channels_last" else model
        xi = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x
        exit1 = median_ms(lambda m=m, xi=xi: m.exit1(m.stage1(xi)), runs)
        exit2 = median_ms(lambda m=m, xi=xi: m.exit2(m.stage1(xi)), runs)
        row[layout] = {"exit1_ms": round(exit1, 1), "exit2_ms": round(exit2, 1)}
    ref = REFERENCE_MS.get((name, imgsz))
    if ref:
        best = row["channels_last"]
        row["reference_ms"] = {"exit1_ms": ref[0], "exit2_ms": ref[1]}
        row["speedup_vs_reference"] = {"exit1": round(ref[0] / best["exit1_ms"], 2),
                                       "exit2": round(ref[1] / best["exit2_ms"], 2)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    for name, imgsz, width in (("dy-yolov7-tiny", 320, None), ("dy-yolov7-tiny", 320, 0.5),
                               ("dy-yolov7", 320, None), ("dy-yolov7", 640, None)):
        print(json.dumps(bench(name, imgsz, args.runs, width)), flush=True)


if __name__ == "__main__":
    main()
