"""Which exit each sample of a batch leaves through, and each exit run on its own samples.

This is the cascade's one routing decision: :meth:`DynamicDetector.forward` and
:class:`~engine.model.predictor.Predictor` (on every backend) both route through
:func:`plan_exits` and :func:`run_exits`, so the routing that tests exercise is the routing
that runs. Torch-free, so runtime and GUI modules can name :data:`Route`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

#: ``auto`` follows the router (``score >= threshold`` leaves at exit 1); the others force an exit.
Route = Literal["auto", "first", "second"]
ROUTES: tuple[Route, ...] = ("auto", "first", "second")

Row = TypeVar("Row")


@dataclass(frozen=True)
class ExitPlan:
    """The exits of one batch, in input order.

    Attributes:
        exits: ``[N]`` int64, 1 or 2.
        thresholds: ``[N]`` the threshold each sample was held to, NaN where its route was forced.
    """

    exits: np.ndarray
    thresholds: np.ndarray

    def __len__(self) -> int:
        return len(self.exits)

    def groups(self) -> list[tuple[int, np.ndarray]]:
        """``(exit, indices)`` for each exit that has samples, exit 1 first; indices ascend."""
        exits = self.exits.tolist()
        groups = [(exit_id, [i for i, e in enumerate(exits) if e == exit_id]) for exit_id in (1, 2)]
        return [(exit_id, np.array(index, np.int64)) for exit_id, index in groups if index]

    def threshold(self, i: int) -> float | None:
        """The threshold sample ``i`` met or missed; None where its route was forced."""
        value = float(self.thresholds[i])
        return None if np.isnan(value) else value


def plan_exits(scores: np.ndarray, threshold: float | Sequence[float] = 0.5,
               route: Route | Sequence[Route] = "auto") -> ExitPlan:
    """Each sample's exit from its router score, its threshold and its route.

    Args:
        scores: ``[N]`` router easiness scores (on whatever scale the thresholds use).
        threshold: one value, or one per sample (frames of different cameras in one batch each
            keep their own camera's threshold).
        route: one route, or one per sample; ``first``/``second`` force that exit.

    Raises:
        ValueError: a route that is not one of :data:`ROUTES`, or per-sample values whose count
            differs from the batch's.
    """
    # Plain Python over the few samples of a batch: this runs on every frame right after stage 1,
    # where each NumPy call costs 15-25 microseconds with the CPU's caches taken by the network.
    scores = np.asarray(scores, dtype=np.float64).reshape(-1).tolist()
    n = len(scores)
    thresholds = [float(t) for t in _per_sample("threshold", threshold, n)]
    routes = _per_sample("route", route, n)
    unknown = set(routes) - set(ROUTES)
    if unknown:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {sorted(map(str, unknown))}")
    exits = [1 if r == "first" else 2 if r == "second" else 1 if s >= t else 2
             for s, t, r in zip(scores, thresholds, routes)]
    held = [t if r == "auto" else math.nan for t, r in zip(thresholds, routes)]
    return ExitPlan(np.array(exits, np.int64), np.array(held, np.float64))


def run_exits(plan: ExitPlan, run: Callable[[int, np.ndarray], Sequence[Row]]) -> list[Row]:
    """Calls ``run(exit, indices)`` once per exit that has samples and returns its rows (one
    per index, in index order) rearranged into input order."""
    rows: list[Row | None] = [None] * len(plan)
    for exit_id, index in plan.groups():
        out = run(exit_id, index)
        if len(out) != len(index):
            raise ValueError(f"exit {exit_id} returned {len(out)} rows for {len(index)} samples")
        for i, row in zip(index.tolist(), out):
            rows[i] = row
    return rows  # type: ignore[return-value]  # every index belongs to exactly one group


def _per_sample(name: str, values: object, n: int) -> list:
    """One value per sample: ``values`` repeated when it is a single one (a number or a route name)."""
    if isinstance(values, np.ndarray | np.generic):
        if values.ndim == 0:
            return [values.item()] * n
        if values.ndim != 1:
            raise ValueError(f"{name}: expected one value or {n}, got shape {values.shape}")
        values = values.tolist()
    elif isinstance(values, str | int | float):
        return [values] * n
    values = list(values)  # type: ignore[call-overload]
    if len(values) != n:
        raise ValueError(f"{name}: expected one value or {n}, got {len(values)}")
    return values
