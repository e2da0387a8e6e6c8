"""Shared fixtures: the reference fixtures beside the checkout (skipped when absent), a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (SHARED / "parity" / "dy-yolov7-step2-w0.25.pt").exists():
        pytest.skip("reference fixtures (../shared/reference) not present")
    return SHARED


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A tiny random-weight model file (64 px input, 3 classes) for fast end-to-end runs."""
    import torch

    from engine.model.checkpoint import save_model
    from engine.model.families import new_model
    from engine.model.variants import tiny_variant

    torch.manual_seed(0)
    model = new_model(tiny_variant(num_classes=3, input_size=64))
    return save_model(tmp_path_factory.mktemp("model") / "tiny.safetensors", model)


@pytest.fixture(scope="session")
def tiny_rcnn_weights(tmp_path_factory) -> Path:
    """A tiny random-weight Dy-Faster R-CNN file (64 px input, 3 classes)."""
    import torch

    from engine.model.checkpoint import save_model
    from engine.model.families import new_model
    from engine.model.variants import tiny_rcnn_variant

    torch.manual_seed(0)
    model = new_model(tiny_rcnn_variant(num_classes=3, input_size=64))
    return save_model(tmp_path_factory.mktemp("model") / "tiny-rcnn.safetensors", model)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests (a Ray cluster, an RTSP outage, a wheel build) share one xdist worker: they run one at a
    time, beside the quick tests of the other worker, never beside each other's load and timing claims."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("slow"))
