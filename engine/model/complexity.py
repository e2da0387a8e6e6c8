"""Parameter counts and FLOPs of each exit path, counted with ``torch.utils.flop_counter``."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.model.families import Cascade


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def exit_gflops(model: Cascade, height: int, width: int | None = None) -> dict[str, float]:
    """GFLOPs (2 x multiply-adds) of the whole path of each exit at batch 1.

    ``exit1`` is backbone 1 + router + head 1; ``exit2`` is backbone 1 + router + composite
    link + backbone 2 + head 2. Count on a fused model for the figures that inference costs.
    """
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, height, width or height, device=device)
    counts = {}
    for name, run in (("stage1", lambda: model.stage1(x)),
                      ("exit1", lambda: model.exit1(model.stage1(x))),
                      ("exit2", lambda: model.exit2(model.stage1(x)))):
        counter = FlopCounterMode(display=False)
        with counter:
            run()
        counts[name] = counter.get_total_flops() / 1e9
    return counts
