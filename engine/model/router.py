"""The router: scores how easy an image is from backbone 1's multi-scale features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Router(nn.Module):
    """Global-average-pool each input feature, concatenate, 1x1 conv, ReLU, 1x1 conv, sigmoid.

    The output is an *easiness* score ``s`` in [0, 1]: at inference an image leaves through
    the first detector when ``s >= threshold`` and continues to the second otherwise.
    """

    def __init__(self, input_names: Sequence[str], input_channels: Mapping[str, int], reduction: int = 4) -> None:
        super().__init__()
        self.input_names = tuple(input_names)
        total = sum(input_channels[name] for name in self.input_names)
        self.hidden = nn.Conv2d(total, total // reduction, 1)
        self.score = nn.Conv2d(total // reduction, 1, 1)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``features``: backbone-1 outputs by stage name. Returns easiness scores ``[N]``."""
        pooled = torch.cat([features[name].mean(dim=(2, 3), keepdim=True) for name in self.input_names], 1)
        return self.logits_from_pooled(pooled).sigmoid()

    def logits_from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """``pooled``: ``[N, sum C, 1, 1]`` -> logits ``[N]``."""
        return self.score(F.relu(self.hidden(pooled))).flatten()

    @staticmethod
    def reference_renames() -> dict[str, str]:
        return {"hidden.": "layer1.", "score.": "layer2."}
