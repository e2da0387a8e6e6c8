"""The fleet on a local Ray cluster: 1 node against 2, recovery after a node loss, the driver's cost.

    python scripts/bench_fleet.py [--weights W] [--seconds 20]

Builds a head and two worker nodes with one CPU each, all on 127.0.0.1 (as the tests do), and
runs 4 generated cameras (two calm, two busy; files read as fast as the engines take them, so
the rate is the engines' and not the sources') at a fixed 50 % exit-2 share with one inference
thread per engine. Prints JSON lines:

* ``two_nodes`` / ``one_node``: the total processing rate over a steady window, with both
  workers and then after one was removed (its cameras moved to the other); ``ratio``;
* ``recovery``: seconds from the node's removal to each moved camera's first result;
* ``driver``: the driver process's CPU time per camera-frame (events written, metrics updated,
  supervision and Ray's client threads all included).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = ROOT / "runs" / "bench-fleet"
CAMERAS = (("calm1", (0.0, 0.3), 7101), ("calm2", (0.0, 0.3), 7102), ("busy1", (0.7, 1.0), 7201),
           ("busy2", (0.7, 1.0), 7202))


def clips() -> dict[str, Path]:
    from engine.data.synthetic.video import write_video

    paths = {}
    for name, difficulty, seed in CAMERAS:
        path = WORK / f"{name}-{seed}.mp4"
        if not path.exists():
            write_video(path, 150, seed, fps=15, size=(320, 180), difficulty_range=difficulty)
        paths[name] = path
    return paths


def config_for(weights: Path, paths: dict[str, Path], events: Path):
    from engine.model.loading import ModelOptions
    from engine.runtime.monitor_config import BudgetSettings, CameraSettings, MonitorConfig

    cameras = tuple(CameraSettings(name, str(path), loop=True, track=False, events=str(events / f"{name}.jsonl"))
                    for name, path in paths.items())
    return MonitorConfig(cameras, ModelOptions(weights=str(weights), backend="torch", threads=1),
                         BudgetSettings(second_fraction=0.5))


class Consumer:
    """The monitor command's work per result on the driver: the event line and the metrics."""

    def __init__(self, fleet, config, port: int) -> None:
        from engine.runtime.camera_metrics import CameraMetrics
        from engine.runtime.sinks import EventLog

        self.fleet = fleet
        self.events = {c.name: EventLog(c.events) for c in config.cameras}
        self.metrics = CameraMetrics(port, [c.name for c in config.cameras])
        fleet.attach_metrics(self.metrics.registry)
        self.times: dict[str, list[float]] = {c.name: [] for c in config.cameras}

    def run_for(self, seconds: float) -> None:
        from engine.runtime.queues import get_item

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            entry = get_item(self.fleet.results, 0.1)
            if entry is None or not hasattr(entry[1], "detections"):
                continue
            camera, result = entry
            self.events[camera].offer(result)
            self.metrics.observe(camera, result)
            self.metrics.update(self.fleet.stats(camera))
            self.times[camera].append(time.time())

    def count(self, start: float, end: float) -> int:
        return sum(start <= t < end for times in self.times.values() for t in times)

    def close(self) -> None:
        for log in self.events.values():
            log.close()
        self.metrics.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "assets" / "dy-yolov7-tiny.safetensors")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each steady window")
    args = parser.parse_args()
    os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                       "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    from ray.cluster_utils import Cluster

    from engine.fleet.cluster import connect, disconnect
    from engine.fleet.driver import FleetMonitor

    paths = clips()
    node_args = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    workers = [cluster.add_node(**node_args), cluster.add_node(**node_args)]
    try:
        connect(cluster.address)
        with tempfile.TemporaryDirectory() as events:
            config = config_for(args.weights.resolve(), paths, Path(events))
            fleet = FleetMonitor(config, args.weights.resolve(), None)
            consumer = Consumer(fleet, config, _free_port())
            try:
                measure(fleet, consumer, cluster, workers, args.seconds)
            finally:
                fleet.shutdown()
                consumer.close()
    finally:
        disconnect()
        cluster.shutdown()


def measure(fleet, consumer: Consumer, cluster, workers, seconds: float) -> None:
    fleet.start()
    consumer.run_for(8.0)  # warm-up: every engine busy, controllers settled
    start, cpu = time.time(), time.process_time()
    consumer.run_for(seconds)
    end, cpu_used = time.time(), time.process_time() - cpu
    two = consumer.count(start, end) / (end - start)
    frames_two = consumer.count(start, end)
    print(json.dumps({"phase": "two_nodes", "processing_fps": round(two, 2)}), flush=True)
    lost_at = time.monotonic()
    cluster.remove_node(workers[0])
    consumer.run_for(15.0)
    recovery = {name: fleet.camera_summary(name).get("recovered_in_s") for name in fleet.camera_names
                if fleet.camera_summary(name)["moves"]}
    print(json.dumps({"phase": "recovery", "first_result_after_loss_s": recovery,
                      "measured_from": "the driver's detection of the loss",
                      "detected_after_s": round(_detected(fleet, lost_at), 2)}), flush=True)
    start, cpu = time.time(), time.process_time()
    consumer.run_for(seconds)
    end, cpu_one = time.time(), time.process_time() - cpu
    one = consumer.count(start, end) / (end - start)
    print(json.dumps({"phase": "one_node", "processing_fps": round(one, 2),
                      "ratio_two_to_one": round(two / one, 2) if one else None}), flush=True)
    frames = frames_two + consumer.count(start, end)
    print(json.dumps({"phase": "driver", "cpu_ms_per_camera_frame": round(1000 * (cpu_used + cpu_one) / frames, 3),
                      "frames": frames, "cores": os.cpu_count()}), flush=True)


def _detected(fleet, lost_at: float) -> float:
    moved_at = [c.moved_at for c in fleet._cameras.values() if c.moved_at is not None]
    return (min(moved_at) - lost_at) if moved_at else float("nan")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
