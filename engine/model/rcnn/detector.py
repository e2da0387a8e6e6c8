"""Dy-Faster R-CNN: the dynamic cascade on two Faster R-CNNs assembled from torchvision's parts.

Each detector is a ResNet trunk with an FPN, torchvision's region proposal network and RoI
heads. Attribute names follow torchvision's ``FasterRCNN`` (``backbone.body``, ``backbone.fpn``,
``rpn``, ``roi_heads``), so one of its state dicts loads into either detector as it is. The
cascade is the YOLO family's: backbone 1 and the router run on every image, exit 1 finishes
detector 1, exit 2 runs backbone 2 with backbone 1's stages added in by the composite link.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from engine.model.composite import CompositeLink
from engine.model.rcnn.resnet import STAGES, FuseHook, ResNetBody, stage_input_channels
from engine.model.router import Router

#: FPN level names, as torchvision's RoI pooling expects them.
LEVELS = ("0", "1", "2", "3")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class RCNNSpec:
    """One Faster R-CNN detector; defaults are torchvision's ``fasterrcnn_resnet50_fpn``.

    Attributes:
        num_classes: object classes, background not counted.
        depth: ResNet depth of the trunk.
        frozen_stages: trunk parts kept frozen in training (stem, c2, ...).
        fpn_channels: channels of every FPN level.
        anchor_sizes: one anchor size per FPN level (and the extra pooled level), input pixels.
        aspect_ratios: anchor aspect ratios at every level.
        representation: width of the two-layer box head.
        rpn_top_n: proposals kept before and after the RPN's NMS, ``(train_pre, train_post,
            test_pre, test_post)``.
        score_threshold, nms_threshold, max_detections: the RoI heads' post-processing.
    """

    num_classes: int
    depth: int = 50
    frozen_stages: int = 0
    fpn_channels: int = 256
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    representation: int = 1024
    rpn_top_n: tuple[int, int, int, int] = (2000, 2000, 1000, 1000)
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100


@dataclass(frozen=True)
class DyRCNNSpec:
    """The cascade: two detectors, the input transform and the router.

    Attributes:
        first, second: the two detectors (their class counts must agree).
        min_size, max_size: torchvision's resize rule (shorter side to ``min_size`` unless the
            longer one would exceed ``max_size``).
        router_reduction: channel reduction of the router's hidden layer.
    """

    first: RCNNSpec
    second: RCNNSpec
    min_size: int = 800
    max_size: int = 1333
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    router_reduction: int = 4
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.first.num_classes != self.second.num_classes:
            raise ValueError("both detectors must have the same classes")


class FPNBackbone(nn.Module):
    """ResNet trunk and feature pyramid; ``out_channels`` as torchvision's detection heads expect."""

    def __init__(self, spec: RCNNSpec) -> None:
        super().__init__()
        self.body = ResNetBody(spec.depth, spec.frozen_stages)
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

    def __init__(self, spec: RCNNSpec) -> None:
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
            fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
            pre_nms_top_n={"training": train_pre, "testing": test_pre},
            post_nms_top_n={"training": train_post, "testing": test_post}, nms_thresh=0.7,
        )
        pool = MultiScaleRoIAlign(featmap_names=list(LEVELS), output_size=7, sampling_ratio=2)
        self.roi_heads = RoIHeads(
            pool, TwoMLPHead(spec.fpn_channels * 7 * 7, spec.representation),
            FastRCNNPredictor(spec.representation, spec.num_classes + 1),  # + background
            fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=512, positive_fraction=0.25,
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
    """What stage 1 hands to either exit: the transformed batch, backbone-1 stages and levels,
    and the router's easiness scores."""

    images: ImageList
    original_sizes: list[tuple[int, int]]
    stages: dict[str, torch.Tensor]
    levels: OrderedDict[str, torch.Tensor]
    scores: torch.Tensor


class DyFasterRCNN(nn.Module):
    """Two cascaded Faster R-CNNs and a router; the staged interface of the YOLO family's cascade.

    Inputs are lists of RGB images ``[3, H, W]`` in [0, 1] (any sizes), as torchvision takes
    them; outputs are torchvision's detection dicts (``boxes`` xyxy in input pixels, ``scores``,
    ``labels`` from 1, 0 being the background).
    """

    def __init__(self, spec: DyRCNNSpec) -> None:
        super().__init__()
        self.spec = spec
        self.class_names = spec.class_names or tuple(f"class{i}" for i in range(spec.first.num_classes))
        self.transform = GeneralizedRCNNTransform(spec.min_size, spec.max_size, list(spec.mean), list(spec.std))
        self.first = RCNNDetector(spec.first)
        self.second = RCNNDetector(spec.second)
        self.link = CompositeLink(STAGES, self.first.backbone.body.channels, stage_input_channels(spec.second.depth))
        self.router = Router(STAGES, self.first.backbone.body.channels, spec.router_reduction)

    def stage1(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
               ) -> tuple[RCNNStage1, list[dict[str, torch.Tensor]] | None]:
        """Transform the batch, run backbone 1 and the router. Targets are resized alongside."""
        original_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        batch, targets = self.transform(images, targets)
        stages, levels = self.first.backbone(batch.tensors)
        return RCNNStage1(batch, original_sizes, stages, levels, self.router(stages)), targets

    def second_levels(self, s1: RCNNStage1) -> OrderedDict[str, torch.Tensor]:
        """Backbone 2 on the same batch, with backbone 1's stages composed into its stage inputs."""
        return self.second.backbone(s1.images.tensors, self.link.hook(s1.stages))[1]

    def exit1(self, s1: RCNNStage1) -> list[dict[str, torch.Tensor]]:
        return self._finish(s1, self.first.detect(s1.images, s1.levels)[0])

    def exit2(self, s1: RCNNStage1) -> list[dict[str, torch.Tensor]]:
        return self._finish(s1, self.second.detect(s1.images, self.second_levels(s1))[0])

    def forward_training(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
                         ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Both detectors' torchvision loss dicts on the batch, and the router scores."""
        s1, targets = self.stage1(images, targets)
        _, first = self.first.detect(s1.images, s1.levels, targets)
        _, second = self.second.detect(s1.images, self.second_levels(s1), targets)
        return first, second, s1.scores

    def _finish(self, s1: RCNNStage1, detections: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        return self.transform.postprocess(detections, s1.images.image_sizes, s1.original_sizes)
