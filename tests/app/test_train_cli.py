"""Training, calibration and evaluation from the command line on tiny data (seconds, not hours)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.cli import ROOT, cli, cli_process


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    result = cli("synth", "--out", str(out), "--images", "48", "--seed", "5", "--imgsz", "64")
    assert result.returncode == 0, result.stderr
    return out / "data.yaml"


SMALL = ("--set", "data.max_val_images=6", "--set", "detectors.max_steps_per_epoch=2",
         "--set", "router.max_steps_per_epoch=2", "--set", "detectors.batch_size=2", "--set", "router.batch_size=2")


def train(data: Path, out: Path, *extra: str):
    """The smoke config cut to a couple of steps per phase: each test proves a path, not learning."""
    return cli("train", "--config", str(ROOT / "configs" / "train" / "smoke.yaml"),
               "--set", f"data.path={data}", "--set", f"output_dir={out}", *SMALL, *extra)


def test_train_calibrate_eval(synth_data, tmp_path):
    # A true end-to-end run once: a process of its own, as a user starts it.
    result = cli_process("train", "--config", str(ROOT / "configs" / "train" / "smoke.yaml"),
                         "--set", f"data.path={synth_data}", "--set", f"output_dir={tmp_path}", *SMALL,
                         "--set", "detectors.epochs=2")
    assert result.returncode == 0, result.stderr
    model = Path(json.loads(result.stdout.strip().splitlines()[-1])["model"])
    run_dir = model.parent
    history = json.loads((run_dir / "metrics.json").read_text())
    det = [row for row in history if row["phase"] == "detectors"]
    assert [row["epoch"] for row in det] == [0, 1]
    assert all(np.isfinite(row["det1"]) and np.isfinite(row["det2"]) for row in det)
    assert {"val_map_exit1", "val_map_exit2"} <= set(det[-1])
    assert any(row["phase"] == "router" for row in history)
    assert (run_dir / "metrics.csv").exists() and (run_dir / "training.png").stat().st_size > 10_000
    assert (run_dir / "last.pt").exists()

    calibrated = tmp_path / "calibrated.safetensors"
    result = cli("calibrate", "--weights", str(model), "--data", str(synth_data), "--out", str(calibrated),
                 "--max-images", "8")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    thresholds = list(info["thresholds"].values())
    assert len(thresholds) == 11 and thresholds == sorted(thresholds)
    assert info["exit1_ms"] > 0 and info["exit2_ms"] > 0

    plot = tmp_path / "tradeoff.png"
    result = cli("eval", "--weights", str(calibrated), "--data", str(synth_data), "--plot", str(plot),
                 "--max-images", "8")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["exit1"]) >= {"map", "map50"} and set(report["exit2"]) >= {"map", "map50"}
    assert [r["second_fraction"] for r in report["router"]] == pytest.approx([i / 10 for i in range(11)])
    assert len(report["random"]) == 11
    assert all({"map", "map50", "ms_per_image", "threshold"} <= set(r) for r in report["router"])
    assert report["difficulty_correlation"] is None or -1 <= report["difficulty_correlation"] <= 1
    assert plot.stat().st_size > 10_000
    # The graph runtimes' path (its NMS hands out arrays, not tensors) scores the same images.
    result = cli("eval", "--weights", str(calibrated), "--data", str(synth_data), "--plot", str(plot),
                 "--max-images", "8", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["exit1"]["map"] == pytest.approx(report["exit1"]["map"], abs=0.02)


def test_resume_continues_from_the_last_epoch(synth_data, tmp_path):
    assert train(synth_data, tmp_path, "--set", "detectors.epochs=1", "--set", "router.epochs=0").returncode == 0
    result = train(synth_data, tmp_path, "--set", "detectors.epochs=2", "--set", "router.epochs=0", "--resume")
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "smoke" / "metrics.json").read_text())
    assert [row["epoch"] for row in history if row["phase"] == "detectors"] == [0, 1]


def _user_dataset(root: Path, count: int = 12) -> Path:
    """A hand-made YOLO-layout dataset with two classes (bright squares and dark discs)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(count):
            image = np.full((80, 100, 3), 128, np.uint8)
            lines = []
            for _ in range(2):
                cls = int(rng.integers(0, 2))
                cx, cy, r = int(rng.integers(20, 80)), int(rng.integers(20, 60)), int(rng.integers(6, 14))
                if cls == 0:
                    cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), (250, 250, 250), -1)
                else:
                    cv2.circle(image, (cx, cy), r, (10, 10, 10), -1)
                lines.append(f"{cls} {cx / 100:.4f} {cy / 80:.4f} {2 * r / 100:.4f} {2 * r / 80:.4f}")
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [square, disc]\n")
    return root / "data.yaml"


def test_users_own_yolo_dataset_trains(tmp_path):
    data = _user_dataset(tmp_path / "mine")
    result = train(data, tmp_path / "runs", "--set", "detectors.epochs=1", "--set", "router.epochs=1")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout.strip().splitlines()[-1])["model"]
    info = json.loads(cli("info", "--weights", model).stdout)
    assert info["num_classes"] == 2


@pytest.mark.parametrize("problem, message", [
    ("class_out_of_range", "class"),
    ("missing_config_key", "unknown key"),
])
def test_bad_training_input_is_one_line(problem, message, tmp_path):
    data = _user_dataset(tmp_path / "bad", count=3)
    args = []
    if problem == "class_out_of_range":
        (tmp_path / "bad" / "labels" / "train" / "0.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    else:
        args = ["--set", "detectors.epochz=3"]
    result = train(data, tmp_path / "runs", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_dy_faster_rcnn_trains_from_a_torchvision_resnet_and_evaluates(synth_data, tmp_path):
    import torch
    import torchvision

    arch = tmp_path / "rcnn.yaml"
    arch.write_text("name: rcnn-test\nfamily: dy-faster-rcnn\ninput_size: 64\n"
                    "first: &d {depth: 18, norm: batch, fpn_channels: 16, representation: 32,\n"
                    "           anchor_sizes: [8, 16, 32, 64, 128], rpn_top_n: [100, 50, 100, 50],\n"
                    "           rpn_batch: 32, roi_batch: 32}\nsecond: *d\n")
    resnet = tmp_path / "resnet18.pth"  # what a user has in their torch hub cache: a classifier state dict
    torch.manual_seed(0)
    classifier = torchvision.models.resnet18(weights=None)
    torch.save(classifier.state_dict(), resnet)
    result = train(synth_data, tmp_path, "--set", f"model.arch={arch}", "--set", "model.width_multiple=null",
                   "--set", f"model.init_torchvision={resnet}", "--set", "detectors.epochs=1",
                   "--set", "router.augment=false",
                   "--set", "detectors.optim.optimizer=adamw",
                   "--set", "detectors.optim.lr=0.0001")
    assert result.returncode == 0, result.stderr
    model_file = Path(json.loads(result.stdout.strip().splitlines()[-1])["model"])
    history = json.loads((model_file.parent / "metrics.json").read_text())
    assert {"det1_classifier", "det2_objectness", "val_map_exit2"} <= set(history[0])
    assert any(row["phase"] == "router" and np.isfinite(row["router"]) for row in history)

    from engine.model.checkpoint import load_model

    loaded = load_model(model_file)
    model = loaded.model
    assert loaded.spec.family == model.family == "dy-faster-rcnn" and loaded.calibration is not None
    trunk = model.first.backbone.body.layer4[1].conv2.weight
    assert trunk.shape == classifier.layer4[1].conv2.weight.shape  # shaped like the ResNet it started from
    result = cli("eval", "--weights", str(model_file), "--data", str(synth_data), "--max-images", "6")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["router"]) == len(report["random"]) == 11

    result = train(synth_data, tmp_path, "--set", f"model.arch={arch}")
    assert result.returncode == 2 and "applies to the YOLO family only" in result.stderr
