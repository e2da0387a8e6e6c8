"""``cameras.yaml``: the typed, frozen configuration of a multi-camera monitor.

Example::

    model: {weights: assets/dy-yolov7-tiny.safetensors, backend: auto}   # optional
    budget: {target_fps: 40, allocation: global}    # or route / threshold / second_fraction
    cameras:
      - name: gate
        source: rtsp://127.0.0.1:8554/cam
        fps: 10                  # process at most 10 of its frames per second
        record: runs/gate.mp4
        events: runs/gate.jsonl
        object_events: runs/gate-objects.jsonl   # one line when a tracked object starts or ends
        zones:
          - {name: door, polygon: [[100, 80], [300, 80], [300, 260], [100, 260]], classes: [star]}
          - {name: lane, line: [[320, 0], [320, 360]]}

Paths are taken relative to the working directory, as on the command line. Unknown keys are
refused with their dotted key named (``cameras[1].fsp: unknown key``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.config import from_mapping, load_yaml
from engine.errors import ConfigError, UserError
from engine.model.loading import ModelOptions
from engine.runtime.routing import RoutingMode
from engine.tracking.tracker import TrackerSettings
from engine.tracking.zones import ZoneSettings

#: Camera names end up in file names, metric labels and log lines: keep them plain.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class BudgetSettings:
    """The one budget all cameras share.

    Attributes:
        target_fps: total processing rate over all cameras, held by the controller.
        route / threshold / second_fraction: the other routing modes, as in ``run``; at most
            one of the four. Without any, half of the frames go to exit 2.
        allocation: ``per-camera`` (every camera gets the same exit-2 share; the default) or
            ``global`` (the frames the router finds hardest across all cameras get exit 2). Global
            pooling only pays where the router's scores are comparable across cameras, which the
            measurements so far do not show in general (see README, Many cameras).
        batch: run up to this many cameras' due frames in one model call, each routed by its
            own camera's threshold. 1 suits CPUs (batching measured slower per image there).
    """

    target_fps: float | None = None
    route: Literal["first", "second"] | None = None
    threshold: float | None = None
    second_fraction: float | None = None
    allocation: Literal["global", "per-camera"] = "per-camera"
    batch: int = 1

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        given = [k for k in ("target_fps", "route", "threshold", "second_fraction") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of target_fps, route, threshold, second_fraction "
                             f"(got {', '.join(given)})")
        try:
            self.mode()  # range checks, with RoutingMode's messages
        except UserError as exc:
            raise ValueError(str(exc)) from None

    def mode(self) -> RoutingMode:
        if self.target_fps is not None:
            return RoutingMode("target_fps", self.target_fps)
        if self.threshold is not None:
            return RoutingMode("threshold", self.threshold)
        if self.route is not None:
            return RoutingMode(self.route)
        return RoutingMode("second_fraction", 0.5 if self.second_fraction is None else self.second_fraction)


@dataclass(frozen=True)
class CameraSettings:
    """One camera.

    Attributes:
        name: unique; used in logs, metrics, events and file names.
        source: anything ``run --source`` accepts.
        fps: process at most this many frames per second from this camera.
        realtime: files only: play at their native rate (the live policy).
        loop: files only: start over at the end, on one timeline.
        record: annotated recording (crash-safe), if any.
        events: one JSON line per processed frame, if any.
        classes: keep only these classes in events, snapshots and recordings.
        snapshot_dir: annotated JPEG when a watched class appears.
        stall_timeout: seconds without a frame before a live source reconnects.
        max_reconnects: give up after this many failed reconnects in a row (None: never).
        track: attach track ids to the detections (on by default).
        tracker: the tracker's settings.
        object_events: one JSON line when a tracked object starts and one when it ends (and
            zone enter/leave and line crossings), if any.
        zones: polygon zones and counting lines (need ``track``).
        track_routing: escalate frames after track births or losses to exit 2, within the budget.
        node: with ``monitor --ray``, run only on a node that has all of these: a Ray custom
            resource name, or a ``key=value`` node label (where its RTSP network or USB device is).
    """

    name: str
    source: str
    fps: float | None = None
    realtime: bool = False
    loop: bool = False
    record: str | None = None
    events: str | None = None
    classes: tuple[str, ...] = ()
    snapshot_dir: str | None = None
    stall_timeout: float = 5.0
    max_reconnects: int | None = None
    track: bool = True
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    object_events: str | None = None
    zones: tuple[ZoneSettings, ...] = ()
    track_routing: bool = False
    node: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"camera name {self.name[:70]!r} must be 1-64 letters, digits, '_', '.' or '-'")
        for key in ("fps", "stall_timeout"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a positive number, got {value}")
        if self.max_reconnects is not None and self.max_reconnects < 0:
            raise ValueError(f"max_reconnects must be >= 0, got {self.max_reconnects}")
        if not self.track and (self.zones or self.object_events or self.track_routing):
            raise ValueError("zones, object_events and track_routing need track: true")
        names = [zone.name for zone in self.zones]
        if len(set(names)) != len(names):
            raise ValueError(f"two zones share a name ({sorted(n for n in names if names.count(n) > 1)[0]!r})")


@dataclass(frozen=True)
class MonitorConfig:
    cameras: tuple[CameraSettings, ...]
    model: ModelOptions = field(default_factory=ModelOptions)
    budget: BudgetSettings = BudgetSettings()

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("no cameras: list at least one under 'cameras'")
        seen: set[str] = set()
        for camera in self.cameras:
            if camera.name in seen:
                raise ValueError(f"duplicate camera name {camera.name!r}")
            seen.add(camera.name)
        outputs = [p for c in self.cameras for p in (c.record, c.events, c.object_events) if p]
        duplicates = sorted({p for p in outputs if outputs.count(p) > 1})
        if duplicates:
            raise ValueError(f"two cameras write to the same file {duplicates[0]!r}")


def load_monitor_config(path: str | Path) -> MonitorConfig:
    """Read and check ``cameras.yaml``; every problem is one :class:`ConfigError` line."""
    data = load_yaml(path)
    if "cameras" not in data:
        raise ConfigError(f"{path}: no cameras: list at least one under 'cameras'")
    try:
        return from_mapping(MonitorConfig, data, where="")
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{MonitorConfig.__name__}: ")
        raise ConfigError(f"{path}: {message}") from None
