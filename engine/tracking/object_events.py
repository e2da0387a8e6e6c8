"""Object events: one JSON line when a tracked object starts, one when it ends, and its zone events.

A monitoring user reads "a star entered the gate zone at 10:32:04, stayed 6 s, here is its best
snapshot" instead of a line per frame. Lines are written as they happen (line-buffered), so a
killed process loses at most the end lines of the objects still open; :meth:`ObjectEventLog.close`
ends the open ones at the end of a run.

Each line is an object with ``event`` (``start``, ``end``; ``enter``/``leave`` for a polygon zone,
``in``/``out`` for a counting line, with ``zone``), ``camera``, ``track_id`` and ``label``; start
and end lines also carry ``start_pts``, ``end_pts``, ``start_wall``, ``end_wall``, ``frames``,
``best_score`` and ``best_box`` (so far, at a start), and ``snapshot`` (end lines, when a snapshot
folder is set: the annotated frame where the object scored best, one JPEG per object).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.detections import Detections
from engine.errors import UserError
from engine.render import draw_detections
from engine.runtime.frames import Result
from engine.runtime.sinks import JsonLines

logger = logging.getLogger(__name__)


@dataclass
class _Track:
    """What is known of one open object (owned by the log's thread)."""

    track_id: int
    start_pts: float
    start_wall: float
    end_pts: float
    end_wall: float
    frames: int = 0
    labels: Counter = field(default_factory=Counter)
    best_score: float = -1.0
    best_box: tuple[float, ...] = ()
    best_result: Result | None = None  # the frame it scored best in (a reference, not a copy)

    @property
    def label(self) -> str:
        return self.labels.most_common(1)[0][0]


class ObjectEventLog:
    """Turns one camera's tracked results into object events.

    Args:
        path: the JSON-lines file.
        camera: the camera's name, written in every line.
        snapshot_dir: where each object's best annotated frame goes (none when None).
        classes: only objects of these classes (all when empty).
    """

    kind = "object_events"  # a result sink (see engine.runtime.sinks.ResultSink)

    def __init__(self, path: str | Path, camera: str, snapshot_dir: str | Path | None = None,
                 classes: Sequence[str] = ()) -> None:
        self.camera = camera
        self.classes = tuple(classes)
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        if self.snapshot_dir is not None:
            try:
                self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create snapshot folder {self.snapshot_dir}: {exc.strerror}") from None
        self._lines = JsonLines(path, "object events file")
        self._open: dict[int, _Track] = {}
        self.started = 0
        self.ended = 0
        self.snapshot_error: str | None = None

    @property
    def path(self) -> Path:
        return self._lines.path

    @property
    def error(self) -> str | None:
        return self._lines.error or self.snapshot_error

    @error.setter
    def error(self, message: str | None) -> None:
        self._lines.error = message

    def offer(self, result: Result) -> None:
        """Take one processed frame: start new objects, update open ones, end those the tracker ended."""
        det = result.detections.filter_classes(self.classes)
        if det.track_ids is None:
            return
        frame = result.frame
        for index in np.flatnonzero(det.track_ids >= 0):
            track_id = int(det.track_ids[index])
            track = self._open.get(track_id)
            if track is None:
                track = self._open[track_id] = _Track(track_id, frame.pts, frame.wall_time, frame.pts, frame.wall_time)
                self._observe(track, det, int(index), result)
                self.started += 1
                self._lines.write(self._record("start", track))
            else:
                self._observe(track, det, int(index), result)
        tracking = result.tracking
        if tracking is None:
            return
        for event in tracking.zone_events:
            if not self.classes or event.label in self.classes:
                self._lines.write({"event": event.event, "camera": self.camera, "zone": event.zone,
                                   "track_id": event.track_id, "label": event.label, "pts": round(frame.pts, 4),
                                   "wall_time": round(frame.wall_time, 4)})
        for track_id in tracking.ended:
            self._end(track_id)

    def close(self) -> None:
        """End every open object (the run is over), then close the file."""
        for track_id in sorted(self._open):
            self._end(track_id)
        self._lines.close()

    @staticmethod
    def _observe(track: _Track, det: Detections, index: int, result: Result) -> None:
        track.end_pts, track.end_wall = result.frame.pts, result.frame.wall_time
        track.frames += 1
        track.labels[det.labels[index]] += 1
        score = float(det.scores[index])
        if score > track.best_score:
            track.best_score = score
            track.best_box = tuple(round(float(v), 2) for v in det.boxes[index])
            track.best_result = result

    def _end(self, track_id: int) -> None:
        track = self._open.pop(track_id, None)
        if track is None:
            return
        record = self._record("end", track)
        if self.snapshot_dir is not None:
            snapshot = self._save_snapshot(track)
            record["snapshot"] = None if snapshot is None else str(snapshot)
        self.ended += 1
        self._lines.write(record)

    def _record(self, event: str, track: _Track) -> dict:
        return {
            "event": event, "camera": self.camera, "track_id": track.track_id, "label": track.label,
            "start_pts": round(track.start_pts, 4), "end_pts": round(track.end_pts, 4),
            "start_wall": round(track.start_wall, 4), "end_wall": round(track.end_wall, 4),
            "frames": track.frames, "best_score": round(track.best_score, 4), "best_box": list(track.best_box),
        }

    def _save_snapshot(self, track: _Track) -> Path | None:
        result = track.best_result
        if result is None or self.snapshot_dir is None:
            return None
        path = self.snapshot_dir / f"{self.camera}-track{track.track_id}-{track.label}.jpg"
        det = result.detections.filter_classes(self.classes)
        image = draw_detections(result.frame.image, det, latency_ms=result.latency_ms)
        try:
            written = cv2.imwrite(str(path), image[:, :, ::-1])
        except cv2.error:
            written = False
        if written:
            return path
        path.unlink(missing_ok=True)  # a partly written JPEG is worse than none
        if self.snapshot_error is None:  # one warning, not one per object
            self.snapshot_error = f"cannot write object snapshots to {self.snapshot_dir}"
            logger.warning("%s; the run goes on, trying again for each object", self.snapshot_error)
        return None
