"""Polygon zones and counting lines of one camera: configuration, checks and per-frame counting.

An object's position is its box's centre (supervision's ``Position.CENTER``): the generated
world and most overhead cameras see whole objects, and the centre does not jump when a box
grows or shrinks between the two exits. Membership and crossings are kept per track id, so a
zone counts objects, not detections; untracked boxes never count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import UserError
from engine.tracking.state import ZoneEvent, ZoneKind, ZoneState

if TYPE_CHECKING:
    from engine.detections import Detections

Point = tuple[float, float]


@dataclass(frozen=True)
class ZoneSettings:
    """One zone of a camera (``zones:`` in cameras.yaml, ``--zone``/``--line`` on ``run``).

    Attributes:
        name: shown in the GUI, the events and the metrics' ``zone`` label.
        polygon: at least 3 vertices ``[x, y]`` in image pixels (a zone with enter/leave events).
        line: exactly 2 points (a counting line with in/out counts); give polygon or line.
        classes: only these classes count (all when empty).
    """

    name: str
    polygon: tuple[Point, ...] = ()
    line: tuple[Point, ...] = ()
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_.-" for c in self.name) or len(self.name) > 64:
            raise ValueError(f"zone name {self.name[:70]!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if bool(self.polygon) == bool(self.line):
            raise ValueError(f"zone {self.name}: give either polygon (3 or more points) or line (2 points)")
        if self.polygon and len(self.polygon) < 3:
            raise ValueError(f"zone {self.name}: a polygon needs at least 3 points, got {len(self.polygon)}")
        if self.line and len(self.line) != 2:
            raise ValueError(f"zone {self.name}: a line needs exactly 2 points, got {len(self.line)}")
        if self.line and self.line[0] == self.line[1]:
            raise ValueError(f"zone {self.name}: a line needs two different points")
        for x, y in self.points:
            if not (math.isfinite(x) and math.isfinite(y)) or x < 0 or y < 0:
                raise ValueError(f"zone {self.name}: point ({x:g}, {y:g}) is outside the frame")

    @property
    def kind(self) -> ZoneKind:
        return "polygon" if self.polygon else "line"

    @property
    def points(self) -> tuple[Point, ...]:
        return self.polygon or self.line

    def check_frame(self, width: int, height: int) -> None:
        """Raise :class:`UserError` when a point lies outside a ``width`` x ``height`` picture."""
        for x, y in self.points:
            if x > width or y > height:
                raise UserError(f"zone {self.name}: point ({x:g}, {y:g}) is outside the {width}x{height} frame")

    def check_classes(self, known: Sequence[str]) -> None:
        unknown = [c for c in self.classes if c not in known]
        if unknown:
            raise UserError(f"zone {self.name}: unknown class {unknown[0]!r} (the model knows: {', '.join(known)})")


def parse_zone_argument(text: str, kind: ZoneKind) -> ZoneSettings:
    """``NAME:x1,y1,x2,y2,...[:class,class]`` (``--zone``, ``--line``) as settings.

    Raises:
        UserError: the text is malformed or the zone is invalid; the message names the option.
    """
    option = "--zone" if kind == "polygon" else "--line"
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise UserError(f"{option} {text!r}: expected NAME:x1,y1,x2,y2,...[:class,class]")
    name, coordinates = parts[0], parts[1]
    try:
        values = [float(v) for v in coordinates.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} {text!r}: coordinates must be numbers, x1,y1,x2,y2,...") from None
    if len(values) % 2:
        raise UserError(f"{option} {text!r}: coordinates come in x,y pairs, got {len(values)} numbers")
    points = tuple(zip(values[::2], values[1::2]))
    classes = tuple(c.strip() for c in parts[2].split(",") if c.strip()) if len(parts) == 3 else ()
    try:
        if kind == "polygon":
            return ZoneSettings(name, polygon=points, classes=classes)
        return ZoneSettings(name, line=points, classes=classes)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None


class ZoneCounter:
    """Counts one camera's tracked objects in its zones and across its lines, frame by frame.

    Geometry comes from supervision (``PolygonZone`` for inside tests, ``LineZone`` for
    crossings); what is kept here is who is where, per track id, to turn that into events.
    Used by the engine thread only.
    """

    def __init__(self, zones: Sequence[ZoneSettings]) -> None:
        import supervision as sv

        self.settings = tuple(zones)
        anchors = (sv.Position.CENTER,)
        self._polygons = {z.name: sv.PolygonZone(np.round(np.asarray(z.polygon)).astype(np.int64),
                                                 triggering_anchors=anchors)
                          for z in self.settings if z.kind == "polygon"}
        self._lines = {z.name: sv.LineZone(sv.Point(*z.line[0]), sv.Point(*z.line[1]), triggering_anchors=anchors)
                       for z in self.settings if z.kind == "line"}
        self._inside: dict[str, dict[int, str]] = {name: {} for name in self._polygons}
        self._checked_size: tuple[int, int] | None = None

    def update(self, det: Detections, frame_size: tuple[int, int],
               ended: Sequence[int] = ()) -> tuple[tuple[ZoneEvent, ...], tuple[ZoneState, ...]]:
        """Events and states after one frame whose ``det`` carry track ids.

        ``ended`` tracks leave every zone they were in (the object is gone, not just unseen).

        Raises:
            UserError: a zone point lies outside the frame (checked on the first frame, and
                again whenever the picture size changes).
        """
        if frame_size != self._checked_size:
            for zone in self.settings:
                zone.check_frame(*frame_size)
            self._checked_size = frame_size
        events: list[ZoneEvent] = []
        states = []
        for zone in self.settings:
            tracked = self._tracked(det, zone.classes)
            if zone.kind == "polygon":
                events += self._update_polygon(zone.name, tracked, ended)
                inside = self._inside[zone.name]
                counts: dict[str, int] = {}
                for label in inside.values():
                    counts[label] = counts.get(label, 0) + 1
                states.append(ZoneState(zone.name, "polygon", zone.points, counts))
            else:
                line = self._lines[zone.name]
                # Called on empty frames too: that is how the line ages the history of absent tracks.
                crossed_in, crossed_out = line.trigger(tracked.sv)
                for tid, label, went_in, went_out in zip(tracked.ids, tracked.labels, crossed_in, crossed_out):
                    if went_in or went_out:
                        events.append(ZoneEvent(zone.name, "in" if went_in else "out", int(tid), label))
                states.append(ZoneState(zone.name, "line", zone.points, crossed_in=line.in_count,
                                        crossed_out=line.out_count))
        return tuple(events), tuple(states)

    def _update_polygon(self, name: str, tracked: _Tracked, ended: Sequence[int]) -> list[ZoneEvent]:
        inside_now = self._polygons[name].trigger(tracked.sv)
        was_inside = self._inside[name]
        events = []
        seen = set()
        for tid, label, inside in zip(tracked.ids, tracked.labels, inside_now):
            tid = int(tid)
            seen.add(tid)
            if inside and tid not in was_inside:
                was_inside[tid] = label
                events.append(ZoneEvent(name, "enter", tid, label))
            elif not inside and tid in was_inside:
                events.append(ZoneEvent(name, "leave", tid, was_inside.pop(tid)))
        for tid in ended:
            if tid in was_inside and tid not in seen:
                events.append(ZoneEvent(name, "leave", tid, was_inside.pop(tid)))
        return events

    @staticmethod
    def _tracked(det: Detections, classes: Sequence[str]) -> _Tracked:
        import supervision as sv

        ids = det.track_ids if det.track_ids is not None else np.full(len(det), -1)
        labels = det.labels
        keep = np.array([tid >= 0 and (not classes or label in classes) for tid, label in zip(ids, labels)], bool)
        keep = keep.reshape(-1)
        boxes = det.boxes[keep] if len(det) else np.zeros((0, 4), np.float32)
        detections = sv.Detections(xyxy=boxes.astype(np.float32).reshape(-1, 4),
                                   confidence=det.scores[keep].astype(np.float32),
                                   class_id=det.class_ids[keep].astype(int), tracker_id=ids[keep].astype(int))
        return _Tracked(detections, ids[keep], [label for label, k in zip(labels, keep) if k])


@dataclass(frozen=True)
class _Tracked:
    """The tracked boxes that count for one zone, as supervision wants them and as we report them."""

    sv: object
    ids: np.ndarray
    labels: list[str]
