"""The detector families behind the dynamic cascade, and the one place that picks between them.

Every family's cascade offers the same staged interface (``stage1``, ``exit1``, ``exit2``,
``postprocess``, ``router_score``, ``fuse``, ``describe`` and the attributes below), so the
predictor, backends, training loop, calibration, evaluation and runtime never ask which family
runs. Only building a model from its spec, and the detection loss, differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from engine.config import from_mapping
from engine.errors import ConfigError
from engine.model.arch import ArchSpec
from engine.model.build import build_dynamic_detector
from engine.model.rcnn.detector import FAMILY as RCNN_FAMILY
from engine.model.rcnn.detector import DyFasterRCNN, DyRCNNSpec

YOLO_FAMILY = "dy-yolov7"


class Cascade(Protocol):
    """What the rest of the engine may rely on in a dynamic detector of any family."""

    family: str
    onnx_exportable: bool
    arch: Any
    class_names: tuple[str, ...]
    input_size: int
    stride: int
    calibration: Any

    def stage1(self, x: torch.Tensor) -> Any: ...

    def exit1(self, s1: Any) -> Any: ...

    def exit2(self, s1: Any) -> Any: ...

    def postprocess(self, outputs: Any, conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[torch.Tensor]: ...


@dataclass(frozen=True)
class Family:
    spec_type: type
    build: Callable[[Any], Any]


FAMILIES = {
    YOLO_FAMILY: Family(ArchSpec, build_dynamic_detector),
    RCNN_FAMILY: Family(DyRCNNSpec, DyFasterRCNN),
}


def family_of(data: Mapping[str, Any]) -> str:
    """The family a spec mapping declares (``family:``); specs without the key are YOLO's."""
    family = data.get("family", YOLO_FAMILY)
    if family not in FAMILIES:
        raise ConfigError(f"family: unknown model family {family!r} (known: {', '.join(FAMILIES)})")
    return family


def spec_from_mapping(data: Mapping[str, Any], where: str = "", family: str | None = None) -> Any:
    """The frozen spec of the family named in ``data`` (or passed as ``family``)."""
    family = family or family_of(data)
    if family == YOLO_FAMILY:  # ArchSpec predates the key and has no field for it
        data = {k: v for k, v in data.items() if k != "family"}
    return from_mapping(FAMILIES[family].spec_type, data, where=where)


def build_cascade(spec: Any) -> Any:
    """A freshly initialised cascade for ``spec`` (an ``ArchSpec`` or a ``DyRCNNSpec``)."""
    for family in FAMILIES.values():
        if isinstance(spec, family.spec_type):
            return family.build(spec)
    raise TypeError(f"not a model spec: {type(spec).__name__}")
