"""Dy-Faster R-CNN: the dynamic cascade on two Faster R-CNNs assembled from torchvision's parts.

Each detector is a ResNet trunk with an FPN, torchvision's region proposal network and RoI
heads. Attribute names follow torchvision's ``FasterRCNN`` (``backbone.body``, ``backbone.fpn``,
``rpn``, ``roi_heads``), so one of its state dicts loads into either detector as it is. The
cascade is the YOLO family's: backbone 1 and the router run on every image, exit 1 finishes
detector 1, exit 2 runs backbone 2 with backbone 1's stages added in by the composite link.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from engine.model.composite import CompositeLink
from engine.model.rcnn.resnet import STAGES, FuseHook, ResNetBody, stage_input_channels
from engine.model.router import Router

FAMILY = "dy-faster-rcnn"
#: FPN level names, as torchvision's RoI pooling expects them.
LEVELS = ("0", "1", "2", "3")
#: Input sides must be multiples of the trunk's deepest stride.
STRIDE = 32
#: A sampling budget no image reaches: the sampler then keeps every labelled region.
EVERY_REGION = 10**9
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


class FPNBackbone(nn.Module):
    """ResNet trunk and feature pyramid; ``out_channels`` as torchvision's detection heads expect."""

    def __init__(self, spec: RCNNSpec) -> None:
        super().__init__()
        self.body = ResNetBody(spec.depth, spec.frozen_stages, spec.norm, spec.width)
        self.fpn = FeaturePyramidNetwork([self.body.channels[s] for s in STAGES], spec.fpn_channels,
                                         extra_blocks=LastLevelMaxPool())
        self.out_channels = spec.fpn_channels

    def forward(self, x: torch.Tensor, fuse_hook: FuseHook | None = None
                ) -> tuple[dict[str, torch.Tensor], OrderedDict[str, torch.Tensor]]:
        """Trunk stages by name, and FPN levels ("0" ... "3", "pool")."""
        stages = self.body(x, fuse_hook)
        return stages, self.fpn(OrderedDict(zip(LEVELS, (stages[s] for s in STAGES))))


class RCNNDetector(nn.Module):
    """One Faster R-CNN without its input transform: backbone, RPN and RoI heads."""

    def __init__(self, spec: RCNNSpec, num_classes: int) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = FPNBackbone(spec)
        levels = len(LEVELS) + 1  # the FPN's extra pooled level carries anchors too
        if len(spec.anchor_sizes) != levels:
            raise ValueError(f"anchor_sizes needs one size per FPN level ({levels}), got {len(spec.anchor_sizes)}")
        anchors = AnchorGenerator(tuple((size,) for size in spec.anchor_sizes), (spec.aspect_ratios,) * levels)
        train_pre, train_post, test_pre, test_post = spec.rpn_top_n
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(spec.fpn_channels, anchors.num_anchors_per_location()[0]),
            fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=spec.rpn_batch, positive_fraction=0.5,
            pre_nms_top_n={"training": train_pre, "testing": test_pre},
            post_nms_top_n={"training": train_post, "testing": test_post}, nms_thresh=0.7,
        )
        pool = MultiScaleRoIAlign(featmap_names=list(LEVELS), output_size=7, sampling_ratio=2)
        self.roi_heads = RoIHeads(
            pool, TwoMLPHead(spec.fpn_channels * 7 * 7, spec.representation),
            FastRCNNPredictor(spec.representation, num_classes + 1),  # + background
            fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=spec.roi_batch, positive_fraction=0.25,
            bbox_reg_weights=None, score_thresh=spec.score_threshold, nms_thresh=spec.nms_threshold,
            detections_per_img=spec.max_detections,
        )

    def detect(self, images: ImageList, levels: OrderedDict[str, torch.Tensor],
               targets: list[dict[str, torch.Tensor]] | None = None
               ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        """Proposals and boxes for transformed ``images``; losses too when ``targets`` are given."""
        proposals, rpn_losses = self.rpn(images, levels, targets)
        detections, head_losses = self.roi_heads(levels, proposals, images.image_sizes, targets)
        return detections, {**rpn_losses, **head_losses}


@dataclass
class RCNNStage1:
    """What stage 1 hands to either exit: the normalised batch, backbone-1 stages and FPN levels,
    and the router's easiness scores."""

    images: torch.Tensor
    stages: dict[str, torch.Tensor]
    levels: OrderedDict[str, torch.Tensor]
    scores: torch.Tensor

    def select(self, index: torch.Tensor) -> RCNNStage1:
        """The samples at ``index`` (a 1-D index tensor) only."""
        return RCNNStage1(self.images[index], {k: v[index] for k, v in self.stages.items()},
                          OrderedDict((k, v[index]) for k, v in self.levels.items()), self.scores[index])

    def image_list(self) -> ImageList:
        """The batch as torchvision's heads take it: every image fills the whole input."""
        height, width = self.images.shape[-2:]
        return ImageList(self.images, [(int(height), int(width))] * len(self.images))


class DyFasterRCNN(nn.Module):
    """Two cascaded Faster R-CNNs and a router, behind the same staged interface as the YOLO cascade.

    Inputs are batches ``[N, 3, H, W]`` of RGB in [0, 1], H and W multiples of 32 (the
    predictor's letterbox). The model never resizes them, so each exit gives final detections
    in input pixels: per image a ``[K, 6]`` tensor of ``x1, y1, x2, y2, score, class`` with
    classes from 0 (torchvision's background label 0 is dropped by its RoI heads).
    """

    family = FAMILY
    onnx_exportable = False  # torchvision's RPN and RoI heads keep data-dependent Python control flow

    def __init__(self, spec: DyRCNNSpec) -> None:
        super().__init__()
        self.class_names = spec.names
        self.input_size = spec.input_size
        self.stride = STRIDE
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.first = RCNNDetector(spec.first, spec.num_classes)
        self.second = RCNNDetector(spec.second, spec.num_classes)
        self.link = CompositeLink(STAGES, self.first.backbone.body.channels,
                                  stage_input_channels(spec.second.depth, spec.second.width))
        self.router = Router(STAGES, self.first.backbone.body.channels, spec.router_reduction)

    def stage1(self, x: torch.Tensor) -> RCNNStage1:
        """Normalise the batch, run backbone 1 and the router."""
        images = (x - self.mean) / self.std
        stages, levels = self.first.backbone(images)
        return RCNNStage1(images, stages, levels, self.router(stages))

    def second_levels(self, s1: RCNNStage1) -> OrderedDict[str, torch.Tensor]:
        """Backbone 2 on the same batch, with backbone 1's stages composed into its stage inputs."""
        return self.second.backbone(s1.images, self.link.hook(s1.stages))[1]

    def exit1(self, s1: RCNNStage1) -> list[torch.Tensor]:
        """Final detections of detector 1, per image ``[K, 6]``."""
        return _as_rows(self.first.detect(s1.image_list(), s1.levels)[0])

    def exit2(self, s1: RCNNStage1) -> list[torch.Tensor]:
        """Final detections of detector 2 (link + backbone 2 + its heads), per image ``[K, 6]``."""
        return _as_rows(self.second.detect(s1.image_list(), self.second_levels(s1))[0])

    @staticmethod
    def postprocess(outputs: list[torch.Tensor], conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[torch.Tensor]:
        """Exit outputs -> per-image ``[K, 6]`` detections. The RoI heads already ran NMS per
        class, so only the score threshold and the count limit apply here."""
        return [d[d[:, 4] >= conf_threshold][:max_detections] for d in outputs]

    def forward_training(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]
                         ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Both detectors' torchvision loss dicts on the batch, and the router scores."""
        s1 = self.stage1(images)
        _, first = self.first.detect(s1.image_list(), s1.levels, targets)
        _, second = self.second.detect(s1.image_list(), self.second_levels(s1), targets)
        return first, second, s1.scores

    @torch.no_grad()
    def per_image_losses(self, s1: RCNNStage1, targets: list[dict[str, torch.Tensor]]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's summed detection loss ``[N]`` under each detector, without gradients.

        torchvision's heads average their losses over a batch, so each image runs alone. Their
        training mode is switched on for the duration (it is how they compute losses at all), but
        with every anchor and proposal counted instead of a random sample: the router compares
        the two detectors on each image, and sampled losses are mostly noise for that (measured
        on 160 validation images: two runs of the sampled difference agree at rho 0.33; counted
        in full it is repeatable and follows the images' difficulty better). The trunks keep
        whatever mode they are in.
        """
        heads = [self.first.rpn, self.first.roi_heads, self.second.rpn, self.second.roi_heads]
        modes = [(m.training, m.fg_bg_sampler) for m in heads]
        for module in heads:
            module.train()
            module.fg_bg_sampler = copy.copy(module.fg_bg_sampler)
            module.fg_bg_sampler.batch_size_per_image = EVERY_REGION
        try:
            second_levels = self.second_levels(s1)
            losses = torch.zeros(2, len(s1.scores))
            for i, target in enumerate(targets):
                one = s1.select(torch.tensor([i], device=s1.scores.device))
                for row, (detector, levels) in enumerate(((self.first, one.levels),
                                                          (self.second, _pick(second_levels, i)))):
                    losses[row, i] = sum(detector.detect(one.image_list(), levels, [target])[1].values())
        finally:
            for module, (mode, sampler) in zip(heads, modes):
                module.train(mode)
                module.fg_bg_sampler = sampler
        return losses[0], losses[1]

    @torch.no_grad()
    def router_score(self, x: torch.Tensor) -> torch.Tensor:
        """Easiness scores ``[N]`` in [0, 1]."""
        return self.stage1(x).scores

    def fuse(self) -> DyFasterRCNN:
        """Fold both trunks' batch-norms into their convolutions for inference; returns self."""
        self.eval()
        self.first.backbone.body.fuse()
        self.second.backbone.body.fuse()
        return self


def _pick(levels: OrderedDict[str, torch.Tensor], i: int) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v[i:i + 1]) for k, v in levels.items())


def _as_rows(detections: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """torchvision's detection dicts -> ``[K, 6]`` rows; labels shift down past the background."""
    return [torch.cat([d["boxes"], d["scores"][:, None], (d["labels"] - 1).to(d["boxes"].dtype)[:, None]], 1)
            for d in detections]
