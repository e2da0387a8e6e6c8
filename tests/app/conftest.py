"""App test fixtures: a tiny model file, and the shared test servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.model.build import build_dynamic_detector
from engine.model.checkpoint import save_model
from engine.model.variants import tiny_variant
from tests.support.servers import rtsp_server, silent_server  # noqa: F401


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A tiny random-weight model file (64 px input, 3 classes) for fast end-to-end runs."""
    import torch

    torch.manual_seed(0)
    model = build_dynamic_detector(tiny_variant(num_classes=3, input_size=64))
    return save_model(tmp_path_factory.mktemp("model") / "tiny.safetensors", model)
