"""What the window costs: the same realtime run headless (`run`) and in the GUI under Xvfb.

Both play the source at its own rate with the controller holding ``--target-fps`` for about
``--minutes`` each, one after the other. Prints one JSON line per run (processing rate against
target, exit-2 share, CPU seconds per processed frame) and one comparing them. Needs xvfb-run
(scripts/install_system_deps.sh).
    python scripts/bench_gui.py [--minutes 5] [--target-fps 23] [--backend torch --threads 2 --imgsz 640]
                                [--source V]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[dict, float, float]:
    """Run a command; its JSON summary line, wall seconds and CPU seconds (children included)."""
    cpu, wall = children_cpu_s(), time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - wall, children_cpu_s() - cpu
    if result.returncode != 0:
        raise SystemExit(f"{command[2:4]} failed ({result.returncode}): {result.stderr.strip()[-400:]}")
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    return summary, wall, cpu


def describe(name: str, summary: dict, wall: float, cpu: float, target: float) -> dict:
    frames = summary["frames_processed"]
    return {"measure": name, "frames": frames, "processing_fps": summary["processing_fps"],
            "error_vs_target": round(summary["processing_fps"] / target - 1, 4),
            "second_exit_fraction": summary["second_exit_fraction"], "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "cpu_ms_per_frame": round(1000 * cpu / max(frames, 1), 2),
            "p95_latency_ms": summary.get("p95_latency_ms")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--target-fps", type=float, default=23.0)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=640,
                        help="network input size: 640 makes both exits slower than the 30 fps demo, so the "
                             "controller has to mix them")
    parser.add_argument("--source", help="video file (default: the bundled demo)")
    args = parser.parse_args()
    if shutil.which("xvfb-run") is None:
        print("error: xvfb-run not found; run scripts/install_system_deps.sh", file=sys.stderr)
        return 1
    model = ["--backend", args.backend, "--threads", str(args.threads), "--imgsz", str(args.imgsz),
             "--target-fps", str(args.target_fps)]
    source = ["--source", args.source] if args.source else []
    frames = str(round(args.minutes * 60 * args.target_fps))
    main_py = [sys.executable, str(ROOT / "main.py")]
    headless = main_py + ["run", *source, *model, "--realtime", "--loop", "--max-frames", frames, "--no-progress"]
    window = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *main_py, "gui", *source, *model,
              "--quit-after-frames", frames, "--summary"]
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # a real X server, not offscreen
    rows = [describe("headless", *timed(headless), args.target_fps),
            describe("gui", *timed(window, env), args.target_fps)]
    for row in rows:
        print(json.dumps(row), flush=True)
    base, gui = rows
    print(json.dumps({"measure": "gui_cost", "fps_ratio": round(gui["processing_fps"] / base["processing_fps"], 4),
                      "cpu_per_frame_ratio": round(gui["cpu_ms_per_frame"] / base["cpu_ms_per_frame"], 4)}),
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
