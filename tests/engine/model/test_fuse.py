"""Fusing conv+BN, RepConv branches and implicit layers leaves the outputs unchanged."""

from __future__ import annotations

import torch

from engine.bundled import model_config
from engine.model.arch import load_arch
from engine.model.blocks import RepConv
from engine.model.build import build_dynamic_detector
from tests.engine.model.helpers import randomise, tiny_model


def test_fused_tiny_model_matches_unfused():
    model = tiny_model()
    x = torch.rand(2, 3, 64, 96)
    before = [model.predict_exit(x, e) for e in (1, 2)]
    score = model.router_score(x)
    model.fuse()
    after = [model.predict_exit(x, e) for e in (1, 2)]
    torch.testing.assert_close(model.router_score(x), score)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


def test_repconv_with_identity_branch_fuses_exactly():
    block = randomise(RepConv(8, 8)).eval()
    x = torch.randn(2, 8, 9, 11)
    expected = block(x)
    block.fuse()
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)


def test_published_model_with_repconv_fuses(tmp_path):
    arch = load_arch(model_config("dy-yolov7"), width_multiple=0.0625, num_classes=4)
    model = randomise(build_dynamic_detector(arch)).eval()
    x = torch.rand(1, 3, 64, 64)
    before = model.predict_exit(x, 2)
    model.fuse()
    torch.testing.assert_close(model.predict_exit(x, 2), before, rtol=1e-4, atol=1e-3)
