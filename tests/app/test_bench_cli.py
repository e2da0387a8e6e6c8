"""The `export` and `bench` commands through the real entry point (JSON on stdout, one-line errors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.commands.common import DEFAULT_WEIGHTS
from tests.support.cli import cli

TINY = ["--config", "dy-yolov7-tiny", "--width", "0.125", "--imgsz", "64", "--threads", "1"]




def test_bench_reports_latency_per_exit_against_eager():
    result = cli("bench", *TINY, "--backend", "onnxruntime", "--runs", "2", "--warmup", "1", "--demo-frames", "6")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "onnxruntime" and report["imgsz"] == 64 and report["threads"] == 1
    for section in (report, report["eager"], *report["backends"].values()):
        for path in ("stage1_ms", "exit1_ms", "exit2_ms"):
            assert 0 < section[path]["median"] <= section[path]["p90"]
    assert set(report["gflops"]) == set(report["gflop_per_s"]) == set(report["speedup_vs_eager"]) == {"exit1", "exit2"}
    assert 0 < report["gflops"]["exit1"] < report["gflops"]["exit2"]
    assert {"torch", "onnxruntime"} <= set(report["backends"]) == set(report["pipeline"])
    for rates in report["pipeline"].values():
        for exit_row in (rates["exit1"], rates["exit2"]):
            assert exit_row["frames"] == 6 and exit_row["fps"] > 0 and 0 <= exit_row["outside_network_share"] < 1
    machine = report["machine"]
    assert machine["isa"] in ("avx512", "avx2+fma", "sse") and machine["flop_per_cycle_per_core"] > 0


def test_bench_auto_says_which_runtime_it_chose():
    result = cli("bench", *TINY, "--runs", "1", "--warmup", "0", "--demo-frames", "0")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == report["auto"]["chose"] in report["backends"] and "pipeline" not in report
    if "openvino" in report["backends"]:  # OpenVINO counts its kernels: the split per graph
        kernels = report["backends"]["openvino"]["kernels"]
        assert set(kernels) == {"stage1", "exit1", "exit2"}
        for graph in kernels.values():
            assert graph["kernel_ms"] > 0 and 0 < graph["non_conv_share"] < 1 and graph["largest_non_conv_ms"]


def test_export_writes_then_reuses_graphs(tmp_path):
    from engine.model.checkpoint import save_model
    from tests.engine.model.helpers import tiny_loaded

    weights = save_model(tmp_path / "tiny.safetensors", tiny_loaded())
    first = cli("export", "--weights", str(weights))
    assert first.returncode == 0, first.stderr
    exported = json.loads(first.stdout)
    assert not exported["reused"]
    assert Path(exported["directory"]).parent == tmp_path / "tiny.safetensors.onnx-cache"
    for graph in exported["graphs"].values():
        assert Path(graph["path"]).stat().st_size == graph["bytes"] > 0
    again = json.loads(cli("export", "--weights", str(weights)).stdout)
    assert again["reused"] and again["graphs"] == exported["graphs"]


@pytest.mark.parametrize("args, message", [
    (["bench", *TINY, "--backend", "tensorrt"], "unknown backend 'tensorrt'"),
    (["bench", "--config", "dy-yolov7-tiny", "--imgsz", "100"], "multiple of 32"),
    (["bench", "--weights", "missing.safetensors"], "weights file not found"),
    (["bench", "--weights", "missing.safetensors", "--width", "0.5"], "--width applies to --config"),
])
def test_bad_input_gives_one_line(args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(DEFAULT_WEIGHTS.exists(), reason="a bundled model exists")
def test_bench_without_a_model_says_what_to_pass():
    result = cli("bench")
    assert result.returncode == 2
    assert "pass --weights" in result.stderr and "--config" in result.stderr


def test_bench_and_info_with_a_dy_faster_rcnn():
    result = cli("bench", "--config", "dy-faster-rcnn-r18", "--imgsz", "64", "--runs", "1", "--warmup", "0",
                 "--threads", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "torch" and report["model"] == "dy-faster-rcnn-r18"
    assert 0 < report["gflops"]["exit1"] < report["gflops"]["exit2"]
    assert report["exit1_ms"]["median"] > 0 and report["exit2_ms"]["median"] > 0
    result = cli("info", "--config", "dy-faster-rcnn-r18", "--classes", "6")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["family"] == "dy-faster-rcnn" and info["num_classes"] == 6 and info["imgsz"] == 320
    assert info["depths"] == [18, 18] and info["widths"] == [32, 32]
    assert 0 < info["gflops"]["stage1"] < info["gflops"]["exit1"] < info["gflops"]["exit2"]
    assert info["parameters_fused"] < info["parameters"]  # batch-norm folded away


@pytest.mark.parametrize("args, message", [
    (["bench", "--config", "dy-faster-rcnn-r18", "--backend", "onnxruntime", "--imgsz", "64"],
     "does not export to ONNX Runtime"),
    (["bench", "--config", "dy-faster-rcnn-r18", "--width", "0.5"], "--width applies to the dy-yolov7 family"),
    (["export", "--weights", "RCNN"], "does not export to ONNX"),
])
def test_faster_rcnn_refusals_are_one_line(args, message, tiny_rcnn_weights):
    result = cli(*[str(tiny_rcnn_weights) if a == "RCNN" else a for a in args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
