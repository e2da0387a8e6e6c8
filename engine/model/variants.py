"""Named model variants: small factories over the architecture files (timm-style)."""

from __future__ import annotations

from dataclasses import replace

from engine.bundled import model_config
from engine.model.arch import ArchSpec, load_arch
from engine.model.rcnn.spec import DyRCNNSpec, RCNNSpec


def arch_by_name(name: str, **overrides: object) -> ArchSpec:
    """One of ``configs/models/<name>.yaml`` with top-level keys replaced (width_multiple, ...)."""
    return replace(load_arch(model_config(name)), **overrides)


def tiny_variant(num_classes: int = 3, input_size: int = 64) -> ArchSpec:
    """A deliberately tiny dynamic detector for fast CPU tests (a few thousand parameters)."""
    names = tuple(f"c{i}" for i in range(num_classes))
    return arch_by_name("dy-yolov7-tiny", width_multiple=0.125, num_classes=num_classes, class_names=names,
                        input_size=input_size)


def tiny_rcnn_variant(num_classes: int = 3, input_size: int = 64) -> DyRCNNSpec:
    """A deliberately tiny Dy-Faster R-CNN for fast CPU tests (narrow ResNet-18 trunks, few regions)."""
    detector = RCNNSpec(depth=18, width=8, norm="batch", fpn_channels=16, representation=32,
                        anchor_sizes=(8, 16, 32, 64, 128), rpn_top_n=(100, 50, 100, 50), rpn_batch=32, roi_batch=32)
    names = tuple(f"c{i}" for i in range(num_classes))
    return DyRCNNSpec(name="dy-faster-rcnn-tiny", num_classes=num_classes, class_names=names, input_size=input_size,
                      first=detector, second=detector)
