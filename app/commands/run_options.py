"""`run`'s options: its command line parsed once into a frozen dataclass, every value checked
before a model loads or a source opens.

What can only be known later is checked then: zones against the source's frame size (once it
is probed) and class names against the model (once it is loaded).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.common import DEFAULT_VIDEO, default_weights, model_options, resolve_config
from engine.errors import UserError
from engine.model.backend_names import check_backend_available
from engine.model.loading import ModelOptions, check_model_options
from engine.runtime.routing import RoutingMode
from engine.runtime.sources import SourceSpec, parse_source

if TYPE_CHECKING:
    from engine.tracking.zones import ZoneSettings


@dataclass(frozen=True)
class RunOptions:
    """Everything ``run`` was asked to do.

    Construction checks the values (ranges, options that need one another); :meth:`from_args`
    also checks the files: the source, the model's files, the installed backend and that every
    output can be written. Each problem is one :class:`UserError` naming the option.

    Attributes:
        source: what ``--source`` names (the demo clip when not given).
        model: the model to load and its thresholds.
        mode: how frames are routed between the exits.
        classes: the classes kept in events, snapshots and recordings (all when empty).
        duration, max_frames: stop after this many seconds or processed frames (None: at the end).
        max_reconnects: give up on a live source after this many failed reconnects (None: never).
        stall_timeout: seconds without a frame before a live source reconnects.
        progress: show a progress bar on stderr.
        zones: the ``--zone`` and ``--line`` settings (they need ``track``).
    """

    source: str
    model: ModelOptions
    mode: RoutingMode
    realtime: bool = False
    loop: bool = False
    record: str | None = None
    events: str | None = None
    object_events: str | None = None
    snapshot_dir: str | None = None
    snapshot_cooldown: float = 10.0
    metrics_port: int | None = None
    classes: tuple[str, ...] = ()
    duration: float | None = None
    max_frames: int | None = None
    max_reconnects: int | None = None
    stall_timeout: float = 5.0
    progress: bool = True
    track: bool = True
    zones: tuple[ZoneSettings, ...] = ()
    track_routing: bool = False

    def __post_init__(self) -> None:
        for option, value in (("--duration", self.duration), ("--max-frames", self.max_frames),
                              ("--stall-timeout", self.stall_timeout), ("--snapshot-cooldown", self.snapshot_cooldown)):
            if value is not None and value <= 0:
                raise UserError(f"{option} must be positive, got {value}")
        if self.max_reconnects is not None and self.max_reconnects < 0:
            raise UserError(f"--max-reconnects must be >= 0, got {self.max_reconnects}")
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise UserError(f"--metrics-port must be a TCP port (1-65535), got {self.metrics_port}")
        model = self.model
        check_model_options(imgsz=model.imgsz, conf=model.conf, iou=model.iou, threads=model.threads,
                            workers=model.workers)
        if not self.track:
            needs = [option for option, value in (("--object-events", self.object_events),
                                                  ("--zone", any(z.polygon for z in self.zones)),
                                                  ("--line", any(z.line for z in self.zones)),
                                                  ("--track-routing", self.track_routing)) if value]
            if needs:
                raise UserError(f"{needs[0]} needs tracking; drop --no-track")
        outputs = [(option, Path(path).resolve()) for option, path in self._outputs() if not option.endswith("dir")]
        for index, (option, path) in enumerate(outputs):
            other = next((o for o, p in outputs[index + 1:] if p == path), None)
            if other is not None:
                raise UserError(f"{option} and {other} both write {path}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """The options of ``run``'s parsed command line, values and files checked.

        Raises:
            UserError: the first problem found, naming its option.
        """
        options = cls(
            source=args.source if args.source is not None else str(DEFAULT_VIDEO),
            model=model_options(args), mode=routing_mode(args), realtime=args.realtime, loop=args.loop,
            record=args.record, events=args.events, object_events=args.object_events, snapshot_dir=args.snapshot_dir,
            snapshot_cooldown=args.snapshot_cooldown, metrics_port=args.metrics_port,
            classes=tuple(c.strip() for c in (args.classes or "").split(",") if c.strip()),
            duration=args.duration, max_frames=args.max_frames, max_reconnects=args.max_reconnects,
            stall_timeout=args.stall_timeout, progress=not args.no_progress, track=args.track,
            zones=parse_zones(args.zone, args.line), track_routing=args.track_routing)
        options.check_files()
        return options

    @property
    def spec(self) -> SourceSpec:
        """The parsed source (cheap: nothing is opened)."""
        return parse_source(self.source)

    @property
    def target_fps(self) -> float | None:
        return self.mode.value if self.mode.kind == "target_fps" else None

    def check_files(self) -> None:
        """The source and the model's files exist, the backend is installed, the outputs can be written.

        Raises:
            UserError: the first problem found, naming its option.
        """
        spec = self.spec  # fails on sources that cannot exist
        if self.loop and spec.is_live:
            raise UserError(f"--loop applies to files and image folders, not {spec.display}")
        model = self.model
        if model.weights is None:
            default_weights()
        elif not Path(model.weights).is_file():
            what = "is not a file" if Path(model.weights).exists() else "not found"
            raise UserError(f"weights file {what}: {model.weights}")
        resolve_config(model.config)
        if model.names is not None and not Path(model.names).is_file():
            raise UserError(f"--names: file not found: {model.names}")
        check_backend_available(model.backend)
        if self.record is not None:
            check_recording_suffix(self.record)
        for option, path in self._outputs():
            check_writable(option, path, folder=option.endswith("dir"))

    def _outputs(self) -> list[tuple[str, str]]:
        named = (("--record", self.record), ("--events", self.events), ("--object-events", self.object_events),
                 ("--snapshot-dir", self.snapshot_dir))
        return [(option, path) for option, path in named if path is not None]


def routing_mode(args: argparse.Namespace) -> RoutingMode:
    """The routing options (argparse keeps them exclusive) as one mode."""
    if args.target_fps is not None:
        return RoutingMode("target_fps", args.target_fps)
    if args.threshold is not None:
        return RoutingMode("threshold", args.threshold)
    if args.second_fraction is not None:
        return RoutingMode("second_fraction", args.second_fraction)
    if args.route:
        return RoutingMode(args.route)
    # Default: the hardest half of this stream's recent frames go to exit 2. A share of the
    # stream's own scores carries over to any footage, where a threshold calibrated elsewhere
    # (or the reference 0.5) can send every frame one way.
    return RoutingMode("second_fraction", 0.5)


def parse_zones(polygons: list[str], lines: list[str]) -> tuple[ZoneSettings, ...]:
    """``--zone`` and ``--line`` as zone settings (their classes are checked once the model is known)."""
    if not polygons and not lines:
        return ()
    from engine.tracking.zones import parse_zone_argument  # the zones' geometry: only when there are zones

    zones = tuple([parse_zone_argument(z, "polygon") for z in polygons] +
                  [parse_zone_argument(z, "line") for z in lines])
    names = [zone.name for zone in zones]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise UserError(f"two zones are named {repeated!r}")
    return zones


def check_recording_suffix(path: str) -> None:
    # The writer's own list: importing it brings PyAV, which a recording needs anyway.
    from engine.runtime.writer import CONTAINER_OPTIONS

    if Path(path).suffix.lower() not in CONTAINER_OPTIONS:
        raise UserError(f"--record {path}: recordings must end in {' or '.join(CONTAINER_OPTIONS)}")


def check_writable(option: str, path: str, folder: bool = False) -> None:
    """``path`` can be written (``folder``: created) without creating anything yet.

    Raises:
        UserError: it is a folder where a file is wanted (or a file where a folder is), or the
            nearest existing folder above it is a file or cannot be written.
    """
    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        raise UserError(f"{option} {path}: is a {'file' if folder else 'folder'}; give a "
                        f"{'folder' if folder else 'file name'}")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise UserError(f"{option} {path}: not writable")
        return
    existing = next(p for p in target.absolute().parents if p.exists())
    if not existing.is_dir():
        raise UserError(f"{option} {path}: cannot write there ({existing} is a file, not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: cannot write there ({existing} is not writable)")
