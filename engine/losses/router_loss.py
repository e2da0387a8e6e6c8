"""Router loss of DynamicDet: learn which images are worth the second detector.

For an image with router easiness score ``s`` (1 = easy, exit after detector 1) and detached
detection losses ``L1`` (detector 1) and ``L2`` (detector 2), the loss is

    s * (L1 - D/2) + (1 - s) * (L2 + D/2)

where ``D`` is the running median of ``L1 - L2`` over recent training images. Its gradient with
respect to ``s`` is ``(L1 - L2) - D``: gradient descent lowers ``s`` (routes the image to
detector 2) exactly when detector 2 improves this image's loss by more than it typically does,
and raises ``s`` (early exit) otherwise. Without ``D`` every image would drift to detector 2,
which is almost always a little better; the median makes the comparison relative, so about half
the training images push each way and no extra weight is needed to balance the two routes.
The loss values themselves only move ``s``: both losses are detached, so the detectors get no
gradient from here.

The median is taken over a bounded window of the most recent differences (the detectors are
frozen in this stage, so old values stay valid; the window bounds memory and per-step cost). The
window is state: :meth:`RouterLoss.state_dict` / :meth:`RouterLoss.load_state_dict` carry it
across a resumed run.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from typing import Any

import torch

logger = logging.getLogger(__name__)


class RouterLoss:
    """Router loss with a running median of the per-image loss difference ``L1 - L2``."""

    def __init__(self, window: int = 2000) -> None:
        """Args:
            window: number of most recent ``L1 - L2`` values the median is taken over.
        """
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._history: deque[float] = deque(maxlen=window)

    @property
    def median(self) -> float:
        """Current ``D``: median of the recorded differences (0 before any update)."""
        if not self._history:
            return 0.0
        return float(statistics.median(self._history))

    def __call__(self, scores: torch.Tensor, loss_first: torch.Tensor, loss_second: torch.Tensor) -> torch.Tensor:
        """Record this batch's differences, update ``D`` and return the mean router loss.

        Args:
            scores: ``[N]`` (or ``[N, 1]``) router easiness scores in [0, 1], with gradient.
            loss_first: ``[N]`` per-image losses of detector 1 (detached here in any case).
            loss_second: ``[N]`` per-image losses of detector 2 (detached here in any case).

        Returns:
            Scalar loss; its gradient reaches ``scores`` only. Images whose losses are not
            finite are left out (with a warning) so that one bad sample does not stop training.
        """
        scores = scores.reshape(-1)
        loss_first = loss_first.detach().reshape(-1).to(scores.device, scores.dtype)
        loss_second = loss_second.detach().reshape(-1).to(scores.device, scores.dtype)
        if not scores.shape == loss_first.shape == loss_second.shape:
            raise ValueError(f"scores {tuple(scores.shape)}, loss_first {tuple(loss_first.shape)} and "
                             f"loss_second {tuple(loss_second.shape)} must have one value per image")
        difference = loss_first - loss_second
        finite = torch.isfinite(difference)
        if not bool(finite.all()):
            logger.warning("router loss: %d of %d images have non-finite detection losses; they are skipped",
                           int((~finite).sum()), len(finite))
        self._history.extend(difference[finite].tolist())
        offset = self.median / 2
        # Zeroing (not just masking) the bad values: a NaN factor would turn even a zero
        # upstream gradient into NaN for its score.
        loss_first = torch.where(finite, loss_first, torch.zeros_like(loss_first))
        loss_second = torch.where(finite, loss_second, torch.zeros_like(loss_second))
        per_image = scores * (loss_first - offset) + (1 - scores) * (loss_second + offset)  # [N]
        weights = finite.to(per_image.dtype)
        # With no finite image this is 0 and still part of the graph, so backward() runs.
        return (per_image * weights).sum() / weights.sum().clamp(min=1)

    def state_dict(self) -> dict[str, Any]:
        """The window size and recorded differences (oldest first)."""
        return {"window": self.window, "history": torch.tensor(list(self._history), dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a history longer than this loss's window keeps its newest values."""
        if set(state) != {"window", "history"}:
            raise ValueError(f"router loss state must have keys 'window' and 'history', got {sorted(state)}")
        history = torch.as_tensor(state["history"], dtype=torch.float64).reshape(-1)
        self._history = deque(history.tolist(), maxlen=self.window)
