"""Compatibility with the reference DynamicDet implementation: its YAML files and parameter names.

The mapping between reference names (``model_b.<i>``, ``model_b2.<i>``, ``model_h.<i>``,
``model_h2.<i>``, ``router.layer{1,2}``) and our module paths is derived from the modules
themselves: each block lists its reference-indexed sub-layers in order
(``reference_layers``) and how its parameter names differ (``reference_renames``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.bundled import model_config
from engine.config import load_yaml
from engine.errors import CheckpointError, ConfigError
from engine.model.arch import ArchSpec
from engine.model.backbone import Backbone
from engine.model.blocks import ConvBNAct, RepConv
from engine.model.csp import SPPCSPC
from engine.model.detector import DynamicDetector
from engine.model.head import DetectHead

Entry = tuple[str | None, nn.Module | None]  # (our module path, module) per reference layer index

# Published architectures a reference YAML may describe, by our config file name.
PUBLISHED = ("dy-yolov7", "dy-yolov7x", "dy-yolov7-w6")


def _entries(root: nn.Module, prefix: str) -> list[Entry]:
    """Reference-indexed layers of ``root`` as (absolute path, module), parameter-free ones as None."""
    if not hasattr(root, "reference_layers"):
        return [(prefix, root)]
    out: list[Entry] = []
    for rel in root.reference_layers():
        if rel is None:
            out.append((None, None))
        else:
            path = f"{prefix}.{rel}" if rel else prefix
            out.append((path, root.get_submodule(rel) if rel else root))
    return out


def _backbone_entries(backbone: Backbone, prefix: str, folded_input: bool, linked: tuple[str, ...]) -> list[Entry]:
    entries: list[Entry] = [(None, None)] if folded_input else []
    entries += [(f"{prefix}.stem.{i}", m) for i, m in enumerate(backbone.stem)]
    for name, stage in backbone.stages.items():
        entries += _entries(stage.down, f"{prefix}.stages.{name}.down")
        if name in linked:
            entries.append((None, None))  # the reference's CBFuse layer
        entries += _entries(stage.block, f"{prefix}.stages.{name}.block")
    return entries


def reference_entries(model: DynamicDetector, arch: ArchSpec) -> dict[str, list[Entry]]:
    """Our modules at each index of the four reference layer lists."""
    folded = arch.backbone.input == "space_to_depth"
    link = [(f"link.projections.{name}", model.link.projections[name]) for name in model.link.stages]
    return {
        "model_b": _backbone_entries(model.first.backbone, "first.backbone", folded, ()),
        "model_b2": link + _backbone_entries(model.second.backbone, "second.backbone", False, model.link.stages),
        "model_h": _entries(model.first.neck, "first.neck") + [("first.head", model.first.head)],
        "model_h2": _entries(model.second.neck, "second.neck") + [("second.head", model.second.head)],
    }


def _local_keys(module: nn.Module) -> Iterator[tuple[str, str]]:
    """(our local key, reference local key) for every state entry of one reference layer."""
    renames: dict[str, str] = module.reference_renames() if hasattr(module, "reference_renames") else {}
    if isinstance(module, nn.Conv2d):  # the reference wraps CBLinear's conv one level deeper
        renames = {"": "conv."}
    for key in module.state_dict():
        ref = key
        for ours, theirs in renames.items():
            if key.startswith(ours):
                ref = theirs + key[len(ours):]
                break
        yield key, ref


def reference_key_map(model: DynamicDetector, arch: ArchSpec) -> dict[str, str]:
    """Reference state-dict key -> our state-dict key (anchors handled by the converter)."""
    mapping = {f"router.{ref}": f"router.{ours}" for ours, ref in _local_keys(model.router)}
    for group, entries in reference_entries(model, arch).items():
        for index, (path, module) in enumerate(entries):
            if module is None:
                continue
            for ours, ref in _local_keys(module):
                mapping[f"{group}.{index}.{ref}"] = f"{path}.{ours}"
    for group, head in (("model_h", "first.head"), ("model_h2", "second.head")):
        index = len(reference_entries(model, arch)[group]) - 1
        mapping[f"{group}.{index}.anchor_grid"] = mapping.pop(f"{group}.{index}.anchors")
        mapping[f"{group}.{index}.anchors"] = f"{head}.anchors"
    return mapping


def convert_state_dict(ref_state: dict[str, torch.Tensor], model: DynamicDetector, arch: ArchSpec
                       ) -> dict[str, torch.Tensor]:
    """Rename a reference state dict to ours, checking every name and shape on both sides."""
    mapping = reference_key_map(model, arch)
    ours = model.state_dict()
    leftover = sorted(set(ref_state) - set(mapping))
    missing = sorted(set(mapping) - set(ref_state))
    if leftover or missing:
        detail = f"unexpected {leftover[0]!r}" if leftover else f"missing {missing[0]!r}"
        raise CheckpointError(
            f"checkpoint does not fit architecture {arch.name} (width {arch.width_multiple}): "
            f"{len(leftover)} unexpected and {len(missing)} missing parameters, e.g. {detail}"
        )
    converted: dict[str, torch.Tensor] = {}
    for ref_key, our_key in mapping.items():
        value = ref_state[ref_key]
        if ref_key.endswith(".anchor_grid"):
            value = value.reshape(ours[our_key].shape)
        elif ref_key.endswith(".anchors") and our_key.endswith("head.anchors"):
            continue  # anchors in grid units: the pixel anchor_grid above carries the same values
        if tuple(value.shape) != tuple(ours[our_key].shape):
            raise CheckpointError(
                f"checkpoint parameter {ref_key} has shape {tuple(value.shape)}, "
                f"architecture {arch.name} expects {tuple(ours[our_key].shape)} for {our_key}"
            )
        converted[our_key] = value.to(ours[our_key].dtype)
    return converted


# ---------------------------------------------------------------------------------------------
# Reference YAML files as architecture descriptions
# ---------------------------------------------------------------------------------------------

_PARAMETER_FREE = {"Concat", "MP", "nn.Upsample", "CBFuse", "ReOrg", "SP"}
_TYPE_NAMES = {ConvBNAct: "Conv", RepConv: "RepConv", SPPCSPC: "SPPCSPC", DetectHead: "IDetect"}


def is_reference_yaml(data: dict[str, Any]) -> bool:
    return "backbone" in data and isinstance(data["backbone"], list) and "dual_backbone" in data


def _signature(model: DynamicDetector, arch: ArchSpec) -> dict[str, list[tuple[str, int | None]]]:
    """Per reference list: (layer type, output channels) at width 1.0, None type for parameter-free."""
    sig: dict[str, list[tuple[str, int | None]]] = {}
    for group, entries in reference_entries(model, arch).items():
        rows = []
        for _, module in entries:
            if module is None:
                rows.append(("-", None))
            elif isinstance(module, nn.Conv2d):
                rows.append(("CBLinear", None))
            else:
                name = next((n for cls, n in _TYPE_NAMES.items() if isinstance(module, cls)), "?")
                rows.append((name, getattr(module, "out_channels", None)))
        sig[group] = rows
    return sig


def _yaml_signature(data: dict[str, Any]) -> dict[str, list[tuple[str, int | None]]]:
    def rows(layers: list) -> list[tuple[str, int | None]]:
        out = []
        for layer in layers:
            if not isinstance(layer, list) or len(layer) != 4:
                raise ConfigError(f"reference config: malformed layer entry {layer!r}")
            module, args = str(layer[2]), layer[3]
            if module in _PARAMETER_FREE:
                out.append(("-", None))
            elif module == "CBLinear":
                out.append(("CBLinear", None))
            elif module in ("IDetect",):
                out.append(("IDetect", None))
            else:
                out.append((module, int(args[0]) if args and isinstance(args[0], int) else None))
        return out

    return {"model_b": rows(data["backbone"]), "model_b2": rows(data["dual_backbone"]),
            "model_h": rows(data["head"]), "model_h2": rows(data["head2"])}


def _same_shape(ours: list[tuple[str, int | None]], theirs: list[tuple[str, int | None]]) -> bool:
    if len(ours) != len(theirs):
        return False
    for (t1, c1), (t2, c2) in zip(ours, theirs):
        if t1 != t2 and not (t1 == "-" and t2 == "-"):
            return False
        if t1 not in ("IDetect", "-", "CBLinear") and c1 != c2:
            return False
    return True


def arch_from_reference_yaml(path: str | Path) -> ArchSpec:
    """Recognise which published architecture a reference ``cfg/*.yaml`` describes and return it
    with the file's class count, width/depth multiples and anchors. Nothing in the file is evaluated."""
    from engine.model.arch import load_arch
    from engine.model.build import build_dynamic_detector

    data = load_yaml(path)
    if not is_reference_yaml(data):
        raise ConfigError(f"{path}: not a DynamicDet reference config (no backbone/dual_backbone lists)")
    for key in ("nc", "anchors", "head", "head2"):
        if key not in data:
            raise ConfigError(f"{path}: reference config lacks {key!r}")
    theirs = _yaml_signature(data)
    for name in PUBLISHED:
        base = load_arch(model_config(name))
        with torch.device("meta"):
            model = build_dynamic_detector(base)
        if all(_same_shape(_signature(model, base)[g], theirs[g]) for g in theirs):
            return _specialise(base, data, Path(path))
    raise ConfigError(f"{path}: does not match any published DynamicDet architecture ({', '.join(PUBLISHED)})")


def _specialise(base: ArchSpec, data: dict[str, Any], path: Path) -> ArchSpec:
    from dataclasses import replace

    anchors = data["anchors"]
    if isinstance(anchors, int) or not all(isinstance(row, list) for row in anchors):
        raise ConfigError(f"{path}: anchors must be explicit lists of w, h pairs")
    names = data.get("names")
    try:
        arch = replace(
            base,
            num_classes=int(data["nc"]),
            width_multiple=float(data.get("width_multiple", 1.0)),
            # The reference repeats no layer (every repeat count is 1), so its depth multiple
            # changes nothing; ours would lengthen ELAN chains, hence it is not carried over.
            depth_multiple=1.0,
            anchors=tuple(tuple(float(v) for v in row) for row in anchors),
            class_names=tuple(names) if isinstance(names, list) else (),
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check_explicit_channels(arch, data, path)
    return arch


def _check_explicit_channels(arch: ArchSpec, data: dict[str, Any], path: Path) -> None:
    """The reference lists CBLinear and router widths by hand; they must equal what ours derive."""
    from engine.model.build import build_dynamic_detector

    with torch.device("meta"):
        model = build_dynamic_detector(arch)
    cblinear = [layer[3][0] for layer in data["dual_backbone"] if layer[2] == "CBLinear"]
    expected = [model.link.splits[name] for name in model.link.stages]
    if cblinear != expected:
        raise ConfigError(f"{path}: CBLinear channels {cblinear} do not match width "
                          f"{arch.width_multiple} (expected {expected})")
    router = data.get("router_channels")
    want = [model.first.backbone.out_channels[n] for n in arch.router_inputs]
    if router is not None and list(router) != want:
        raise ConfigError(f"{path}: router_channels {router} do not match width {arch.width_multiple} "
                          f"(expected {want})")
