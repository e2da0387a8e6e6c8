"""Model files load without executing anything from them; bad files get one clear error."""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from engine import load_model
from engine.errors import CheckpointError
from engine.model.calibration import Calibration
from engine.model.checkpoint import save_model
from tests.engine.model.helpers import tiny_loaded


class _RunsCode:
    """Pickles to a call of ``os.system`` (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(path)
    assert not marker.exists()


def test_legacy_pickle_of_whole_module_is_refused_clearly(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"model": OrderedDict()}, path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        payloads = {n: zf.read(n) for n in names}
    data_name = next(n for n in names if n.endswith("data.pkl"))
    # A pickle that names a class from the YOLOv7 code base, like old whole-model checkpoints.
    payloads[data_name] = b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01cmodels.yolo\nModel\nq\x02)\x81q\x03s."
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, payloads[name])
    with pytest.raises(CheckpointError, match="whole model objects"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_files_get_one_line_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_truncated_reference_checkpoint(reference_dir, tmp_path):
    data = (reference_dir / "parity" / "dy-yolov7-step2-w0.25.pt").read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(path)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="not a file"):
        load_model(tmp_path)


def test_own_format_round_trip(tmp_path):
    calibration = Calibration((0.0, 0.5, 1.0), (0.0, 0.4, 1.0), exit1_ms=3.0, exit2_ms=5.0, imgsz=64)
    original = tiny_loaded().with_calibration(calibration)
    path = save_model(tmp_path / "m.safetensors", original)
    loaded = load_model(path)
    assert loaded.model.class_names == original.model.class_names
    assert loaded.calibration == calibration
    assert loaded.spec == original.spec and loaded.family.name == "dy-yolov7"
    assert not hasattr(loaded.model, "arch") and not hasattr(loaded.model, "calibration")
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded.model.predict_exit(x, 2), original.model.predict_exit(x, 2))
    assert loaded.calibration.threshold_for(0.25) == pytest.approx(0.2)


def test_shipped_model_files_load_unchanged():
    """The files in assets/ (written before models came with their spec beside them) still load."""
    from engine.bundled import DEFAULT_WEIGHTS

    for path in sorted(DEFAULT_WEIGHTS.parent.glob("*.safetensors")):
        loaded = load_model(path)
        assert loaded.calibration is not None and loaded.spec.family in ("dy-yolov7", "dy-faster-rcnn"), path
        assert loaded.model.class_names == loaded.spec.names and not loaded.model.training


def test_reference_checkpoint_with_numpy_entries(reference_dir):
    """The fixture holds numpy objects beside the fp16 state dict; they load with the allow-list."""
    loaded = load_model(reference_dir / "parity" / "dy-yolov7-step2-w0.25.pt")
    assert loaded.spec.name == "dy-yolov7" and loaded.spec.width_multiple == 0.25 and loaded.calibration is None
    assert not loaded.model.training
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())


def test_numpy_scalars_in_reference_checkpoints_are_allowed(tmp_path, reference_dir):
    original = torch.load(reference_dir / "parity" / "dy-yolov7-step2-w0.25.pt", weights_only=False)
    original["best_fitness"] = np.float64(0.5)
    original["extra"] = np.arange(3, dtype=np.int64)
    path = tmp_path / "with_scalars.pt"
    torch.save(original, path)
    assert load_model(path).spec.name == "dy-yolov7"
