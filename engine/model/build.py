"""Architecture description -> modules. The one place that knows which class builds which part."""

from __future__ import annotations

import torch
from torch import nn

from engine.model.arch import ArchSpec
from engine.model.backbone import Backbone
from engine.model.blocks import ACTIVATIONS, SpaceToDepth
from engine.model.composite import CompositeLink
from engine.model.detector import Detector, DynamicDetector
from engine.model.head import DetectHead
from engine.model.neck import PANNeck
from engine.model.router import Router


def build_detector(arch: ArchSpec, cross_stage_inputs: tuple[str, ...] = ()) -> Detector:
    """One detector (backbone, PAN neck, detection head) of the given architecture."""
    act = ACTIVATIONS[arch.activation]
    in_channels = 12 if arch.backbone.input == "space_to_depth" else 3
    backbone = Backbone(arch, act, in_channels, cross_stage_inputs)
    neck = PANNeck(arch, backbone.out_channels, act)
    strides = [arch.strides[level] for level in arch.neck.levels]
    anchors = torch.tensor(arch.anchors, dtype=torch.float32).view(len(arch.anchors), -1, 2)
    head = DetectHead(neck.out_channels, arch.num_classes, anchors, strides)
    head.init_biases(arch.input_size)
    return Detector(backbone, neck, head)


def build_dynamic_detector(arch: ArchSpec) -> DynamicDetector:
    """The full cascade: two detectors, the composite link between them, the router."""
    first = build_detector(arch)
    second = build_detector(arch, arch.cross_stage_inputs)
    link = CompositeLink(arch.link_stages, first.backbone.out_channels, second.backbone.fusion_channels)
    router = Router(arch.router_inputs, first.backbone.out_channels, arch.router_reduction)
    stage_names = [s.name for s in arch.backbone.stages]
    cross = {name: stage_names[stage_names.index(name) - 1] for name in arch.cross_stage_inputs}
    transform: nn.Module = SpaceToDepth() if arch.backbone.input == "space_to_depth" else nn.Identity()
    return DynamicDetector(first, second, link, router, transform, cross, arch.names, arch.input_size)
