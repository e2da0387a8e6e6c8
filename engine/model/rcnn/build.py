"""Dy-Faster R-CNN spec -> modules: the one place that knows which torchvision part builds which piece."""

from __future__ import annotations

from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from engine.model.composite import CompositeLink
from engine.model.rcnn.detector import LEVELS, DyFasterRCNN, FPNBackbone, Normalize, RCNNDetector
from engine.model.rcnn.resnet import STAGES, ResNetBody, stage_input_channels
from engine.model.rcnn.spec import DyRCNNSpec, RCNNSpec
from engine.model.router import Router


def build_backbone(spec: RCNNSpec) -> FPNBackbone:
    """ResNet trunk and a feature pyramid over its stages, with an extra pooled level."""
    body = ResNetBody(spec.depth, spec.frozen_stages, spec.norm, spec.width)
    fpn = FeaturePyramidNetwork([body.channels[s] for s in STAGES], spec.fpn_channels, extra_blocks=LastLevelMaxPool())
    return FPNBackbone(body, fpn, spec.fpn_channels)


def build_rpn(spec: RCNNSpec) -> RegionProposalNetwork:
    """torchvision's region proposal network with one anchor size per pyramid level."""
    levels = len(LEVELS) + 1  # the FPN's extra pooled level carries anchors too
    if len(spec.anchor_sizes) != levels:
        raise ValueError(f"anchor_sizes needs one size per FPN level ({levels}), got {len(spec.anchor_sizes)}")
    anchors = AnchorGenerator(tuple((size,) for size in spec.anchor_sizes), (spec.aspect_ratios,) * levels)
    train_pre, train_post, test_pre, test_post = spec.rpn_top_n
    return RegionProposalNetwork(
        anchors, RPNHead(spec.fpn_channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=spec.rpn_batch, positive_fraction=0.5,
        pre_nms_top_n={"training": train_pre, "testing": test_pre},
        post_nms_top_n={"training": train_post, "testing": test_post}, nms_thresh=0.7,
    )


def build_roi_heads(spec: RCNNSpec, num_classes: int) -> RoIHeads:
    """torchvision's RoI heads: pooling over the pyramid, a two-layer box head, the box predictor."""
    pool = MultiScaleRoIAlign(featmap_names=list(LEVELS), output_size=7, sampling_ratio=2)
    return RoIHeads(
        pool, TwoMLPHead(spec.fpn_channels * 7 * 7, spec.representation),
        FastRCNNPredictor(spec.representation, num_classes + 1),  # + background
        fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=spec.roi_batch, positive_fraction=0.25,
        bbox_reg_weights=None, score_thresh=spec.score_threshold, nms_thresh=spec.nms_threshold,
        detections_per_img=spec.max_detections,
    )


def build_rcnn_detector(spec: RCNNSpec, num_classes: int) -> RCNNDetector:
    """One Faster R-CNN (backbone, RPN, RoI heads) of the given spec."""
    return RCNNDetector(build_backbone(spec), build_rpn(spec), build_roi_heads(spec, num_classes))


def build_dy_faster_rcnn(spec: DyRCNNSpec) -> DyFasterRCNN:
    """The full cascade: two detectors, the composite link between their trunks, the router."""
    first = build_rcnn_detector(spec.first, spec.num_classes)
    second = build_rcnn_detector(spec.second, spec.num_classes)
    trunk_channels = first.backbone.body.channels
    link = CompositeLink(STAGES, trunk_channels, stage_input_channels(spec.second.depth, spec.second.width))
    router = Router(STAGES, trunk_channels, spec.router_reduction)
    return DyFasterRCNN(first, second, link, router, Normalize(spec.mean, spec.std), spec.names, spec.input_size)
