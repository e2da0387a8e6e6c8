"""Does int8 earn its place? Static int8 of the staged graphs against the float backends, in one process.

For a YOLO-family model (default: the bundled one at its input size) this takes the staged ONNX
graphs of the existing export (stage1, exit1, exit2) and quantizes each to int8 twice, with
calibration images from the generated world:

- ONNX Runtime static QDQ (``quantize_static``: per-channel int8 weights, uint8 activations,
  MinMax ranges), run by ONNX Runtime;
- NNCF post-training quantization (``nncf.quantize``, mixed preset: symmetric weights,
  asymmetric activations), run by OpenVINO at its default precision for what stays float.

Both keep in float the heads' final prediction convolutions with the box decoding after them,
and the router (its pooled features are tiny; its score decides the exit). Exit-graph calibration
feeds are the float stage 1's outputs on the calibration images.

It then reports, all measured in this process with the float backends' thread count:

- median latency of each graph and each exit path (stage 1 + exit) for ONNX Runtime f32,
  OpenVINO at its default precision (bf16 on CPUs with AVX-512 BF16 or AMX), OpenVINO f32 and
  both int8 variants, each backend's runs interleaved with the others', and the ratio of each to
  the fastest float backend on that graph or path;
- COCO mAP of exit 1 and exit 2 on a held-out set (the first images of the world the bundled
  model was evaluated on, seed 20261123, disjoint from the calibration images), through the
  same validation code as ``eval``;
- the router: the exit-2 share on the held-out set at the model's shipped thresholds, and at
  thresholds recalibrated with each backend's own scores on 300 images of the calibration world
  (the int8 calibration images and more, as ``calibrate`` reads 300 by default).

Then the rule for shipping int8: an int8 variant earns its place only if it is at least 1.2x faster
than the best float backend on both exit paths while losing at most 0.5 mAP points (against
float32) at both exits.

A readable table goes to stderr, one JSON line to stdout. The generated images and quantized
graphs live under ``--out`` (default runs/int8-study) and are reused when present. Needs ``nncf``
for the OpenVINO variant (skipped with a note when it is not installed); it is not a dependency
of the project. About 1.5 minutes on 2 cores, under one once the images and graphs exist.

    python scripts/int8_study.py [--weights W] [--calib-images 128] [--heldout-images 200] [--runs 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.datasets import DetectionDataset
from engine.data.synthetic import write_dataset
from engine.model.backends import BackendCascade, cpu_flags, cpu_model
from engine.model.calibration import Calibration
from engine.model.checkpoint import load_model
from engine.model.onnx_backend import OnnxBackend, default_threads
from engine.model.onnx_export import GRAPHS, StagedGraphs, export_staged
from engine.model.openvino_backend import OpenVinoBackend
from engine.train.evaluate import SHARES, coco_map, run_validation, share_mask, thresholds_for_shares
from engine.train.run import loader

HELDOUT_SEED = 20261123  # the world the bundled model's assets/heldout-eval.json was measured on
CALIB_SEED = 20261129  # a world used neither in training (seed 1), evaluation nor the demo (seed 7)
SPEEDUP_NEEDED = 1.2
MAP_POINTS_ALLOWED = 0.5
ROUTER_SHARES = (0.3, 0.5, 0.7)
FLOAT = ("onnxruntime-f32", "openvino-default", "openvino-f32")
INT8 = ("onnxruntime-int8", "openvino-int8")
PATHS = ("exit1_path", "exit2_path")
# Name parts of the nodes kept in float (with everything downstream of them).
FLOAT_SCOPES = ("/head/predictors", "/router/")

logger = logging.getLogger("int8_study")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="assets/dy-yolov7-tiny.safetensors")
    parser.add_argument("--out", default="runs/int8-study", help="generated images and quantized graphs")
    parser.add_argument("--calib-images", type=int, default=128, help="images the int8 ranges are measured on")
    parser.add_argument("--router-images", type=int, default=300,
                        help="images the router thresholds are recalibrated on (as calibrate's default); the "
                             "calibration images are the first of them")
    parser.add_argument("--heldout-images", type=int, default=200)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per graph and backend")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, help="threads of every backend (default: the backends' default)")
    parser.add_argument("--batch-size", type=int, default=16, help="held-out evaluation batch")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("nncf", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    out = Path(args.out)
    weights = Path(args.weights)
    loaded = load_model(weights)
    imgsz = loaded.model.input_size
    threads = args.threads or default_threads()
    graphs = export_staged(loaded, weights)

    unlabelled = max(args.calib_images, args.router_images)
    images = _images(_dataset(out / f"calib-{CALIB_SEED}", unlabelled, CALIB_SEED, imgsz, loaded), 1)
    calib, router_set = images[:args.calib_images], images[:args.router_images]
    heldout = _dataset(out / f"heldout-{HELDOUT_SEED}", args.heldout_images, HELDOUT_SEED, imgsz, loaded)

    reference = OnnxBackend(graphs, threads)
    variants: dict[str, Any] = {
        "onnxruntime-f32": reference,
        "openvino-default": OpenVinoBackend(graphs, threads, "auto", cache_dir=""),
        "openvino-f32": OpenVinoBackend(graphs, threads, "f32", cache_dir=""),
    }
    notes: list[str] = []
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    ort_int8 = quantize_onnxruntime(graphs, out / f"ort-int8-{graphs.key}-c{len(calib)}", reference, calib)
    seconds["quantize_onnxruntime"] = round(time.perf_counter() - tick, 1)
    variants["onnxruntime-int8"] = OnnxBackend(ort_int8, threads)
    try:
        import nncf
    except ImportError:
        notes.append("nncf is not installed: no OpenVINO int8 variant")
    else:
        nncf.set_log_level(logging.WARNING)  # its log goes to stdout, where the JSON line goes
        tick = time.perf_counter()
        ov_int8 = quantize_nncf(graphs, out / f"nncf-int8-{graphs.key}-c{len(calib)}", reference, calib)
        seconds["quantize_nncf"] = round(time.perf_counter() - tick, 1)
        variants["openvino-int8"] = OpenVinoBackend(ov_int8, threads, "auto", cache_dir="")
    int8_names = [n for n in INT8 if n in variants]

    x = next(iter(loader(heldout, 1, False, 0)))[0].numpy()
    tick = time.perf_counter()
    times = time_graphs(variants, x, args.runs, args.warmup)
    seconds["timing"] = round(time.perf_counter() - tick, 1)

    tick = time.perf_counter()
    accuracy = {name: evaluate(variants[name], heldout, args.batch_size, loaded.spec.num_classes)
                for name in ("onnxruntime-f32", "openvino-default", *int8_names)}
    seconds["evaluation"] = round(time.perf_counter() - tick, 1)
    router = {name: router_shares(variants[name], loaded.calibration, router_set, acc.pop("scores"))
              for name, acc in accuracy.items()}

    report = summarize(times, accuracy, router, int8_names)
    report.update(model=str(weights), imgsz=imgsz, threads=threads, runs=args.runs,
                  calib_images=len(calib), router_images=len(router_set), calib_seed=CALIB_SEED,
                  heldout_images=len(heldout), heldout_seed=HELDOUT_SEED, cpu=cpu_model(), cpu_flags=_relevant_flags(),
                  versions=_versions(), float_kept=list(FLOAT_SCOPES), notes=notes,
                  seconds={**seconds, "total": round(time.perf_counter() - started, 1)},
                  openvino_default_precision=variants["openvino-default"].compiled_precision())
    print(table(report), file=sys.stderr)
    print(json.dumps(report))
    return 0


# --------------------------------------------------------------------------- data


def _dataset(folder: Path, count: int, seed: int, imgsz: int, loaded: Any) -> DetectionDataset:
    """The first ``count`` images of the world of ``seed`` (all in the val split), generated once."""
    meta = folder / "metadata.json"
    fresh = meta.is_file() and json.loads(meta.read_text()).get("num_images") == count and \
        json.loads(meta.read_text()).get("seed") == seed
    if not fresh:
        logger.info("generating %d images of seed %d in %s", count, seed, folder)
        write_dataset(folder, count, seed, imgsz=imgsz, val_fraction=1.0, overwrite=True)
    dataset = DetectionDataset.from_yolo(folder / "data.yaml", "val", imgsz, None)
    if tuple(dataset.names) != tuple(loaded.model.class_names):
        raise SystemExit(f"dataset classes {dataset.names} differ from the model's")
    return dataset


def _images(dataset: DetectionDataset, batch: int) -> list[np.ndarray]:
    return [images.numpy() for images, *_ in loader(dataset, batch, False, 0)]


def _feeds(reference: OnnxBackend, graph: str, images: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """Float inputs of ``graph`` for each calibration image: the image itself for stage 1, the
    float stage 1's outputs for the exits (computed as they are read, not kept)."""
    names = reference._inputs[graph]
    for image in images:
        if graph == "stage1":
            yield {"images": image}
            continue
        state, _ = reference.stage1(image)
        yield {name: state.values[name].numpy().copy() for name in names}


# --------------------------------------------------------------------------- quantization


def float_nodes(names_in_order: list[str], consumers: Callable[[str], list[str]]) -> set[str]:
    """The nodes kept in float: those whose name contains one of :data:`FLOAT_SCOPES` and every
    node downstream of one (the decoding after the prediction convolutions)."""
    keep = {n for n in names_in_order if any(scope in n for scope in FLOAT_SCOPES)}
    stack = list(keep)
    while stack:
        for nxt in consumers(stack.pop()):
            if nxt not in keep:
                keep.add(nxt)
                stack.append(nxt)
    return keep


def _onnx_float_nodes(model: Any) -> list[str]:
    by_input: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    for node in model.graph.node:
        outputs[node.name] = list(node.output)
        for tensor in node.input:
            by_input.setdefault(tensor, []).append(node.name)
    names = [node.name for node in model.graph.node]
    keep = float_nodes(names, lambda n: [c for t in outputs[n] for c in by_input.get(t, [])])
    return sorted(keep)


def quantize_onnxruntime(graphs: StagedGraphs, folder: Path, reference: OnnxBackend,
                         calib: list[np.ndarray]) -> StagedGraphs:
    """Static QDQ int8 of each graph with ONNX Runtime's quantizer (reused when already in ``folder``)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, graph: str) -> None:
            self.graph = graph
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

        def rewind(self) -> None:
            self.items = _feeds(reference, self.graph, calib)

    files = {g: folder / f"{g}.onnx" for g in GRAPHS}
    if all(f.is_file() for f in files.values()):
        return StagedGraphs(folder, f"ort-int8-{graphs.key}", files, reused=True)
    folder.mkdir(parents=True, exist_ok=True)
    for graph in GRAPHS:
        prepared = folder / f"{graph}.prepared.onnx"
        try:  # shape inference and graph clean-up, as ONNX Runtime recommends before quantizing
            quant_pre_process(str(graphs.files[graph]), str(prepared), skip_symbolic_shape=True)
        except Exception as exc:  # a study: fall back to the exported graph
            logger.info("quant_pre_process failed on %s (%s): quantizing the exported graph", graph, exc)
            prepared = graphs.files[graph]
        model = onnx.load(str(prepared))
        excluded = _onnx_float_nodes(model)
        tmp = folder / f".{graph}.onnx.tmp"
        quantize_static(str(prepared), str(tmp), Reader(graph), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded)
        tmp.replace(files[graph])
        logger.info("onnxruntime int8 %s: %d nodes kept in float", graph, len(excluded))
    return StagedGraphs(folder, f"ort-int8-{graphs.key}", files, reused=False)


def quantize_nncf(graphs: StagedGraphs, folder: Path, reference: OnnxBackend, calib: list[np.ndarray]) -> StagedGraphs:
    """NNCF int8 of each graph for OpenVINO, saved as IR (reused when already in ``folder``)."""
    import nncf
    import openvino as ov

    files = {g: folder / f"{g}.xml" for g in GRAPHS}
    if all(f.is_file() for f in files.values()):
        return StagedGraphs(folder, f"nncf-int8-{graphs.key}", files, reused=True)
    folder.mkdir(parents=True, exist_ok=True)
    core = ov.Core()
    for graph in GRAPHS:
        model = core.read_model(str(graphs.files[graph]))
        ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}

        def consumers(name: str, ops: dict = ops) -> list[str]:
            op = ops[name]
            return [t.get_node().get_friendly_name() for out in op.outputs() for t in out.get_target_inputs()]

        # Weights, biases and shape constants are not quantizable operations: name only the rest.
        kept = [n for n in float_nodes(list(ops), consumers)
                if ops[n].get_type_name() not in ("Constant", "Result", "Parameter")]
        dataset = nncf.Dataset(calib, lambda image, graph=graph: next(_feeds(reference, graph, [image])))
        # NNCF draws its progress bars on stdout, where the JSON line goes.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            quantized = nncf.quantize(
                model, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calib),
                target_device=nncf.TargetDevice.CPU,
                ignored_scope=nncf.IgnoredScope(names=kept, validate=False))
        ov.save_model(quantized, str(files[graph]))
        logger.info("nncf int8 %s: %d operations kept in float", graph, len(kept))
    return StagedGraphs(folder, f"nncf-int8-{graphs.key}", files, reused=False)


# --------------------------------------------------------------------------- measurement


def time_graphs(variants: dict[str, Any], x: np.ndarray, runs: int, warmup: int) -> dict[str, dict[str, np.ndarray]]:
    """Ms of every run of each graph alone and of each exit path (its stage 1 and exit runs of the
    same round), per backend. Backends take turns run by run, so load on a shared machine hits
    them alike, and the runs of one round can be compared pairwise."""
    states = {name: backend.stage1(x)[0] for name, backend in variants.items()}
    calls = {name: {"stage1": (lambda b=b: b.stage1(x)), "exit1": (lambda b=b, s=states[name]: b.exit1(s)),
                    "exit2": (lambda b=b, s=states[name]: b.exit2(s))} for name, b in variants.items()}
    for by_graph in calls.values():
        for call in by_graph.values():
            for _ in range(warmup):
                call()
    times: dict[str, dict[str, list[float]]] = {n: {g: [] for g in GRAPHS} for n in variants}
    for _ in range(runs):
        for name, by_graph in calls.items():
            for graph, call in by_graph.items():
                start = time.perf_counter()
                call()
                times[name][graph].append((time.perf_counter() - start) * 1000)
    out = {n: {g: np.asarray(t) for g, t in by_graph.items()} for n, by_graph in times.items()}
    for row in out.values():
        row["exit1_path"] = row["stage1"] + row["exit1"]
        row["exit2_path"] = row["stage1"] + row["exit2"]
    return out


def evaluate(backend: Any, dataset: DetectionDataset, batch: int, num_classes: int) -> dict[str, Any]:
    """Held-out mAP of each exit and at a 50 % router share, as ``eval`` measures them, plus the scores."""
    run = run_validation(BackendCascade(backend), loader(dataset, batch, False, 0))
    routed = [s if m else f for f, s, m in zip(run.first, run.second, share_mask(run.scores, 0.5))]
    return {"exit1": coco_map(run.first, run.truth, num_classes), "exit2": coco_map(run.second, run.truth, num_classes),
            "router50": coco_map(routed, run.truth, num_classes), "scores": run.scores}


def router_shares(backend: Any, shipped: Calibration | None, images: list[np.ndarray],
                  heldout_scores: np.ndarray) -> dict[str, Any]:
    """Held-out exit-2 share at the shipped thresholds and at thresholds recalibrated with this
    backend's scores on ``images`` (unlabelled, as ``calibrate`` reads them)."""
    scores = np.concatenate([np.asarray(backend.stage1(image)[1], dtype=np.float64) for image in images])
    recalibrated = Calibration(SHARES, tuple(thresholds_for_shares(scores, SHARES)))
    row: dict[str, Any] = {}
    for share in ROUTER_SHARES:
        key = f"{share:.1f}"
        if shipped is not None:
            row.setdefault("shipped", {})[key] = _share(heldout_scores, shipped.threshold_for(share))
        row.setdefault("recalibrated", {})[key] = _share(heldout_scores, recalibrated.threshold_for(share))
    return row


def _share(scores: np.ndarray, threshold: float) -> float:
    return round(float(np.mean(scores < threshold)), 3)


# --------------------------------------------------------------------------- report


def summarize(times: dict[str, dict[str, np.ndarray]], accuracy: dict[str, dict], router: dict[str, dict],
              int8_names: list[str]) -> dict[str, Any]:
    keys = (*GRAPHS, *PATHS)
    latency = {n: {k: float(np.median(t)) for k, t in by_key.items()} for n, by_key in times.items()}
    best = {k: min(FLOAT, key=lambda n: latency[n][k]) for k in keys}
    # The float backend the runtime's auto would pick: the smaller sum of the two exit paths.
    best_overall = min(FLOAT, key=lambda n: latency[n]["exit1_path"] + latency[n]["exit2_path"])
    rows = {}
    for name, row in latency.items():
        rows[name] = {"ms": {k: round(row[k], 2) for k in keys},
                      "ratio_to_best_float": {k: round(row[k] / latency[best[k]][k], 3) for k in keys}}
    f32 = accuracy["onnxruntime-f32"]
    maps = {name: {e: round(100 * acc[e]["map"], 2) for e in ("exit1", "exit2", "router50")}
            for name, acc in accuracy.items()}
    verdicts = {}
    for name in int8_names:
        speedup = {p: round(latency[best[p]][p] / latency[name][p], 3) for p in PATHS}
        # Round by round against the same round's best float run: median and quartiles.
        paired = {p: [round(float(q), 3) for q in np.percentile(times[best[p]][p] / times[name][p], (25, 50, 75))]
                  for p in PATHS}
        lost = {e: round(100 * (f32[e]["map"] - accuracy[name][e]["map"]), 2) for e in ("exit1", "exit2")}
        lost_vs_best = {e: round(100 * (accuracy[best_overall][e]["map"] - accuracy[name][e]["map"]), 2)
                        for e in ("exit1", "exit2")} if best_overall in accuracy else None
        earns = all(s >= SPEEDUP_NEEDED for s in speedup.values()) and all(v <= MAP_POINTS_ALLOWED
                                                                           for v in lost.values())
        verdicts[name] = {"speedup_vs_best_float": speedup, "paired_speedup_quartiles": paired,
                          "map_points_lost_vs_f32": lost,
                          "map_points_lost_vs_best_float": lost_vs_best, "earns_its_place": earns}
    # int8 exits behind the best float stage 1 of the same runtime: what a partial variant could reach.
    partial = {}
    for name in int8_names:
        runtime = name.split("-")[0]
        stage1 = min((n for n in FLOAT if n.startswith(runtime)), key=lambda n: latency[n]["stage1"])
        partial[name] = {p: round(latency[best[p]][p] / (latency[stage1]["stage1"] + latency[name][p.split("_")[0]]), 3)
                         for p in PATHS}
    return {"latency": rows, "best_float": best, "best_float_overall": best_overall, "map": maps,
            "router_exit2_share": router, "int8": verdicts, "int8_exits_only_speedup": partial,
            "ships": any(v["earns_its_place"] for v in verdicts.values())}


def table(report: dict[str, Any]) -> str:
    keys = (*GRAPHS, *PATHS)
    lines = [f"CPU {report['cpu']}; flags {' '.join(report['cpu_flags'])}; {report['threads']} threads; "
             f"OpenVINO default precision {report['openvino_default_precision']}; imgsz {report['imgsz']}; "
             f"{report['runs']} runs; int8 calibration {report['calib_images']} img and router recalibration "
             f"{report['router_images']} img (seed {report['calib_seed']}), "
             f"held-out {report['heldout_images']} img (seed {report['heldout_seed']})",
             "", "median ms (ratio to the fastest float backend on that column)",
             f"{'backend':<18}" + "".join(f"{k:>17}" for k in keys)]
    for name, row in report["latency"].items():
        cells = "".join(f"{row['ms'][k]:>8.2f} ({row['ratio_to_best_float'][k]:>5.2f})" for k in keys)
        lines.append(f"{name:<18}{cells}")
    lines += ["", f"{'held-out mAP':<18}{'exit 1':>9}{'exit 2':>9}{'router50':>9}   exit-2 share at 30/50/70 % "
                  "shipped -> recalibrated"]
    for name, row in report["map"].items():
        shares = report["router_exit2_share"][name]
        shipped = "/".join(f"{v:.2f}" for v in shares.get("shipped", {}).values()) or "-"
        recal = "/".join(f"{v:.2f}" for v in shares["recalibrated"].values())
        lines.append(f"{name:<18}{row['exit1']:>9.2f}{row['exit2']:>9.2f}{row['router50']:>9.2f}   "
                     f"{shipped} -> {recal}")
    lines.append("")
    for name, verdict in report["int8"].items():
        s, lost = verdict["speedup_vs_best_float"], verdict["map_points_lost_vs_f32"]
        partial = report["int8_exits_only_speedup"][name]
        q = verdict["paired_speedup_quartiles"]
        lines += [f"{name}: {'earns its place' if verdict['earns_its_place'] else 'does not earn its place'} "
                  f"(needs >= {SPEEDUP_NEEDED}x on both paths and <= {MAP_POINTS_ALLOWED} points lost on both exits)",
                  f"  speed-up over the best float backend, exit-1 / exit-2 path: {s['exit1_path']:.2f}x / "
                  f"{s['exit2_path']:.2f}x (medians); run by run {q['exit1_path'][1]:.2f}x "
                  f"[{q['exit1_path'][0]:.2f}-{q['exit1_path'][2]:.2f}] / {q['exit2_path'][1]:.2f}x "
                  f"[{q['exit2_path'][0]:.2f}-{q['exit2_path'][2]:.2f}] (median [quartiles])",
                  f"  int8 exits behind a float stage 1: {partial['exit1_path']:.2f}x / {partial['exit2_path']:.2f}x",
                  f"  mAP points lost against float32, exit 1 / exit 2: {lost['exit1']:+.2f} / {lost['exit2']:+.2f}"]
    lines += report["notes"]
    return "\n".join(lines)


def _relevant_flags() -> list[str]:
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return [f for f in wanted if f in cpu_flags()]


def _versions() -> dict[str, str]:
    import importlib.metadata

    out = {}
    for package in ("onnxruntime", "openvino", "nncf", "torch"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[package] = importlib.metadata.version(package)
    return out


if __name__ == "__main__":
    sys.exit(main())
