"""Export of the staged detector to three ONNX graphs, cached beside the weights.

The graphs mirror :class:`~engine.model.detector.DynamicDetector`'s stages, so a runtime can
stop after exit 1 without paying for detector 2:

- ``stage1``: ``images`` ``[N, 3, H, W]`` -> ``scores`` ``[N]`` and the backbone-1 features the
  exits read (``feat_<stage>``), plus ``folded`` (the space-to-depth input) for models whose
  backbones read a folded image;
- ``exit1``: detector-1 features -> ``predictions`` ``[N, A, 5 + C]``;
- ``exit2``: ``images`` (or ``folded``) and backbone-1 features -> ``predictions``.

Stage-1 output names equal the exits' input names, so features pass by name. Batch, height
and width are dynamic axes: the graphs accept any size that is a multiple of the largest stride.

Cache layout: ``<weights>.onnx-cache/<key>/{stage1,exit1,exit2}.onnx`` plus ``manifest.json``,
where ``key`` hashes the weights file content, the architecture, the export settings and the
exporter's version. Entries are written into a temporary folder and renamed into place. When the
weights' folder is read-only, or the weights came with an installed package, the same layout lives
under the user cache instead (:func:`cache_root_for`, :func:`user_cache_root`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.bundled import is_installed
from engine.config import to_mapping
from engine.model.blocks import SpaceToDepth
from engine.model.composite import CompositeLink, ExportLink
from engine.model.detector import DynamicDetector, Stage1Output
from engine.model.families import LoadedModel
from engine.model.head import ExportHead

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
# Bump when the graphs' layout or names change, so stale cache entries are not reused.
EXPORT_VERSION = 5  # 2: the composite link exported through ExportLink; 3: ExportHead, split projections;
# 4: predictions cell-major (see DetectHead); 5: the link's pieces summed coarsest first (ExportLink.fuse_into)
GRAPHS = ("stage1", "exit1", "exit2")
FEATURE_PREFIX = "feat_"
EXIT_OUTPUT = "predictions"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StagedGraphs:
    """The three exported graph files of one model.

    Attributes:
        directory: the cache entry holding them.
        key: the cache key (the entry's folder name).
        files: graph name (``stage1``, ``exit1``, ``exit2``) -> ``.onnx`` path.
        reused: True when the entry already existed and nothing was exported.
    """

    directory: Path
    key: str
    files: dict[str, Path]
    reused: bool

    def sizes(self) -> dict[str, int]:
        """Bytes per graph file."""
        return {name: path.stat().st_size for name, path in self.files.items()}


def cache_root_for(weights_path: Path) -> Path:
    """The folder that holds a weights file's exported graphs: ``<weights>.onnx-cache`` beside it,
    except for a model installed with the package, whose graphs go to the user cache (nothing is
    written into an installed package, writable or not)."""
    if is_installed(weights_path):
        return fallback_root_for(weights_path, weights_path)
    return weights_path.with_name(weights_path.name + ".onnx-cache")


def user_cache_root() -> Path:
    """The per-user cache (``$XDG_CACHE_HOME/dynastream``, else ``~/.cache/dynastream``): where
    exports go when the weights' folder is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dynastream"


def fallback_root_for(weights_path: Path | None, cache_root: Path) -> Path:
    """The user-cache counterpart of ``cache_root`` (same folder name, so entries stay per weights)."""
    return user_cache_root() / "onnx-cache" / (Path(weights_path).name if weights_path else cache_root.name)


def is_writable_dir(folder: Path) -> bool:
    """True when ``folder`` exists or can be created, and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            return True
    except OSError:
        return False


def scratch_dir(graphs: StagedGraphs, name: str) -> Path:
    """A writable folder for files derived from ``graphs`` (runtime caches, measurements): inside
    the cache entry, or under the user cache when the entry is read-only."""
    folder = graphs.directory / name
    if is_writable_dir(folder):
        return folder
    folder = user_cache_root() / "derived" / graphs.key / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def export_staged(loaded: LoadedModel, weights_path: Path | None = None, *, cache_root: Path | None = None,
                  opset: int = DEFAULT_OPSET, sample_size: tuple[int, int] | None = None) -> StagedGraphs:
    """Export a YOLO-family model as three graphs, or reuse the cached export of the same weights.

    Args:
        loaded: the detector (left unchanged: a fused copy is exported) and its spec.
        weights_path: the file the weights came from; its content keys the cache. Without
            it the state dict is hashed instead.
        cache_root: where cache entries live (default: :func:`cache_root_for`; when that
            folder is read-only, the same name under :func:`user_cache_root`); required when
            ``weights_path`` is None.
        opset: ONNX opset of the graphs.
        sample_size: ``(height, width)`` of the example input traced during export; the
            graphs do not depend on it (dynamic axes). Default: 2 x 3 cells of the largest stride.

    Returns:
        The graph files and whether they were reused.
    """
    if cache_root is None:
        if weights_path is None:
            raise ValueError("export_staged needs weights_path or cache_root")
        cache_root = cache_root_for(Path(weights_path))
    model = loaded.model
    key = cache_key(loaded, weights_path, opset)
    roots = [Path(cache_root), fallback_root_for(weights_path, Path(cache_root))]
    for root in roots:
        if _is_complete(root / key):
            logger.debug("reusing ONNX graphs in %s", root / key)
            return _graphs(root / key, key, reused=True)
    root = next((r for r in roots if is_writable_dir(r)), None)
    if root is None:
        raise OSError(f"no writable folder for the ONNX export: tried {', '.join(map(str, roots))}")
    if root != roots[0]:
        logger.info("%s is read-only: caching the ONNX export in %s", roots[0], root)
    entry = root / key
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=entry.parent))
    try:
        manifest = _export_graphs(model, tmp, opset, sample_size or _default_sample(model))
        manifest.update(key=key, weights=str(weights_path) if weights_path else None, **_versions(opset))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _publish(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported ONNX graphs to %s", entry)
    return _graphs(entry, key, reused=False)


def cache_key(loaded: LoadedModel, weights_path: Path | None, opset: int = DEFAULT_OPSET) -> str:
    """Hash of the weights (file content, else state dict), architecture, settings and exporter."""
    weights = _file_digest(Path(weights_path)) if weights_path is not None else _state_digest(loaded.model)
    payload = {"weights": weights, "arch": to_mapping(loaded.spec), **_versions(opset)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def stage1_features(model: DynamicDetector) -> tuple[str, ...]:
    """Backbone-1 stages that either exit reads, in backbone order."""
    needed = set(model.first.neck.levels) | set(model.link.stages) | set(model.cross_inputs.values())
    return tuple(name for name in model.first.backbone.stages if name in needed)


def exit_features(model: DynamicDetector, exit_id: int) -> tuple[str, ...]:
    """Backbone-1 stages that one exit reads, in backbone order."""
    if exit_id == 1:
        needed = set(model.first.neck.levels)
    else:
        needed = set(model.link.stages) | set(model.cross_inputs.values())
    return tuple(name for name in stage1_features(model) if name in needed)


class Stage1Graph(nn.Module):
    """Stage 1 as a graph: images -> (scores, features..., [folded input])."""

    def __init__(self, model: DynamicDetector, features: tuple[str, ...], emit_inputs: bool) -> None:
        super().__init__()
        self.model = model
        self.features = features
        self.emit_inputs = emit_inputs

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s1 = self.model.stage1(images)
        outputs = [s1.scores, *(s1.features[name] for name in self.features)]
        if self.emit_inputs:
            outputs.append(s1.inputs)
        return tuple(outputs)


class ExitGraph(nn.Module):
    """One exit as a graph: ([backbone input], features...) -> decoded predictions ``[N, A, 5 + C]``."""

    def __init__(self, model: DynamicDetector, exit_id: int, features: tuple[str, ...], reads_inputs: bool) -> None:
        super().__init__()
        self.model = model
        self.exit_id = exit_id
        self.features = features
        self.reads_inputs = reads_inputs

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self.reads_inputs:
            inputs, *features = tensors
        else:
            features = list(tensors)
            inputs = features[0].new_zeros(0)  # exit 1 never reads the backbone input
        s1 = Stage1Output(inputs, dict(zip(self.features, features)), inputs.new_zeros(0))
        return self.model.exit1(s1) if self.exit_id == 1 else self.model.exit2(s1)


def _export_graphs(model: DynamicDetector, folder: Path, opset: int, sample_size: tuple[int, int]) -> dict:
    """Writes the three graphs of a fused copy of ``model`` into ``folder``; returns their manifest."""
    fused = copy.deepcopy(model).float().cpu().fuse()
    if isinstance(fused.link, CompositeLink):
        fused.link = ExportLink(fused.link)  # same sums, fewer glue operators in the graph
    for detector in (fused.first, fused.second):
        detector.head = ExportHead(detector.head)  # same boxes, decoded in the convolutions' layout
    folded = isinstance(fused.input_transform, SpaceToDepth)
    backbone_input = "folded" if folded else "images"
    features = stage1_features(fused)
    names = {1: exit_features(fused, 1), 2: exit_features(fused, 2)}
    images = torch.rand(1, 3, *sample_size)
    with torch.no_grad():
        s1 = fused.stage1(images)
    feeds = {"images": images, "folded": s1.inputs, **{FEATURE_PREFIX + k: v for k, v in s1.features.items()}}
    stage1_out = ["scores", *(FEATURE_PREFIX + n for n in features), *(["folded"] if folded else [])]
    _export(Stage1Graph(fused, features, folded), (images,), folder / "stage1.onnx", ["images"], stage1_out, opset)
    for exit_id in (1, 2):
        inputs = [*([backbone_input] if exit_id == 2 else []), *(FEATURE_PREFIX + n for n in names[exit_id])]
        graph = ExitGraph(fused, exit_id, names[exit_id], reads_inputs=exit_id == 2)
        args = tuple(feeds[name] for name in inputs)
        _export(graph, args, folder / f"exit{exit_id}.onnx", inputs, [EXIT_OUTPUT], opset)
    return {"graphs": {g: f"{g}.onnx" for g in GRAPHS}, "stage1_outputs": stage1_out,
            "sample_size": list(sample_size), "backbone_input": backbone_input}


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str], outputs: list[str],
            opset: int) -> None:
    # The TorchScript-based exporter traces the same Python code that PyTorch runs and keeps
    # shapes symbolic along the dynamic axes (the head's grid and the link's resizes included).
    # It is deprecated in favour of the torch.export-based one, which also exports these graphs
    # correctly but takes tens of seconds per graph instead of well under one; chosen knowingly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # The link compares feature sizes only to skip resizing a piece at its own stage; which
        # pieces need resizing depends on the stages, never on the input size, so the traced
        # branch is valid for every size.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=opset, input_names=inputs,
                          output_names=outputs, dynamic_axes={n: _dynamic_axes(n) for n in inputs + outputs},
                          do_constant_folding=True)


def _dynamic_axes(name: str) -> dict[int, str]:
    if name == "scores":
        return {0: "batch"}
    if name == EXIT_OUTPUT:
        return {0: "batch", 1: "anchors"}
    return {0: "batch", 2: f"{name}_height", 3: f"{name}_width"}


def _default_sample(model: DynamicDetector) -> tuple[int, int]:
    # Non-square so that no height/width coincidence can be baked into the trace.
    stride = max(model.first.head.strides)
    return 2 * stride, 3 * stride


def _versions(opset: int) -> dict[str, object]:
    return {"opset": opset, "export_version": EXPORT_VERSION, "exporter": f"torch-{torch.__version__}-torchscript"}


def _is_complete(entry: Path) -> bool:
    return (entry / MANIFEST).is_file() and all((entry / f"{g}.onnx").is_file() for g in GRAPHS)


def _graphs(entry: Path, key: str, reused: bool) -> StagedGraphs:
    return StagedGraphs(entry, key, {g: entry / f"{g}.onnx" for g in GRAPHS}, reused)


def _publish(tmp: Path, entry: Path) -> None:
    """Move a finished export into place; a concurrent exporter that got there first wins."""
    if entry.exists() and not _is_complete(entry):
        shutil.rmtree(entry, ignore_errors=True)  # a damaged entry from an interrupted copy
    try:
        os.rename(tmp, entry)
    except OSError:
        if not _is_complete(entry):
            raise


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _state_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
