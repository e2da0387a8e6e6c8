"""Inference backends behind one staged interface, so the predictor and runtime never care which runs.

A backend runs three stages on float32 ``[N, 3, H, W]`` batches:
``stage1(x) -> (state, scores)``; ``exit1(state, index)`` and ``exit2(state, index)`` give
decoded predictions ``[n, A, 5 + C]`` for the samples at ``index`` (all when None).
Stage 1's state holds whatever the exits need, so backbone 1 never runs twice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from engine.errors import UserError
from engine.model.detector import DynamicDetector, Stage1Output

logger = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "torch", "onnxruntime")


class StagedBackend(Protocol):
    name: str

    def stage1(self, x: np.ndarray) -> tuple[Any, np.ndarray]: ...

    def exit1(self, state: Any, index: np.ndarray | None = None) -> torch.Tensor: ...

    def exit2(self, state: Any, index: np.ndarray | None = None) -> torch.Tensor: ...


class TorchBackend:
    """Eager PyTorch: fused weights and channels-last memory layout by default (faster on CPU)."""

    name = "torch"

    def __init__(self, model: DynamicDetector, fuse: bool = True, channels_last: bool = True,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        model = model.to(self.device).eval()
        if fuse:
            model.fuse()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    @torch.inference_mode()
    def stage1(self, x: np.ndarray | torch.Tensor) -> tuple[Stage1Output, np.ndarray]:
        batch = torch.as_tensor(x).to(self.device).contiguous(memory_format=self.memory_format)
        s1 = self.model.stage1(batch)
        return s1, s1.scores.float().cpu().numpy()

    @torch.inference_mode()
    def exit1(self, state: Stage1Output, index: np.ndarray | None = None) -> torch.Tensor:
        return self.model.exit1(_subset(state, index)).float().cpu()

    @torch.inference_mode()
    def exit2(self, state: Stage1Output, index: np.ndarray | None = None) -> torch.Tensor:
        return self.model.exit2(_subset(state, index)).float().cpu()


def _subset(state: Stage1Output, index: np.ndarray | None) -> Stage1Output:
    if index is None or len(index) == len(state.scores):
        return state
    return state.select(torch.as_tensor(index, dtype=torch.long, device=state.scores.device))


def check_backend_name(name: str) -> None:
    """Raises :class:`UserError` unless ``name`` is one of :data:`BACKEND_NAMES`."""
    if name not in BACKEND_NAMES:
        raise UserError(f"unknown backend {name!r} (choose one of: {', '.join(BACKEND_NAMES)})")


def make_backend(model: DynamicDetector, name: str = "auto", threads: int | None = None,
                 weights_path: Path | None = None) -> StagedBackend:
    """The staged backend called ``name`` for ``model``.

    Args:
        model: the detector; PyTorch fuses it in place, ONNX Runtime exports a fused copy.
        name: ``torch``, ``onnxruntime``, or ``auto``: ONNX Runtime on CPU, PyTorch when CUDA is
            available.
        threads: compute threads (ONNX Runtime: per session; PyTorch: its process-wide pool).
        weights_path: the file the weights came from; ONNX Runtime caches its export beside it.

    Raises:
        UserError: an unknown backend name or a thread count below 1.
    """
    check_backend_name(name)
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    cuda = torch.cuda.is_available()
    if name == "auto":
        name = "torch" if cuda else "onnxruntime"
    logger.info("inference backend: %s", name)
    if name == "onnxruntime":
        from engine.model.onnx_backend import OnnxBackend  # loads onnxruntime only when chosen

        return OnnxBackend.from_model(model, weights_path, threads)
    if threads is not None:
        torch.set_num_threads(threads)  # PyTorch has one intra-op pool per process
    return TorchBackend(model, device="cuda" if cuda else "cpu")
