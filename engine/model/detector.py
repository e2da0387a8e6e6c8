"""Single detectors and the dynamic cascade that routes each image through one or both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.model.backbone import Backbone, FuseHook
from engine.model.composite import CompositeLink
from engine.model.exits import Route, plan_exits, run_exits
from engine.model.head import DetectHead
from engine.model.neck import PANNeck
from engine.model.postprocess import nms
from engine.model.router import Router


class Detector(nn.Module):
    """Backbone, neck and head with a uniform interface: ``extract`` then ``predict``."""

    def __init__(self, backbone: Backbone, neck: PANNeck, head: DetectHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def extract(self, x: torch.Tensor, fuse_hook: FuseHook | None = None,
                cross_inputs: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        return self.backbone(x, fuse_hook, cross_inputs)

    def predict(self, features: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """Raw head outputs ``[N, A, H_l, W_l, 5 + C]`` per level."""
        return self.head(self.neck(features))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.predict(self.extract(x))


@dataclass
class Stage1Output:
    """What stage 1 (backbone 1 + router) hands to either exit.

    Attributes:
        inputs: the backbones' input (the image, or its space-to-depth fold), ``[N, C, H, W]``.
        features: backbone-1 features by stage name.
        scores: router easiness scores ``[N]``.
    """

    inputs: torch.Tensor
    features: dict[str, torch.Tensor]
    scores: torch.Tensor

    def select(self, index: torch.Tensor) -> Stage1Output:
        """The samples at ``index`` (a 1-D index tensor) only."""
        return Stage1Output(
            self.inputs[index], {k: v[index] for k, v in self.features.items()}, self.scores[index]
        )


@dataclass
class DynamicOutput:
    """Inference result of a batch, in input order.

    Attributes:
        predictions: ``[N, A, 5 + C]`` decoded boxes (cx, cy, w, h in input pixels),
            objectness and class probabilities, before NMS.
        scores: router easiness scores ``[N]``.
        exits: ``[N]`` int64, 1 or 2: the detector each sample left through.
    """

    predictions: torch.Tensor
    scores: torch.Tensor
    exits: torch.Tensor


@dataclass
class TrainingOutput:
    """Both detectors' raw outputs for every sample, and the router scores (with gradients)."""

    raw_first: list[torch.Tensor]
    raw_second: list[torch.Tensor]
    scores: torch.Tensor


class DynamicDetector(nn.Module):
    """Two cascaded detectors and a router (DynamicDet).

    Every image runs backbone 1 and the router. Images whose easiness score is at least the
    threshold leave through detector 1's neck and head; the others continue through the
    composite link, backbone 2 (which re-reads the input) and detector 2's neck and head.
    Backbone 1 is never recomputed, and routing is decided per sample.
    """

    family = "dy-yolov7"
    onnx_exportable = True

    def __init__(
        self,
        first: Detector,
        second: Detector,
        link: CompositeLink,
        router: Router,
        input_transform: nn.Module,
        cross_inputs: Mapping[str, str] | None = None,
        class_names: tuple[str, ...] = (),
        input_size: int = 640,
    ) -> None:
        super().__init__()
        self.class_names = tuple(class_names) or tuple(f"class{i}" for i in range(first.head.num_classes))
        self.input_size = input_size
        self.first = first
        self.second = second
        self.link = link
        self.router = router
        self.input_transform = input_transform
        # Backbone-2 stage -> backbone-1 feature its strided-conv branch reads (see ArchSpec).
        self.cross_inputs = dict(cross_inputs or {})

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this (the largest detection stride)."""
        return int(max(self.first.head.strides))

    @staticmethod
    def postprocess(outputs: torch.Tensor, conf_threshold: float, iou_threshold: float,
                    max_detections: int) -> list[torch.Tensor]:
        """Exit outputs ``[N, A, 5 + C]`` -> per-image ``[K, 6]`` detections (xyxy, score, class): NMS."""
        return nms(outputs, conf_threshold, iou_threshold, max_detections)

    def stage1(self, x: torch.Tensor) -> Stage1Output:
        """``x``: ``[N, 3, H, W]`` RGB in [0, 1], H and W multiples of the largest stride."""
        inputs = self.input_transform(x)
        features = self.first.extract(inputs)
        return Stage1Output(inputs, features, self.router(features))

    def second_features(self, s1: Stage1Output) -> dict[str, torch.Tensor]:
        cross = {stage: s1.features[source] for stage, source in self.cross_inputs.items()}
        return self.second.extract(s1.inputs, self.link.hook(s1.features), cross)

    def exit1(self, s1: Stage1Output) -> torch.Tensor:
        """Decoded predictions ``[N, A, 5 + C]`` of detector 1."""
        return self.first.head.decode(self.first.predict(s1.features))

    def exit2(self, s1: Stage1Output) -> torch.Tensor:
        """Decoded predictions ``[N, A, 5 + C]`` of detector 2 (link + backbone 2 + its head)."""
        return self.second.head.decode(self.second.predict(self.second_features(s1)))

    def forward(self, x: torch.Tensor, threshold: float | Sequence[float] = 0.5,
                route: Route | Sequence[Route] = "auto") -> DynamicOutput:
        """Inference with per-sample routing (see :func:`~engine.model.exits.plan_exits`).

        Args:
            x: ``[N, 3, H, W]`` RGB in [0, 1], H and W multiples of :attr:`stride`.
            threshold: samples scoring at least this leave at exit 1; one value or one per sample.
            route: ``first``/``second`` force that exit; one value or one per sample.
        """
        s1 = self.stage1(x)
        plan = plan_exits(s1.scores.detach().float().cpu().numpy(), threshold, route)
        exits = {1: self.exit1, 2: self.exit2}

        def run(exit_id: int, index: np.ndarray) -> torch.Tensor:
            subset = s1 if len(index) == len(x) else s1.select(torch.as_tensor(index, device=x.device))
            return exits[exit_id](subset)

        predictions = torch.stack(run_exits(plan, run))  # [N, A, 5 + C]
        return DynamicOutput(predictions, s1.scores, torch.as_tensor(plan.exits, device=x.device))

    def forward_training(self, x: torch.Tensor) -> TrainingOutput:
        """Both detectors on every sample (both losses train), plus router scores."""
        s1 = self.stage1(x)
        raw_first = self.first.predict(s1.features)
        raw_second = self.second.predict(self.second_features(s1))
        return TrainingOutput(raw_first, raw_second, s1.scores)

    # The small interface that parity checks and tools call.
    @torch.no_grad()
    def router_score(self, x: torch.Tensor) -> torch.Tensor:
        """Easiness scores ``[N]`` in [0, 1]."""
        return self.stage1(x).scores

    @torch.no_grad()
    def predict_exit(self, x: torch.Tensor, exit: int = 1) -> torch.Tensor:
        """Decoded predictions ``[N, A, 5 + C]`` of one exit for every sample (no routing)."""
        if exit not in (1, 2):
            raise ValueError(f"exit must be 1 or 2, got {exit}")
        s1 = self.stage1(x)
        return self.exit1(s1) if exit == 1 else self.exit2(s1)

    def fuse(self) -> DynamicDetector:
        """Fold batch-norm, RepConv branches and implicit layers for inference; returns self."""
        self.eval()
        # Pre-order: a RepConv folds its conv-BN branches before they would be fused alone.
        for module in list(self.modules()):
            if module is not self and hasattr(module, "fuse"):
                module.fuse()
        return self
