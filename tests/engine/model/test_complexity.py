"""GFLOPs per exit of the published architectures equal the reference implementation's."""

from __future__ import annotations

import pytest
import torch

from engine.model.build import build_dynamic_detector
from engine.model.complexity import exit_gflops
from engine.model.variants import arch_by_name


@pytest.mark.parametrize(
    "name, imgsz, exit1, exit2",
    [
        ("dy-yolov7", 640, 104.5, 181.7),
        ("dy-yolov7x", 640, 189.7, 307.6),
        ("dy-yolov7-w6", 1280, 359.7, 601.7),
    ],
)
def test_exit_gflops_match_reference(name, imgsz, exit1, exit2):
    with torch.device("meta"):
        model = build_dynamic_detector(arch_by_name(name))
    flops = exit_gflops(model.eval().fuse(), imgsz)
    assert flops["exit1"] == pytest.approx(exit1, rel=0.01)
    assert flops["exit2"] == pytest.approx(exit2, rel=0.01)
    assert flops["stage1"] < flops["exit1"] < flops["exit2"]
