"""Typed detection results in original image coordinates (numpy only, no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Detections:
    """What the detector found in one image.

    Attributes:
        boxes: ``[K, 4]`` float32 boxes ``x1, y1, x2, y2`` in original image pixels.
        scores: ``[K]`` float32 confidences (objectness x class probability).
        class_ids: ``[K]`` int64 class indices.
        class_names: names of all classes, indexed by class id.
        exit: 1 when the image left through the first detector, 2 through the second.
        router_score: the router's easiness score in [0, 1] (high means easy).
        threshold: the threshold the routing decision used (``score >= threshold`` exits at 1),
            or ``None`` when the route was forced.
        timings_ms: per-stage wall time, e.g. ``{"preprocess": .., "stage1": .., "exit1": .., "nms": ..}``.
        track_ids: ``[K]`` int64 track ids from the camera's tracker, ``-1`` for a detection no
            track claimed; ``None`` when no tracker runs.
        score_rank: where this frame's router score falls among its camera's recent frames, in
            [0, 1] (0: harder than all of them, 1: easier), when the runtime knows them; this is
            the score people see, since raw router scores crowd near 0 and 1.
        threshold_rank: the threshold on the same scale (under a share-based mode, about the
            exit-2 share), None when the route was forced.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: Sequence[str]
    exit: int
    router_score: float
    threshold: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    track_ids: np.ndarray | None = None
    score_rank: float | None = None
    threshold_rank: float | None = None

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must be [K, 4], got {self.boxes.shape}")
        if not (len(self.boxes) == len(self.scores) == len(self.class_ids)):
            raise ValueError("boxes, scores and class_ids must have the same length")
        if self.exit not in (1, 2):
            raise ValueError(f"exit must be 1 or 2, got {self.exit}")
        if self.track_ids is not None and len(self.track_ids) != len(self.boxes):
            raise ValueError(f"track_ids must have one id per box, got {len(self.track_ids)} for {len(self.boxes)}")

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def shown_score(self) -> float:
        """The router score as displayed and logged: its rank among recent frames when known."""
        return self.router_score if self.score_rank is None else self.score_rank

    @property
    def shown_threshold(self) -> float | None:
        """The threshold on the scale of :attr:`shown_score` (None: the exit was forced)."""
        if self.threshold is None:
            return None
        return self.threshold if self.threshold_rank is None else self.threshold_rank

    @property
    def labels(self) -> list[str]:
        return [self.class_names[int(c)] if 0 <= c < len(self.class_names) else str(int(c)) for c in self.class_ids]

    def captions(self) -> list[str]:
        """Each box's label as drawn on pictures: ``star #12 0.83`` (``star 0.83`` without a track)."""
        ids = self.track_ids if self.track_ids is not None else np.full(len(self), -1)
        return [f"{label} #{int(tid)} {float(score):.2f}" if tid >= 0 else f"{label} {float(score):.2f}"
                for label, tid, score in zip(self.labels, ids, self.scores)]

    def with_track_ids(self, track_ids: np.ndarray) -> Detections:
        """The same detections with their tracker's ids attached."""
        return replace(self, track_ids=np.asarray(track_ids, dtype=np.int64))

    @classmethod
    def empty(cls, class_names: Sequence[str], exit: int = 1, router_score: float = 1.0) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int64),
            class_names=class_names,
            exit=exit,
            router_score=router_score,
        )

    def filter_classes(self, keep: Sequence[str] | None) -> Detections:
        """Only the detections whose label is in ``keep`` (all when ``keep`` is None)."""
        if not keep:
            return self
        mask = np.array([label in set(keep) for label in self.labels], dtype=bool)
        return Detections(
            self.boxes[mask], self.scores[mask], self.class_ids[mask], self.class_names,
            self.exit, self.router_score, self.threshold, dict(self.timings_ms),
            None if self.track_ids is None else self.track_ids[mask], self.score_rank, self.threshold_rank,
        )

    def to_records(self) -> list[dict]:
        """JSON-ready list of ``{"box", "score", "class", "label"}``, plus ``track_id`` (an int, or
        None for an untracked box) when a tracker runs."""
        records = [
            {
                "box": [round(float(v), 2) for v in box],
                "score": round(float(score), 4),
                "class": int(cid),
                "label": label,
            }
            for box, score, cid, label in zip(self.boxes, self.scores, self.class_ids, self.labels)
        ]
        if self.track_ids is not None:
            for record, tid in zip(records, self.track_ids):
                record["track_id"] = int(tid) if tid >= 0 else None
        return records
