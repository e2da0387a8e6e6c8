"""Dy-Faster R-CNN: the dynamic cascade on two Faster R-CNNs assembled from torchvision's parts.

Each detector is a ResNet trunk with an FPN, torchvision's region proposal network and RoI
heads. Attribute names follow torchvision's ``FasterRCNN`` (``backbone.body``, ``backbone.fpn``,
``rpn``, ``roi_heads``), so one of its state dicts loads into either detector as it is. The
cascade is the YOLO family's: backbone 1 and the router run on every image, exit 1 finishes
detector 1, exit 2 runs backbone 2 with backbone 1's stages added in by the composite link.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import FeaturePyramidNetwork

from engine.model.composite import CompositeLink
from engine.model.rcnn.resnet import STAGES, FuseHook, ResNetBody
from engine.model.rcnn.spec import FAMILY, STRIDE
from engine.model.router import Router

#: FPN level names, as torchvision's RoI pooling expects them.
LEVELS = ("0", "1", "2", "3")


class FPNBackbone(nn.Module):
    """ResNet trunk and feature pyramid; ``out_channels`` as torchvision's detection heads expect."""

    def __init__(self, body: ResNetBody, fpn: FeaturePyramidNetwork, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.fpn = fpn
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, fuse_hook: FuseHook | None = None
                ) -> tuple[dict[str, torch.Tensor], OrderedDict[str, torch.Tensor]]:
        """Trunk stages by name, and FPN levels ("0" ... "3", "pool")."""
        stages = self.body(x, fuse_hook)
        return stages, self.fpn(OrderedDict(zip(LEVELS, (stages[s] for s in STAGES))))


class RCNNDetector(nn.Module):
    """One Faster R-CNN without its input transform: backbone, RPN and RoI heads."""

    def __init__(self, backbone: FPNBackbone, rpn: RegionProposalNetwork, roi_heads: RoIHeads) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads

    @property
    def num_classes(self) -> int:
        """Object classes (torchvision's background class not counted)."""
        return self.roi_heads.box_predictor.cls_score.out_features - 1

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


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` of ``[N, 3, H, W]`` inputs (constants, not weights)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class DyFasterRCNN(nn.Module):
    """Two cascaded Faster R-CNNs and a router, behind the same staged interface as the YOLO cascade.

    Inputs are batches ``[N, 3, H, W]`` of RGB in [0, 1], H and W multiples of 32 (the
    predictor's letterbox). The model never resizes them, so each exit gives final detections
    in input pixels: per image a ``[K, 6]`` tensor of ``x1, y1, x2, y2, score, class`` with
    classes from 0 (torchvision's background label 0 is dropped by its RoI heads).
    :func:`engine.model.rcnn.build.build_dy_faster_rcnn` makes one from a spec.
    """

    family = FAMILY
    onnx_exportable = False  # torchvision's RPN and RoI heads keep data-dependent Python control flow
    stride = STRIDE

    def __init__(self, first: RCNNDetector, second: RCNNDetector, link: CompositeLink, router: Router,
                 input_transform: nn.Module, class_names: Sequence[str] = (), input_size: int = 640) -> None:
        super().__init__()
        if first.num_classes != second.num_classes:
            raise ValueError(f"the detectors disagree on the class count: {first.num_classes} and "
                             f"{second.num_classes}")
        if class_names and len(class_names) != first.num_classes:
            raise ValueError(f"{len(class_names)} class names for {first.num_classes} classes")
        self.class_names = tuple(class_names) or tuple(f"class{i}" for i in range(first.num_classes))
        self.input_size = input_size
        self.input_transform = input_transform
        self.first = first
        self.second = second
        self.link = link
        self.router = router

    def stage1(self, x: torch.Tensor) -> RCNNStage1:
        """Normalise the batch, run backbone 1 and the router."""
        images = self.input_transform(x)
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
    def router_score(self, x: torch.Tensor) -> torch.Tensor:
        """Easiness scores ``[N]`` in [0, 1]."""
        return self.stage1(x).scores

    def fuse(self) -> DyFasterRCNN:
        """Fold both trunks' batch-norms into their convolutions for inference; returns self."""
        self.eval()
        self.first.backbone.body.fuse()
        self.second.backbone.body.fuse()
        return self


def _as_rows(detections: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """torchvision's detection dicts -> ``[K, 6]`` rows; labels shift down past the background."""
    return [torch.cat([d["boxes"], d["scores"][:, None], (d["labels"] - 1).to(d["boxes"].dtype)[:, None]], 1)
            for d in detections]
