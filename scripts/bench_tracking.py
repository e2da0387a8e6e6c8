"""Tracking benchmarks: tracking quality per routing policy on generated clips, and the tracker's cost.

    python scripts/bench_tracking.py quality   # calm, busy and mixed clips (unseen seeds), all frames
    python scripts/bench_tracking.py cost      # tracker time per frame at 640x360, 5 / 20 / 50 objects

``quality`` runs every clip at all-exit-1, all-exit-2, the controller at the target halfway
between those two rates (plain and track-aware routing), and a fixed 50 % exit-2 share (plain
and track-aware), and scores each run's events with ``eval --events`` (mAP, streaming mAP,
MOTA, IDF1, HOTA). ``cost`` steps the tracker (ByteTrack, one zone, one line) with N moving
boxes and sets its time against the model's time per frame at each exit, and times our ByteTrack
alone against supervision's (the tracker it replaced) on the same boxes. One JSON line per
row; every figure of one invocation comes from the same process and the same loaded model.
Clips go to ``runs/bench-tracking/`` and are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.commands.common import load_model  # noqa: E402
from engine.data.synthetic.video import ground_truth_path, write_video  # noqa: E402
from engine.detections import Detections  # noqa: E402
from engine.model.loading import ModelOptions  # noqa: E402
from engine.runtime.pipeline import Pipeline, PipelineConfig  # noqa: E402
from engine.runtime.queues import StreamEnd, get_item  # noqa: E402
from engine.runtime.routing import RoutingMode  # noqa: E402
from engine.runtime.sinks import EventLog  # noqa: E402
from engine.tracking.byte_track import ByteTrack  # noqa: E402
from engine.tracking.tracker import LaneTracking  # noqa: E402
from engine.tracking.zones import ZoneSettings  # noqa: E402
from engine.train.stream_eval import evaluate_events_file  # noqa: E402

CLIPS = {"calm": ((0.0, 0.3), 9101), "busy": ((0.7, 1.0), 9102), "mixed": ((0.0, 1.0), 9103)}
OUT = ROOT / "runs" / "bench-tracking"


def clip(name: str, frames: int) -> Path:
    difficulty, seed = CLIPS[name]
    path = OUT / f"{name}-{seed}-{frames}.mp4"
    if not ground_truth_path(path).exists():
        write_video(path, num_frames=frames, seed=seed, difficulty_range=difficulty)
    return path


def run_once(loaded, video: Path, mode: RoutingMode, track_routing: bool) -> dict:
    """Process every frame of ``video``; the run's rate and its scores."""
    with tempfile.TemporaryDirectory() as folder:
        events_path = Path(folder) / "events.jsonl"
        events = EventLog(events_path)
        config = PipelineConfig(str(video), mode, track_routing=track_routing)
        pipeline = Pipeline(config, loaded.predictor, loaded.calibration)
        processed, start = 0, time.perf_counter()
        pipeline.start()
        try:
            while True:
                item = get_item(pipeline.results, 0.5)
                if isinstance(item, StreamEnd):
                    break
                if item is not None:
                    events.offer(item)
                    processed += 1
        finally:
            pipeline.shutdown()
            events.close()
        elapsed = time.perf_counter() - start
        scores = evaluate_events_file(events_path, ground_truth_path(video))
    keys = ("second_exit_fraction", "map", "streaming_map", "mota", "idf1", "hota")
    return {"processing_fps": round(processed / elapsed, 2), **{k: scores[k] for k in keys}}


def quality(args: argparse.Namespace) -> None:
    loaded = load_model(ModelOptions(backend=args.backend))
    for name in args.clips:
        video = clip(name, args.frames)
        exit1 = run_once(loaded, video, RoutingMode("first"), False)
        exit2 = run_once(loaded, video, RoutingMode("second"), False)
        target = round((exit1["processing_fps"] + exit2["processing_fps"]) / 2, 2)
        rows = [("exit1", exit1), ("exit2", exit2)]
        for policy, mode in ((f"target_fps={target}", RoutingMode("target_fps", target)),
                             ("second_fraction=0.5", RoutingMode("second_fraction", 0.5))):
            rows.append((policy, run_once(loaded, video, mode, False)))
            rows.append((f"{policy}+track_routing", run_once(loaded, video, mode, True)))
        for policy, row in rows:
            print(json.dumps({"clip": name, "policy": policy, **row}), flush=True)


def moving_boxes(rng: np.random.Generator, count: int, frames: int, size=(640, 360)):
    """``frames`` lists of ``count`` boxes drifting across the picture (30-60 px), bouncing at the borders."""
    width, height = size
    sides = rng.uniform(30, 60, count)
    position = np.column_stack([rng.uniform(0, width - 60, count), rng.uniform(0, height - 60, count)])
    velocity = rng.uniform(-4, 4, (count, 2))
    for _ in range(frames):
        position += velocity
        for axis, limit in ((0, width), (1, height)):
            out = (position[:, axis] < 0) | (position[:, axis] + sides > limit)
            velocity[out, axis] *= -1
            position[:, axis] = np.clip(position[:, axis], 0, limit - sides)
        yield np.column_stack([position, position + sides[:, None]]).astype(np.float32)


def cost(args: argparse.Namespace) -> None:
    loaded = load_model(ModelOptions(backend=args.backend))
    image = np.random.default_rng(0).integers(0, 255, (360, 640, 3), np.uint8)
    model_ms = {}
    for exit_, route in ((1, "first"), (2, "second")):
        for _ in range(3):
            loaded.predictor.predict([image], route=route)
        start = time.perf_counter()
        for _ in range(10):
            loaded.predictor.predict([image], route=route)
        model_ms[exit_] = (time.perf_counter() - start) * 100
    zones = (ZoneSettings("gate", polygon=((100, 60), (400, 60), (400, 300), (100, 300))),
             ZoneSettings("door", line=((320, 0), (320, 360))))
    rng = np.random.default_rng(1)
    for count in (5, 20, 50):
        frames = [(boxes, rng.uniform(0.3, 0.95, count).astype(np.float32), rng.integers(0, 5, count))
                  for boxes in moving_boxes(rng, count, args.cost_frames)]
        tracking, times = LaneTracking(zones=zones), []
        for boxes, scores, classes in frames:
            det = Detections(boxes, scores, classes, loaded.class_names, 1, 0.5)
            start = time.perf_counter()
            tracking.update(det, (640, 360))
            times.append((time.perf_counter() - start) * 1000)
        ms = float(np.median(times[10:]))
        p95 = float(np.percentile(times, 95))
        ours, reference = association_ms(frames)
        print(json.dumps({"objects": count, "tracker_ms": round(ms, 3), "p95_ms": round(p95, 3),
                          "bytetrack_ms": round(ours, 3), "supervision_bytetrack_ms": round(reference, 3),
                          "bytetrack_speedup": round(reference / ours, 2),
                          "exit1_ms": round(model_ms[1], 2), "exit2_ms": round(model_ms[2], 2),
                          "share_of_frame_exit1": round(ms / (ms + model_ms[1]), 4),
                          "share_of_frame_exit2": round(ms / (ms + model_ms[2]), 4)}), flush=True)


def association_ms(frames: list) -> tuple[float, float]:
    """Median ms per frame of the tracker alone: ours, and supervision's ByteTrack (the tracker it
    replaced, same ids) on the same boxes, the two taking turns frame by frame."""
    import warnings

    import supervision as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sv.ByteTrack(frame_rate=30)
    ours, times = ByteTrack(), ([], [])
    for boxes, scores, classes in frames:
        start = time.perf_counter()
        ours.update(boxes, scores)
        middle = time.perf_counter()
        reference.update_with_detections(sv.Detections(xyxy=boxes, confidence=scores, class_id=classes))
        times[0].append(middle - start)
        times[1].append(time.perf_counter() - middle)
    return float(np.median(times[0][10:])) * 1000, float(np.median(times[1][10:])) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["quality", "cost"])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--frames", type=int, default=300, help="frames per clip (quality)")
    parser.add_argument("--cost-frames", type=int, default=300, help="frames per object count (cost)")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    quality(args) if args.what == "quality" else cost(args)


if __name__ == "__main__":
    main()
