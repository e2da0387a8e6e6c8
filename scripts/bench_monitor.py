"""Multi-camera benchmarks: allocation (mAP under one budget), live (streaming mAP), scale (cameras per box).

    python scripts/bench_monitor.py allocation   # 2 calm + 2 busy generated cameras, all frames
    python scripts/bench_monitor.py allocation --size 320x320   # the same scenes at the model's input size
    python scripts/bench_monitor.py live --backend torch   # the same cameras in real time
    python scripts/bench_monitor.py scale        # 1..16 cameras at 640x360, 15 fps, 5 fps processed each
    python scripts/bench_monitor.py scale --workers 1,2   # the same, one engine worker against two

Every figure of one invocation comes from the same process and the same loaded model, so the
ratios between rows are comparable even on a noisy machine. Clips are generated once into
``runs/bench-monitor/`` (unseen seeds) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data.synthetic.video import ground_truth_path, write_video  # noqa: E402
from engine.model.loading import LoadedPredictor, load_predictor  # noqa: E402
from engine.runtime.monitor import Monitor  # noqa: E402
from engine.runtime.monitor_config import CameraSettings  # noqa: E402
from engine.runtime.queues import StreamEnd, get_item  # noqa: E402
from engine.runtime.routing import RoutingMode  # noqa: E402
from engine.runtime.sinks import EventLog  # noqa: E402
from engine.train.stream_eval import evaluate_events_file  # noqa: E402

WORK = ROOT / "runs" / "bench-monitor"
CALM, BUSY = (0.0, 0.3), (0.7, 1.0)
#: Two calm and two busy cameras, seeds none of the bundled model's data used.
FLEET = (("calm1", CALM, 7101), ("calm2", CALM, 7102), ("busy1", BUSY, 7201), ("busy2", BUSY, 7202))
FLEET_SIZE = (640, 360)


def clip(name: str, difficulty: tuple[float, float], seed: int, frames: int, size=FLEET_SIZE, fps=15) -> Path:
    path = WORK / f"{name}-{seed}-{frames}-{size[0]}x{size[1]}.mp4"
    if not path.exists() or not ground_truth_path(path).exists():
        write_video(path, frames, seed, fps=fps, size=size, difficulty_range=difficulty)
    return path


def run_fleet(loaded: LoadedPredictor, cameras: list[CameraSettings], mode: RoutingMode, allocation: str,
              duration: float | None = None, batch: int = 1) -> dict:
    """One monitor run; every camera's events written; returns rates, shares and latencies."""
    monitor = Monitor(cameras, loaded.predictor, mode, allocation, loaded.calibration, max_batch=batch)
    logs = {c.name: EventLog(c.events) for c in cameras if c.events}
    processed = dict.fromkeys(monitor.camera_names, 0)
    first_at: dict[str, float] = {}  # each camera's first and latest result: its rate once running
    last_at: dict[str, float] = {}
    ended: set[str] = set()
    cpu0, start = time.process_time(), time.perf_counter()
    monitor.start()
    try:
        while len(ended) < len(cameras) and (duration is None or time.perf_counter() - start < duration):
            entry = get_item(monitor.results, 0.1)
            if entry is None:
                continue
            name, item = entry
            if isinstance(item, StreamEnd):
                ended.add(name)
                continue
            processed[name] += 1
            last_at[name] = time.perf_counter()
            first_at.setdefault(name, last_at[name])
            if name in logs:
                logs[name].offer(item)
    finally:
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        monitor.shutdown()
        for log in logs.values():
            log.close()
    per_camera = {}
    for name in monitor.camera_names:
        stats = monitor.stats(name)
        span = last_at.get(name, 0.0) - first_at.get(name, 0.0)
        per_camera[name] = {"fps": round(processed[name] / elapsed, 2),
                            # from the camera's first result on: start-up (opening, first decode) left out
                            "steady_fps": round((processed[name] - 1) / span, 2) if span > 0 else 0.0,
                            "exit2": round(stats.lane.second_exit_fraction, 3),
                            "p50_ms": round(stats.lane.p50_latency_ms, 1),
                            "p95_ms": round(stats.lane.p95_latency_ms, 1), "dropped": stats.frames_dropped}
    total = sum(processed.values())
    exit2 = sum(per_camera[n]["exit2"] * processed[n] for n in processed) / max(total, 1)
    return {"fps": round(total / elapsed, 2), "cameras": per_camera,
            "cpu_ms_per_frame": round(1000 * cpu / max(total, 1), 2), "exit2": round(exit2, 3)}


def fleet_cameras(frames: int, tag: str, realtime: bool = False, track: bool = True,
                  size: tuple[int, int] = FLEET_SIZE) -> list[CameraSettings]:
    out = WORK / f"{tag}-{size[0]}x{size[1]}"
    out.mkdir(parents=True, exist_ok=True)
    return [CameraSettings(name=name, source=str(clip(name, difficulty, seed, frames, size)), realtime=realtime,
                           events=str(out / f"{name}.jsonl"), track=track) for name, difficulty, seed in FLEET]


def scores(cameras: list[CameraSettings], key: str) -> dict:
    per = {c.name: evaluate_events_file(c.events, ground_truth_path(c.source))[key] for c in cameras}
    return {"mean": round(sum(per.values()) / len(per), 4), **{k: round(v, 4) for k, v in per.items()}}


def allocation(loaded: LoadedPredictor, frames: int, size: tuple[int, int] = FLEET_SIZE) -> None:
    """Global against per-camera: under the controller at a quarter and at half of the way between the
    exits' rates, and at the same fixed exit-2 shares (equal cost by construction).

    Tracking is off here: it costs the same under either allocation and would only narrow the
    range between the exits' rates that the controller works in.
    """
    rows = {}
    for route in ("first", "second"):
        cameras = fleet_cameras(frames, f"alloc-{route}", track=False, size=size)
        rows[route] = run_fleet(loaded, cameras, RoutingMode(route), "global")
        rows[route]["map"] = scores(cameras, "map")
        print(json.dumps({"run": f"all-exit-{route}", **rows[route]}), flush=True)
    r1, r2 = rows["first"]["fps"], rows["second"]["fps"]
    for fraction in (0.25, 0.5):
        target = r1 - fraction * (r1 - r2)
        for policy in ("per-camera", "global"):
            for mode, label in ((RoutingMode("target_fps", target), f"target@{fraction:g}"),
                                (RoutingMode("second_fraction", fraction), f"share@{fraction:g}")):
                cameras = fleet_cameras(frames, f"alloc-{label}-{policy}", track=False, size=size)
                result = run_fleet(loaded, cameras, mode, policy)
                result["map"] = scores(cameras, "map")
                if mode.kind == "target_fps":
                    result["target_fps"] = round(target, 2)
                    result["rate_error"] = round(result["fps"] / target - 1, 4)
                print(json.dumps({"run": f"{policy} {label}", **result}), flush=True)


def live(loaded: LoadedPredictor, frames: int, size: tuple[int, int] = FLEET_SIZE) -> None:
    """The four cameras at their native 15 fps: per-camera rate, latency and streaming mAP.

    The total target lies half-way between the rates of the exits (all frames, measured first). It
    binds only where the cameras deliver more than that (4 x 15 fps): with ``--backend torch`` on a
    small CPU; a graph runtime keeps up with exit 2 on every frame and spends its spare time on it.
    """
    rates = [run_fleet(loaded, fleet_cameras(frames, f"live-probe-{route}", track=False, size=size),
                       RoutingMode(route), "global")["fps"] for route in ("first", "second")]
    target = (rates[0] + rates[1]) / 2
    print(json.dumps({"probe_fps": {"exit1": rates[0], "exit2": rates[1]}, "target_fps": round(target, 2)}))
    runs = [("all-exit-1", RoutingMode("first"), "global"), ("all-exit-2", RoutingMode("second"), "global"),
            ("per-camera", RoutingMode("target_fps", target), "per-camera"),
            ("global", RoutingMode("target_fps", target), "global")]
    for label, mode, policy in runs:
        cameras = fleet_cameras(frames, f"live-{label}", realtime=True, size=size)
        result = run_fleet(loaded, cameras, mode, policy)
        result["streaming_map"] = scores(cameras, "streaming_map")
        result["target_fps"] = round(target, 2) if mode.kind == "target_fps" else None
        print(json.dumps({"run": label, **result}), flush=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def thread_cpu() -> dict[str, float]:
    """CPU seconds per kind of thread: decode, capture, engine, fan-out, recording, and the
    inference runtime's own native worker pools (threads Python did not start)."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    kinds: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(int(tid), "native")
        if name.startswith(("capture-reader", "probe-reader")):
            kind = "decode"
        elif name in ("native", "engine", "fanout", "recorder", "writer", "MainThread"):
            kind = name
        else:
            kind = name.split(":")[0].split("-")[0]
        kinds[kind] = kinds.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return kinds


def scale(models: dict[int, LoadedPredictor], seconds: float, batch: int, counts: list[int],
          track: bool = True, rounds: int = 1) -> None:
    """N cameras at 640x360/15 fps, each processed at 5 fps: does any fall behind, and what limits?

    With several worker counts, each camera count runs once per worker count, back to back, for
    ``rounds`` rounds; the last lines give each setting's median over the rounds (this machine
    kind's speed drifts by up to 2x over minutes, so only settings run side by side compare).
    """
    base = rss_mb()
    rows: dict[tuple[int, int], list[dict]] = {}
    for count in counts:
        cameras = [CameraSettings(name=f"cam{i}", source=str(clip(f"scale{i % 4}", (0.0, 1.0), 7300 + i % 4, 450)),
                                  realtime=True, loop=True, fps=5.0, track=track) for i in range(count)]
        for round_ in range(rounds):
            for workers, loaded in models.items():
                sampler = _ThreadSampler()
                sampler.start()
                result = run_fleet(loaded, cameras, RoutingMode("target_fps", 5.0 * count), "global",
                                   duration=seconds, batch=batch)
                busy = sampler.stop()
                row = {"cameras": count, "workers": workers, "round": round_, "batch": batch, "track": track,
                       "total_fps": result["fps"],
                       "slowest_camera_fps": min(c["fps"] for c in result["cameras"].values()),
                       "slowest_camera_steady_fps": min(c["steady_fps"] for c in result["cameras"].values()),
                       "exit2": result["exit2"], "cpu_ms_per_frame": result["cpu_ms_per_frame"],
                       "rss_mb_over_base": round(rss_mb() - base, 1), "cpu_share_by_thread": busy}
                rows.setdefault((count, workers), []).append(row)
                print(json.dumps(row), flush=True)
    if rounds > 1:
        for (count, workers), runs in rows.items():
            median = {key: round(float(np.median([r[key] for r in runs])), 3)
                      for key in ("total_fps", "slowest_camera_fps", "slowest_camera_steady_fps", "exit2",
                                  "cpu_ms_per_frame")}
            print(json.dumps({"cameras": count, "workers": workers, "median_of_rounds": rounds, **median}), flush=True)


class _ThreadSampler:
    """Samples per-thread CPU while a run goes on (threads end with the run, so sample as it runs)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = 0.0

    def start(self) -> None:
        self._start = time.perf_counter()
        self._before = thread_cpu()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.last = thread_cpu()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        wall = time.perf_counter() - self._start
        return {k: round((v - self._before.get(k, 0.0)) / wall, 3) for k, v in sorted(self.last.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["allocation", "live", "scale"])
    parser.add_argument("--weights", default=str(ROOT / "assets" / "dy-yolov7-tiny.safetensors"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--frames", type=int, default=300, help="frames per generated camera")
    parser.add_argument("--size", default="640x360", help="allocation, live: WxH of the four cameras' clips")
    parser.add_argument("--seconds", type=float, default=20.0, help="scale: seconds per camera count")
    parser.add_argument("--batch", type=int, default=1, help="scale: most cameras' frames per model call")
    parser.add_argument("--counts", default="1,2,4,8,16", help="scale: camera counts to run")
    parser.add_argument("--no-track", action="store_true", help="scale: cameras without tracking")
    parser.add_argument("--rounds", type=int, default=1, help="scale: rounds of every setting, side by side")
    parser.add_argument("--workers", default="auto",
                        help="engine workers (auto: the backend's default); scale: a comma list to compare")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    counts = [None if w == "auto" else int(w) for w in args.workers.split(",")]
    models = {}
    for workers in counts:
        loaded = load_predictor(args.weights, backend=args.backend, workers=workers)
        models[loaded.predictor.workers] = loaded
    print(json.dumps({"weights": args.weights, "backend": loaded.predictor.backend.name,
                      "workers": list(models), "cpus": os.cpu_count()}), flush=True)
    if args.which == "allocation":
        allocation(loaded, args.frames, size)
    elif args.which == "live":
        live(loaded, args.frames, size)
    else:
        scale(models, args.seconds, args.batch, [int(c) for c in args.counts.split(",")], track=not args.no_track,
              rounds=args.rounds)


if __name__ == "__main__":
    main()
