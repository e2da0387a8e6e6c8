"""The detector families behind the dynamic cascade, and the one place that tells them apart.

Every family's cascade offers the same staged interface (``stage1``, ``exit1``, ``exit2``,
``postprocess``, ``router_score``, ``fuse`` and the attributes of :class:`Cascade`), so the
predictor, backends, training loop, calibration, evaluation and runtime never ask which family
runs. What does differ (how a spec builds a model, the detection loss, the options one family
has and the other lacks) is a :class:`Family` here, found from a spec's ``family``: code
elsewhere asks the family instead of testing types or names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from engine.config import from_mapping
from engine.errors import ConfigError
from engine.losses.cascade_losses import AnchorCascadeLosses, CascadeLosses, LossSettings, RCNNCascadeLosses
from engine.model.arch import YOLO_FAMILY, ArchSpec
from engine.model.build import build_dynamic_detector
from engine.model.calibration import Calibration
from engine.model.rcnn.build import build_dy_faster_rcnn
from engine.model.rcnn.spec import FAMILY as RCNN_FAMILY
from engine.model.rcnn.spec import DyRCNNSpec

#: A spec of either family; ``spec.family`` names it.
ModelSpec = ArchSpec | DyRCNNSpec


class Cascade(Protocol):
    """What the rest of the engine may rely on in a dynamic detector of any family."""

    family: str
    onnx_exportable: bool
    class_names: tuple[str, ...]
    input_size: int
    stride: int

    def stage1(self, x: torch.Tensor) -> Any: ...

    def exit1(self, s1: Any) -> Any: ...

    def exit2(self, s1: Any) -> Any: ...

    def postprocess(self, outputs: Any, conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[torch.Tensor]: ...


@dataclass(frozen=True)
class LoadedModel:
    """A cascade with what describes it: what a model file holds, loaded or about to be saved.

    Attributes:
        model: the cascade, of either family.
        spec: the spec it was built from; ``spec.family`` names its family.
        calibration: router thresholds and exit costs measured on a validation set; None until
            calibrated.
    """

    model: Cascade
    spec: ModelSpec
    calibration: Calibration | None = None

    @property
    def family(self) -> Family:
        return spec_family(self.spec)

    def describe(self) -> dict:
        """Architecture facts for ``info``."""
        return self.spec.describe()

    def with_calibration(self, calibration: Calibration | None) -> LoadedModel:
        return dataclasses.replace(self, calibration=calibration)


@dataclass(frozen=True)
class Family:
    """One family: how its spec builds a model, its loss, and the options it has.

    Attributes:
        name: as in model files and specs (``family:``).
        spec_type: its frozen spec class.
        build: spec -> freshly initialised cascade.
        losses: (model, loss settings) -> the detection loss both training phases use.
        scalable: the spec has width and depth multiples (``--width``, ``model.width_multiple``).
        shapes_on_meta: builds on the meta device for shape-only work (parameter and FLOP
            counts); region proposals need real numbers to run.
        torchvision_init: its detectors start from torchvision checkpoints (``model.init_torchvision``).
        reference_checkpoints: checkpoints of the reference DynamicDet implementation convert into it.
    """

    name: str
    spec_type: type
    build: Callable[[Any], Cascade]
    losses: Callable[[Any, LossSettings], CascadeLosses]
    scalable: bool = False
    shapes_on_meta: bool = False
    torchvision_init: bool = False
    reference_checkpoints: bool = False


FAMILIES = {
    YOLO_FAMILY: Family(YOLO_FAMILY, ArchSpec, build_dynamic_detector, AnchorCascadeLosses.for_model,
                        scalable=True, shapes_on_meta=True, reference_checkpoints=True),
    RCNN_FAMILY: Family(RCNN_FAMILY, DyRCNNSpec, build_dy_faster_rcnn, RCNNCascadeLosses.for_model,
                        torchvision_init=True),
}


def family_of(data: Mapping[str, Any]) -> str:
    """The family a spec mapping declares (``family:``); specs without the key are YOLO's."""
    family = data.get("family", YOLO_FAMILY)
    if family not in FAMILIES:
        raise ConfigError(f"family: unknown model family {family!r} (known: {', '.join(FAMILIES)})")
    return family


def spec_family(spec: ModelSpec) -> Family:
    """The family of ``spec``.

    Raises:
        TypeError: ``spec`` is not a model spec.
    """
    family = FAMILIES.get(getattr(spec, "family", None))
    if family is None or not isinstance(spec, family.spec_type):
        raise TypeError(f"not a model spec: {type(spec).__name__}")
    return family


def spec_from_mapping(data: Mapping[str, Any], where: str = "", family: str | None = None) -> ModelSpec:
    """The frozen spec of the family named in ``data`` (or passed as ``family``)."""
    spec_type = FAMILIES[family or family_of(data)].spec_type
    if "family" not in {f.name for f in dataclasses.fields(spec_type)}:  # a class constant, not a key
        data = {k: v for k, v in data.items() if k != "family"}
    return from_mapping(spec_type, data, where=where)


def build_cascade(spec: ModelSpec) -> Cascade:
    """A freshly initialised cascade for ``spec``."""
    return spec_family(spec).build(spec)


def new_model(spec: ModelSpec) -> LoadedModel:
    """A freshly initialised cascade for ``spec``, with its spec and no calibration yet."""
    return LoadedModel(build_cascade(spec), spec)
