"""Runtime benchmarks: the controller holding a target rate, and end-to-end throughput with recording.

Prints one JSON line per measurement. All runs happen in this process, one after another, so
compare the ratios between lines rather than absolute numbers on a shared machine.
    python scripts/bench_runtime.py [--weights W] [--video V] [--backend auto] [--threads N]
                                    [--seconds 20] [--realtime] [--only controller|throughput]

With ``--realtime`` the exit rates and the controller run are measured on the video played at
its own rate (the ``run --realtime`` case): the halfway target must then lie below the video's
frame rate, so pick a backend, thread count and input size whose exit 2 alone cannot keep up
with it (`make bench-runtime` runs PyTorch at 640 px on the 30 fps demo).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.commands.common import DEFAULT_VIDEO, DEFAULT_WEIGHTS
from engine.model.backends import make_backend
from engine.model.checkpoint import load_model
from engine.model.predictor import Predictor
from engine.runtime.pipeline import Pipeline, PipelineConfig
from engine.runtime.queues import StreamEnd, get_item
from engine.runtime.routing import RoutingMode


def consume(config: PipelineConfig, predictor: Predictor, calibration, seconds: float | None) -> dict:
    """Run a pipeline, read every result; returns processing rate, exit-2 share, frames."""
    pipeline = Pipeline(config, predictor, calibration)
    start = time.perf_counter()
    pipeline.start()
    frames = second = 0
    first_at = None
    while seconds is None or time.perf_counter() - start < seconds:
        item = get_item(pipeline.results, 0.2)
        if item is None:
            continue
        if isinstance(item, StreamEnd):
            break
        first_at = first_at or time.perf_counter()
        frames += 1
        second += item.detections.exit == 2
    elapsed = time.perf_counter() - (first_at or start)
    pipeline.shutdown()
    return {"frames": frames, "fps": round(frames / elapsed, 2) if elapsed else 0.0,
            "second_exit_fraction": round(second / frames, 3) if frames else 0.0,
            "recorded": pipeline.stats.frames_recorded}


def controller_benchmark(predictor, calibration, video: str, seconds: float, realtime: bool) -> None:
    """All-exit-1 and all-exit-2 rates, then the controller holding the rate halfway between them."""
    rates = {}
    for route in ("first", "second"):
        config = PipelineConfig(video, RoutingMode(route), realtime=realtime, loop=True)
        rates[route] = consume(config, predictor, calibration, seconds)["fps"]
    target = round((rates["first"] + rates["second"]) / 2, 2)
    print(json.dumps({"measure": "exit_rates", "realtime": realtime, "all_exit1_fps": rates["first"],
                      "all_exit2_fps": rates["second"], "target_fps": target}), flush=True)
    config = PipelineConfig(video, RoutingMode("target_fps", target), realtime=realtime, loop=True)
    result = consume(config, predictor, calibration, seconds)
    print(json.dumps({"measure": "controller", "realtime": realtime, "target_fps": target, **result,
                      "error_vs_target": round(result["fps"] / target - 1, 4)}), flush=True)


def throughput_benchmark(predictor, calibration, seconds: float) -> None:
    """Decode only, then + inference, then + recording, on a 1280x720 clip: where the time goes."""
    from engine.data.synthetic.video import write_video
    from engine.runtime.capture import Capture

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "hd.mp4"
        write_video(clip, 300, seed=11, fps=30, size=(1280, 720))
        capture = Capture(str(clip))
        start = time.perf_counter()
        capture.start()
        decoded = 0
        while not isinstance(capture.output.get(), StreamEnd):
            decoded += 1
        decode_s = time.perf_counter() - start
        capture.join(5)
        mode = RoutingMode("second_fraction", 0.5)
        infer = consume(PipelineConfig(str(clip), mode), predictor, calibration, None)
        rec = consume(PipelineConfig(str(clip), mode, record=str(Path(tmp) / "out.mp4")), predictor, calibration,
                      None)
    per_frame = {"decode_ms": 1000 * decode_s / decoded, "with_inference_ms": 1000 / infer["fps"],
                 "with_recording_ms": 1000 / rec["fps"]}
    total = per_frame["with_recording_ms"]
    shares = {"decode": per_frame["decode_ms"] / total,
              "inference_and_drawing": (per_frame["with_inference_ms"] - per_frame["decode_ms"]) / total,
              "encode": (per_frame["with_recording_ms"] - per_frame["with_inference_ms"]) / total}
    print(json.dumps({"measure": "throughput_1280x720_all_frames", "frames": decoded,
                      "decode_only_fps": round(decoded / decode_s, 1), "inference_fps": infer["fps"],
                      "recording_fps": rec["fps"], "recorded": rec["recorded"],
                      "time_share": {k: round(v, 3) for k, v in shares.items()}}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--imgsz", type=int, help="network input size (default: the model's)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each controller run")
    parser.add_argument("--realtime", action="store_true", help="play the video at its own rate (live policy)")
    parser.add_argument("--only", choices=("controller", "throughput"), help="run one of the two benchmarks")
    args = parser.parse_args()
    loaded = load_model(args.weights)
    model = loaded.model
    backend = make_backend(loaded, args.backend, threads=args.threads, weights_path=Path(args.weights))
    imgsz = args.imgsz or model.input_size
    predictor = Predictor(backend, model.class_names, imgsz)
    print(json.dumps({"weights": args.weights, "backend": backend.name, "threads": args.threads, "imgsz": imgsz}),
          flush=True)
    if args.only != "throughput":
        controller_benchmark(predictor, loaded.calibration, args.video, args.seconds, args.realtime)
    if args.only != "controller":
        throughput_benchmark(predictor, loaded.calibration, args.seconds)


if __name__ == "__main__":
    main()
