"""Reading and writing model files without ever executing code from them.

Two formats are read:
- ours: a safetensors file whose JSON metadata carries the architecture, class names, input
  size and calibration, so one file rebuilds and runs the model;
- the reference implementation's ``torch.save`` dicts (``model`` / ``ema`` fp16 state dicts
  beside numpy objects), read with ``torch.load(weights_only=True)`` and only the few numpy
  globals such files contain allowed.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.bundled import model_config
from engine.config import from_mapping, load_yaml, to_mapping
from engine.errors import CheckpointError, ConfigError
from engine.model.arch import ArchSpec, load_arch
from engine.model.build import build_dynamic_detector
from engine.model.calibration import Calibration
from engine.model.families import (
    Cascade,
    LoadedModel,
    build_cascade,
    family_of,
    spec_family,
    spec_from_mapping,
)
from engine.model.reference import (
    PUBLISHED,
    arch_from_reference_yaml,
    convert_state_dict,
    is_reference_yaml,
)

logger = logging.getLogger(__name__)

FORMAT = "dynastream"
FORMAT_VERSION = 1


def _numpy_globals() -> list[Any]:
    """The numpy objects a reference checkpoint pickles (``best_fitness`` is an ndarray)."""
    from numpy._core import multiarray

    allowed: list[Any] = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
                          (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                          (multiarray.scalar, "numpy.core.multiarray.scalar")]
    allowed += [type(np.dtype(t)) for t in ("f2", "f4", "f8", "i4", "i8", "u1", "b1")]
    return allowed


def read_reference_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The float32 state dict inside a reference checkpoint (its ``model``, else its ``ema``)."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_refusal(path, str(exc))) from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: "
                              f"{str(exc).splitlines()[0][:120]})") from None
    if isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values()) and data:
        state = data  # a bare state dict
    elif isinstance(data, dict):
        state = data.get("model") if data.get("model") is not None else data.get("ema")
    else:
        state = None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no state dict under 'model' or 'ema'")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _refusal(path: Path, message: str) -> str:
    match = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"global[s]? ['`]?([\w.]+)", message)
    name = match.group(1) if match else "an unknown object"
    if name.startswith(("models.yolo", "models.common")):
        return (f"{path}: this checkpoint pickles whole model objects ({name}), an older format that "
                "cannot be read without running its code; save its state_dict() and load that instead")
    return f"{path}: refused to load: the file refers to {name}, which a weights file never needs"


def _is_safetensors(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def save_model(path: str | Path, loaded: LoadedModel, half: bool = False) -> Path:
    """Write weights and everything needed to rebuild the model into one safetensors file.

    ``half`` stores floating-point tensors as float16 (half the file); loading casts them back
    into the model's float32 parameters.
    """
    from safetensors.torch import save_file

    model = loaded.model
    spec = replace(loaded.spec, class_names=tuple(model.class_names), input_size=model.input_size)
    calibration = loaded.calibration
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "family": spec.family,
        "arch": json.dumps(to_mapping(spec)),
        "calibration": json.dumps(to_mapping(calibration) if calibration else None),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)  # never leave a half-written model file under the real name
    return path


def _load_ours(path: Path) -> LoadedModel:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable model file ({str(exc)[:120]})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: safetensors file without DynaStream metadata (no architecture)")
    try:
        family = family_of(metadata)  # files written before the family key are YOLO-family models
        spec = spec_from_mapping(json.loads(metadata["arch"]), where=f"{path.name}:arch", family=family)
        calib = json.loads(metadata.get("calibration") or "null")
    except (KeyError, json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: damaged metadata ({exc})") from None
    model = build_cascade(spec)
    _load_state(model, state, path)
    return LoadedModel(model, spec, from_mapping(Calibration, calib) if calib else None)


def _load_state(model: Cascade, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the architecture "
                              f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. "
                              f"{(missing or unexpected)[0]})")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, "
                                  f"expected {tuple(expected[key].shape)}")
    model.load_state_dict(state)


def arch_from_config(config_path: str | Path) -> Any:
    """The spec in our architecture YAML (either family) or a reference ``cfg/*.yaml``, by content."""
    data = load_yaml(config_path)
    if is_reference_yaml(data):
        return arch_from_reference_yaml(config_path)
    return spec_from_mapping(data, where=Path(config_path).name)


def infer_reference_arch(state: dict[str, torch.Tensor], path: Path) -> ArchSpec:
    """Recognise a published architecture, its width and class count from state-dict shapes."""
    head = max((k for k in state if re.fullmatch(r"model_h\.\d+\.m\.0\.weight", k)), default=None)
    grid = head and state.get(head.replace("m.0.weight", "anchor_grid"))
    if head is None or grid is None or ("model_b.0.conv.weight" not in state and "model_b.1.conv.weight" not in state):
        raise CheckpointError(f"{path}: cannot tell the architecture from the weights; pass --config")
    anchors = grid.reshape(grid.shape[0], -1)
    num_anchors = grid.shape[2]
    num_classes = state[head].shape[0] // num_anchors - 5
    for name in PUBLISHED:
        base = load_arch(model_config(name))
        first = "model_b.1.conv.weight" if base.backbone.input == "space_to_depth" else "model_b.0.conv.weight"
        if first not in state:
            continue
        base_first = base.backbone.stem_channels[0] if base.backbone.stem_channels else \
            base.backbone.stages[0].block.out_channels
        width = state[first].shape[0] / base_first
        arch = replace(base, num_classes=int(num_classes), width_multiple=float(width),
                       anchors=tuple(tuple(float(v) for v in row) for row in anchors.tolist()))
        with torch.device("meta"):
            model = build_dynamic_detector(arch)
        try:
            convert_state_dict({k: v.to("meta") for k, v in state.items()}, model, arch)
        except CheckpointError:
            continue
        return arch
    raise CheckpointError(f"{path}: weights match no published DynamicDet architecture; pass --config")


def load_model(weights_path: str | Path, config_path: str | Path | None = None) -> LoadedModel:
    """Load any supported model file for inference (eval mode, float32, CPU), with its spec and
    calibration (reference checkpoints carry none)."""
    path = Path(weights_path)
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"weights path is not a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    if _is_safetensors(path):
        loaded = _load_ours(path)
    else:
        state = read_reference_checkpoint(path)
        spec = arch_from_config(config_path) if config_path else infer_reference_arch(state, path)
        if not spec_family(spec).reference_checkpoints:
            raise CheckpointError(f"{path}: only DynamicDet's YOLO checkpoints convert; start a {spec.family} "
                                  "from torchvision weights with the training config's model.init_torchvision")
        model = build_cascade(spec)
        model.load_state_dict(convert_state_dict(state, model, spec))
        loaded = LoadedModel(model, spec)
    loaded.model.float().eval()
    return loaded
