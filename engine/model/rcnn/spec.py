"""What a Dy-Faster R-CNN is made of, as frozen specs (``configs/models/dy-faster-rcnn-*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.model.rcnn.resnet import STAGES

FAMILY = "dy-faster-rcnn"
#: Input sides must be multiples of the trunk's deepest stride.
STRIDE = 32
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class RCNNSpec:
    """One Faster R-CNN detector; defaults are torchvision's ``fasterrcnn_resnet50_fpn``.

    Attributes:
        depth: ResNet depth of the trunk.
        width: the trunk's base channel count (torchvision's ResNets: 64).
        norm: ``frozen`` batch-norm (torchvision's, to start from pretrained weights) or ``batch``
            (learned statistics, to train from scratch).
        frozen_stages: trunk parts kept frozen in training (stem, c2, ...).
        fpn_channels: channels of every FPN level.
        anchor_sizes: one anchor size per FPN level (and the extra pooled level), input pixels.
        aspect_ratios: anchor aspect ratios at every level.
        representation: width of the two-layer box head.
        rpn_top_n: proposals kept before and after the RPN's NMS, ``(train_pre, train_post,
            test_pre, test_post)``.
        rpn_batch, roi_batch: anchors and proposals sampled per image for the losses.
        score_threshold, nms_threshold, max_detections: the RoI heads' post-processing.
    """

    depth: int = 50
    width: int = 64
    norm: Literal["frozen", "batch"] = "frozen"
    frozen_stages: int = 0
    fpn_channels: int = 256
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    representation: int = 1024
    rpn_top_n: tuple[int, int, int, int] = (2000, 2000, 1000, 1000)
    rpn_batch: int = 256
    roi_batch: int = 512
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100


@dataclass(frozen=True)
class DyRCNNSpec:
    """The cascade: two detectors, their classes, input size and router (``configs/models``).

    Attributes:
        family: always ``dy-faster-rcnn``; tells a model file or YAML apart from the YOLO family.
        first, second: the two detectors.
        input_size: longer side of the (letterboxed) network input; inputs are never resized
            inside the model, so boxes stay in input pixels.
        mean, std: per-channel normalisation of RGB in [0, 1] (ImageNet's, as torchvision's).
        router_reduction: channel reduction of the router's hidden layer.
    """

    name: str = "dy-faster-rcnn"
    family: str = FAMILY
    num_classes: int = 80
    class_names: tuple[str, ...] = ()
    input_size: int = 640
    first: RCNNSpec = field(default_factory=RCNNSpec)
    second: RCNNSpec = field(default_factory=RCNNSpec)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    router_reduction: int = 4

    def __post_init__(self) -> None:
        if self.family != FAMILY:
            raise ValueError(f"family must be {FAMILY!r}, got {self.family!r}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if self.input_size % STRIDE or self.input_size < STRIDE:
            raise ValueError(f"input_size must be a positive multiple of {STRIDE}, got {self.input_size}")

    @property
    def names(self) -> tuple[str, ...]:
        return self.class_names or tuple(f"class{i}" for i in range(self.num_classes))

    def describe(self) -> dict:
        """Architecture facts for ``info``."""
        return {"name": self.name, "family": self.family, "num_classes": self.num_classes,
                "depths": [self.first.depth, self.second.depth], "widths": [self.first.width, self.second.width],
                "fpn_channels": [self.first.fpn_channels, self.second.fpn_channels],
                "stages": {name: 2 ** (i + 2) for i, name in enumerate(STAGES)},
                "router_inputs": list(STAGES), "link_stages": list(STAGES)}
