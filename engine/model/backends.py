"""Inference backends behind one staged interface, so the predictor and runtime never care which runs.

A backend runs three stages on float32 ``[N, 3, H, W]`` batches:
``stage1(x) -> (state, scores)``; ``exit1(state, index)`` and ``exit2(state, index)`` give the
exit outputs for the samples at ``index`` (all when None), and ``postprocess`` turns any run of
them into per-image ``[K, 6]`` detections (the model family's own step: NMS for YOLO's dense
predictions, a score filter for Faster R-CNN's final boxes). Stage 1's state holds whatever the
exits need, so backbone 1 never runs twice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from engine.errors import UserError
from engine.model.families import Cascade

logger = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "torch", "onnxruntime")


class StagedBackend(Protocol):
    name: str

    def stage1(self, x: np.ndarray) -> tuple[Any, np.ndarray]: ...

    def exit1(self, state: Any, index: np.ndarray | None = None) -> torch.Tensor: ...

    def exit2(self, state: Any, index: np.ndarray | None = None) -> torch.Tensor: ...

    def postprocess(self, outputs: Any, conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[torch.Tensor]: ...


class TorchBackend:
    """Eager PyTorch: fused weights and channels-last memory layout by default (faster on CPU)."""

    name = "torch"

    def __init__(self, model: Cascade, fuse: bool = True, channels_last: bool = True,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.postprocess = model.postprocess
        model = model.to(self.device).eval()
        if fuse:
            model.fuse()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    @torch.inference_mode()
    def stage1(self, x: np.ndarray | torch.Tensor) -> tuple[Any, np.ndarray]:
        batch = torch.as_tensor(x).to(self.device).contiguous(memory_format=self.memory_format)
        s1 = self.model.stage1(batch)
        return s1, s1.scores.float().cpu().numpy()

    @torch.inference_mode()
    def exit1(self, state: Any, index: np.ndarray | None = None) -> Any:
        return _to_host(self.model.exit1(_subset(state, index)))

    @torch.inference_mode()
    def exit2(self, state: Any, index: np.ndarray | None = None) -> Any:
        return _to_host(self.model.exit2(_subset(state, index)))


def _to_host(outputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """Float32 on the CPU: one batch tensor, or one tensor per image."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float().cpu()
    return [o.float().cpu() for o in outputs]


def _subset(state: Any, index: np.ndarray | None) -> Any:
    if index is None or len(index) == len(state.scores):
        return state
    return state.select(torch.as_tensor(index, dtype=torch.long, device=state.scores.device))


def check_backend_name(name: str) -> None:
    """Raises :class:`UserError` unless ``name`` is one of :data:`BACKEND_NAMES`."""
    if name not in BACKEND_NAMES:
        raise UserError(f"unknown backend {name!r} (choose one of: {', '.join(BACKEND_NAMES)})")


def make_backend(model: Cascade, name: str = "auto", threads: int | None = None,
                 weights_path: Path | None = None) -> StagedBackend:
    """The staged backend called ``name`` for ``model``.

    Args:
        model: the detector; PyTorch fuses it in place, ONNX Runtime exports a fused copy.
        name: ``torch``, ``onnxruntime``, or ``auto``: ONNX Runtime on CPU, PyTorch when CUDA is
            available or the model does not export to ONNX.
        threads: compute threads (ONNX Runtime: per session; PyTorch: its process-wide pool).
        weights_path: the file the weights came from; ONNX Runtime caches its export beside it.

    Raises:
        UserError: an unknown backend name, a thread count below 1, or ONNX Runtime for a model
            that does not export.
    """
    check_backend_name(name)
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    cuda = torch.cuda.is_available()
    if name == "auto":
        name = "onnxruntime" if model.onnx_exportable and not cuda else "torch"
    if name == "onnxruntime" and not model.onnx_exportable:
        raise UserError(f"the {model.family} family does not export to ONNX Runtime; use --backend torch")
    logger.info("inference backend: %s", name)
    if name == "onnxruntime":
        from engine.model.onnx_backend import OnnxBackend  # loads onnxruntime only when chosen

        return OnnxBackend.from_model(model, weights_path, threads)
    if threads is not None:
        torch.set_num_threads(threads)  # PyTorch has one intra-op pool per process
    return TorchBackend(model, device="cuda" if cuda else "cpu")
