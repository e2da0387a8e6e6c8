"""Architecture description of a dynamic detector (the schema of ``configs/models/*.yaml``).

Stages and widths are declared by name, never by layer index. Channel counts are given
at width 1.0 and scaled by ``width_multiple`` when the modules are built; ELAN chain
depths are scaled by ``depth_multiple``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from engine.config import from_mapping, load_yaml
from engine.data.coco_names import COCO_NAMES
from engine.errors import ConfigError


@dataclass(frozen=True)
class DownSpec:
    """Transition into a stage: ``conv`` (3x3/2), ``pool_conv`` (YOLOv7 MP: two branches of
    ``channels`` each), ``maxpool`` (2x2), or ``none`` (stage keeps the resolution)."""

    type: Literal["conv", "pool_conv", "maxpool", "none"]
    channels: int = 0


@dataclass(frozen=True)
class BlockSpec:
    """Body of a stage or neck level: a single 3x3 ``conv``, an ``elan`` block, or ``none``."""

    type: Literal["conv", "elan", "none"]
    out_channels: int
    branch_channels: int = 0
    chain_channels: int = 0
    depth: int = 4
    tap_every: int = 1


@dataclass(frozen=True)
class StageSpec:
    name: str
    down: DownSpec
    block: BlockSpec


@dataclass(frozen=True)
class BackboneSpec:
    """``input``: ``image``, or ``space_to_depth`` (W6: both backbones read the 2x2-folded image).
    ``stem_channels``: stride-1 3x3 convs applied before the first stage."""

    stages: tuple[StageSpec, ...]
    input: Literal["image", "space_to_depth"] = "image"
    stem_channels: tuple[int, ...] = ()

    def stage(self, name: str) -> StageSpec:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"backbone has no stage named {name!r} (stages: {[s.name for s in self.stages]})")


@dataclass(frozen=True)
class TopDownSpec:
    """One top-down (upsampling) level of the PAN: lateral/reduce convs of ``channels``."""

    level: str
    channels: int
    block: BlockSpec


@dataclass(frozen=True)
class BottomUpSpec:
    """One bottom-up (downsampling) level of the PAN."""

    level: str
    down: DownSpec
    block: BlockSpec


@dataclass(frozen=True)
class NeckSpec:
    """PAN neck. ``levels`` are backbone stage names, shallow to deep; the deepest feeds ``top``."""

    levels: tuple[str, ...]
    top_type: Literal["sppcspc", "tiny_spp"]
    top_channels: int
    top_down: tuple[TopDownSpec, ...]
    bottom_up: tuple[BottomUpSpec, ...]
    output_type: Literal["repconv", "conv"]
    output_channels: tuple[int, ...]


#: The family name of :class:`ArchSpec` models in model files and ``info``.
YOLO_FAMILY = "dy-yolov7"


@dataclass(frozen=True)
class ArchSpec:
    """A whole dynamic detector: two detectors of this shape, a composite link, a router."""

    # A class constant, not a field: the architecture files predate the key and never carry it.
    family: ClassVar[str] = YOLO_FAMILY
    name: str
    num_classes: int
    anchors: tuple[tuple[float, ...], ...]
    backbone: BackboneSpec
    neck: NeckSpec
    router_inputs: tuple[str, ...]
    link_stages: tuple[str, ...]
    width_multiple: float = 1.0
    depth_multiple: float = 1.0
    activation: Literal["silu", "leaky_relu", "relu"] = "silu"
    router_reduction: int = 4
    # Stages of backbone 2 whose pool-conv transition takes its strided-conv branch from
    # backbone 1's previous stage instead of its own (a detail of the published Dy-YOLOv7-X).
    cross_stage_inputs: tuple[str, ...] = ()
    class_names: tuple[str, ...] = field(default=())
    input_size: int = 640

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if not 0 < self.width_multiple <= 4 or not 0 < self.depth_multiple <= 4:
            raise ValueError("width_multiple and depth_multiple must be in (0, 4]")
        if len(self.anchors) != len(self.neck.levels):
            raise ValueError(f"{len(self.anchors)} anchor rows for {len(self.neck.levels)} neck levels")
        if any(len(a) % 2 or not a for a in self.anchors) or len({len(a) for a in self.anchors}) != 1:
            raise ValueError("every anchor row needs the same, even number of values (w, h pairs)")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class_names for num_classes={self.num_classes}")
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        names = [s.name for s in self.backbone.stages]
        for group, wanted in (("router_inputs", self.router_inputs), ("link_stages", self.link_stages),
                              ("neck.levels", self.neck.levels), ("cross_stage_inputs", self.cross_stage_inputs)):
            missing = [n for n in wanted if n not in names]
            if missing:
                raise ValueError(f"{group} names unknown stage {missing[0]!r} (stages: {names})")
        if len(self.neck.output_channels) != len(self.neck.levels):
            raise ValueError("neck.output_channels needs one entry per neck level")

    def channels(self, c: int) -> int:
        """Width-scaled channel count, rounded up to a multiple of 8 (as the reference does)."""
        return int(math.ceil(c * self.width_multiple / 8) * 8)

    def depth(self, n: int) -> int:
        return max(1, round(n * self.depth_multiple))

    @property
    def names(self) -> tuple[str, ...]:
        """The class names; a nameless 80-class model is COCO-trained (the reference checkpoints)."""
        if self.class_names:
            return self.class_names
        if self.num_classes == len(COCO_NAMES):
            return COCO_NAMES
        return tuple(f"class{i}" for i in range(self.num_classes))

    def describe(self) -> dict:
        """Architecture facts for ``info``."""
        return {"name": self.name, "family": self.family, "num_classes": self.num_classes,
                "width_multiple": self.width_multiple, "depth_multiple": self.depth_multiple,
                "activation": self.activation, "stages": self.strides, "detection_levels": list(self.neck.levels),
                "router_inputs": list(self.router_inputs), "link_stages": list(self.link_stages)}

    @property
    def strides(self) -> dict[str, int]:
        """Output stride of every backbone stage."""
        stride = 2 if self.backbone.input == "space_to_depth" else 1
        strides = {}
        for stage in self.backbone.stages:
            if stage.down.type != "none":
                stride *= 2
            strides[stage.name] = stride
        return strides


def load_arch(path: str | Path, **overrides: object) -> ArchSpec:
    """Read one of our architecture YAML files; keyword overrides replace top-level keys."""
    data = load_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    spec = from_mapping(ArchSpec, data, where=Path(path).name)
    return spec
