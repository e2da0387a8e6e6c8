"""Long live run against a real RTSP camera stand-in: memory stays flat, latency stays bounded.

Starts the GStreamer test server (tests/support/rtsp_server.py, needs the Debian packages of
scripts/install_system_deps.sh), runs ``main.py run`` on it with recording, events and the
controller for ``--minutes``, samples the process's resident memory every few seconds, and
prints JSON lines: memory after warm-up against the end of the run (samples while frames flow;
start-up and shutdown excluded), and capture-to-result latency per minute from the events file.
    python scripts/soak_live.py [--minutes 10] [--target-fps 20] [--size 640x360 --fps 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import RtspServer, free_port, rtsp_unavailable_reason  # noqa: E402

WARM_UP_S = 60.0
SAMPLE_EVERY_S = 5.0


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MiB (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def first_and_last_event(events: Path) -> tuple[float, float]:
    """Wall times of the first and last processed frame."""
    with events.open() as lines:
        times = [json.loads(line)["wall_time"] for line in lines]
    return times[0], times[-1]


def latency_by_minute(events: Path) -> list[dict]:
    rows: dict[int, list[float]] = {}
    start = None
    with events.open() as lines:
        for line in lines:
            event = json.loads(line)
            start = start if start is not None else event["wall_time"]
            rows.setdefault(int((event["wall_time"] - start) // 60), []).append(event["latency_ms"])
    return [{"minute": m, "frames": len(v), "p50_ms": round(float(np.median(v)), 1),
             "p95_ms": round(float(np.percentile(v, 95)), 1), "max_ms": round(float(np.max(v)), 1)}
            for m, v in sorted(rows.items())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--target-fps", type=float, default=20.0)
    parser.add_argument("--size", default="640x360", help="stream size WxH")
    parser.add_argument("--fps", type=int, default=30, help="stream frame rate")
    parser.add_argument("--keep", help="folder to keep the recording and events in")
    args = parser.parse_args()
    if reason := rtsp_unavailable_reason():
        print(f"error: {reason}", file=sys.stderr)
        return 1
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.keep or tempfile.mkdtemp(prefix="soak-"))
    out.mkdir(parents=True, exist_ok=True)
    server = RtspServer(free_port(), out / "server.log")
    server.start(width=width, height=height, fps=args.fps)
    duration = args.minutes * 60
    command = [sys.executable, str(ROOT / "main.py"), "run", "--source", server.url, "--duration", str(duration),
               "--target-fps", str(args.target_fps), "--record", str(out / "soak.mkv"),
               "--events", str(out / "events.jsonl")]
    try:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        samples: list[tuple[float, float]] = []  # (wall time, RSS)
        while process.poll() is None:
            if (rss := rss_mb(process.pid)) is not None:
                samples.append((time.time(), rss))
            time.sleep(SAMPLE_EVERY_S)
        summary = json.loads(process.stdout.read().strip().splitlines()[-1])
    finally:
        server.kill()
    # Only while frames flowed: model loading before, and shutdown after, are not the run.
    first, last = first_and_last_event(out / "events.jsonl")
    running = [(t - first, rss) for t, rss in samples if first <= t <= last]
    after_warm_up = [rss for t, rss in running if t >= WARM_UP_S]
    memory = {"measure": "memory", "minutes": args.minutes, "rss_at_warm_up_mb": round(after_warm_up[0], 1),
              "rss_max_after_warm_up_mb": round(max(after_warm_up), 1), "rss_end_mb": round(after_warm_up[-1], 1),
              "growth_after_warm_up_mb": round(max(after_warm_up) - after_warm_up[0], 1),
              "samples": len(running),
              "rss_by_minute_mb": [round(rss, 1) for t, rss in running if t % 60 < SAMPLE_EVERY_S]}
    print(json.dumps({"measure": "run_summary", **summary}), flush=True)
    print(json.dumps(memory), flush=True)
    for row in latency_by_minute(out / "events.jsonl"):
        print(json.dumps({"measure": "latency", **row}), flush=True)
    return 0 if process.returncode == 0 else process.returncode


if __name__ == "__main__":
    raise SystemExit(main())
