"""Live numbers: processing rate against the target, source rate, latency, recent exit-2 share,
dropped frames, what the source is doing and the recording."""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QGridLayout, QGroupBox, QLabel, QWidget

from app.gui.labels import ElidedLabel
from app.gui.theme import ERROR, GOOD, TEXT, WARNING
from app.gui.video_view import ViewState
from engine.errors import UserError
from engine.runtime.capture import CaptureStats
from engine.runtime.controller import ControllerState
from engine.runtime.shared_engine import EngineStats
from engine.runtime.sources import SourceKind, parse_source

if TYPE_CHECKING:  # engine.runtime.pipeline imports the model code (and torch) at import time
    from engine.runtime.pipeline import PipelineStats

logger = logging.getLogger(__name__)

ROWS = ("Processing", "Source", "Latency", "Exit-2 share", "Dropped", "State", "Recording")
RECENT_SECONDS = 10.0  # the exit-2 share is over this much of the recent stream
_RATE_SECONDS = 5.0  # a source that declares no frame rate is timed over this long
_MIN_RATE_SPAN = 1.0  # seconds of frames before a measured source rate is shown

#: Sources that are played (a file, an image folder) rather than watched live.
PLAYED_KINDS = (SourceKind.FILE, SourceKind.IMAGES)
#: What a source that delivers frames is doing, by its kind.
_PLAYING = {
    SourceKind.FILE: "playing file",
    SourceKind.IMAGES: "playing images",
    SourceKind.CAMERA: "live camera",
    SourceKind.RTSP: "live stream",
    SourceKind.NETWORK: "live stream",
}


def source_kind(source: str) -> SourceKind | None:
    """What ``source`` is (a file, a camera, a stream); None for one that cannot exist."""
    try:
        return parse_source(source).kind
    except UserError:
        return None


def plural(count: int, noun: str) -> str:
    """``1 frame``, ``2 frames``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_capture(capture: CaptureStats, kind: SourceKind | None = None) -> tuple[str, QColor]:
    """The source's state in words (a file playing is not a live stream), and the colour to show it in.

    Kept short: the panel is narrow, and the reason for an outage goes in the tooltip.
    """
    state = capture.state
    if state == "live":
        suffix = f", {plural(capture.reconnects, 'reconnect')}" if capture.reconnects else ""
        return _PLAYING.get(kind, "live") + suffix, GOOD
    if state == "reconnecting":
        wait = f" in {capture.next_retry_in:.0f} s" if capture.next_retry_in is not None else "…"
        return f"reconnecting{wait}", WARNING
    if state == "connecting":
        return "connecting…", WARNING
    if state == "failed":
        return "failed", ERROR
    return {"eof": "ended", "stopped": "stopped"}.get(state, state), TEXT


def offline_state(capture: CaptureStats) -> ViewState | None:
    """What the video view shows instead of "live" while the source delivers no frames."""
    if capture.state == "reconnecting":
        wait = f"Reconnecting in {capture.next_retry_in:.0f} s…" if capture.next_retry_in is not None \
            else "Reconnecting…"
        reason = f"\n{capture.last_error}" if capture.last_error else ""
        return ViewState("Stream offline", wait + reason, "warning")
    if capture.state == "connecting":
        return ViewState("Connecting…", "waiting for the first frame", "info")
    return None


class RecentCounts:
    """Ever-growing counters sampled over time: how much they grew in the last ``seconds``.

    A sample is kept only when a counter moved, so a pause does not thin out a share. Counters that
    go down (a new pipeline counts from zero again) start the history afresh. While the run is
    younger than the window, growth counts from zero: every frame of it is recent.
    """

    def __init__(self, seconds: float = RECENT_SECONDS) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, tuple[int, ...]]] = deque()
        self._from_start = True  # the oldest sample kept is the run's first

    def clear(self) -> None:
        self._samples.clear()
        self._from_start = True

    def add(self, counts: tuple[int, ...], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._samples:
            last = self._samples[-1][1]
            if any(new < old for new, old in zip(counts, last)):
                self.clear()
            elif counts == last:
                return
        self._samples.append((now, tuple(counts)))
        # The oldest sample kept is the last one at or before the window's start.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.seconds:
            self._samples.popleft()
            self._from_start = False

    def grown(self) -> tuple[int, ...]:
        """How much each counter grew over the window (empty before any sample)."""
        if not self._samples:
            return ()
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        young = self._from_start and start > end - self.seconds  # the first sample's frames are recent too
        base = (0,) * len(last) if young else first
        return tuple(new - old for new, old in zip(last, base))

    def share(self, part: int, whole: int) -> float | None:
        """Counter ``part``'s growth over counter ``whole``'s in the window; None while ``whole`` did not grow."""
        grown = self.grown()
        return grown[part] / grown[whole] if grown and grown[whole] > 0 else None

    def rate(self, index: int = 0, min_span: float = _MIN_RATE_SPAN) -> float | None:
        """Counter ``index``'s growth per second between the samples kept; None below ``min_span`` seconds."""
        if len(self._samples) < 2:
            return None
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        if end - start < min_span:
            return None
        return (last[index] - first[index]) / (end - start)


def exit2_share_text(recent: RecentCounts, processed: int, second: int) -> tuple[str, str]:
    """The exit-2 share over the recent stream ("48%", "–" before any frame), and a tooltip with
    the share since the start of the run (``processed`` and ``second`` frames)."""
    share = recent.share(1, 0)
    if share is None:
        return "–", ""
    return f"{share:.0%}", f"{second / processed:.0%} of all {plural(processed, 'frame')} since the start"


class StatusPanel(QGroupBox):
    """A grid of name / value rows, refreshed from pipeline stats a few times a second.

    A value that is not known yet (a rate before two frames, a latency before one) shows as "–",
    never as 0. Values too long for the panel are shortened with "…" (the tooltip has them whole).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Telemetry", parent)
        grid = QGridLayout(self)
        grid.setVerticalSpacing(3)
        self._values: dict[str, ElidedLabel] = {}
        for row, name in enumerate(ROWS):
            label, value = QLabel(name), ElidedLabel("–")
            label.setObjectName("statusName")
            value.setObjectName("statusValue")
            grid.addWidget(label, row, 0)
            grid.addWidget(value, row, 1)
            self._values[name] = value
        grid.setColumnStretch(1, 1)
        self._kind: SourceKind | None = None
        self._shares = RecentCounts()  # (frames processed, frames at exit 2)
        self._reads = RecentCounts(_RATE_SECONDS)  # (frames read,) while the source delivers
        self._measured_fps: float | None = None

    def text(self, row: str) -> str:
        """The value shown in ``row`` (one of :data:`ROWS`), in full."""
        return self._values[row].text()

    def value_label(self, row: str) -> ElidedLabel:
        return self._values[row]

    @property
    def measured_source_fps(self) -> float | None:
        """The source's rate as timed from its frames (for sources that declare none), once measurable."""
        return self._measured_fps

    def set_source(self, kind: SourceKind | None) -> None:
        """A pipeline starts on a source of this kind: its state is worded for it, and rates count afresh."""
        self._kind = kind
        self._shares.clear()
        self._reads.clear()
        self._measured_fps = None

    def reset(self) -> None:
        """Clear every value (a new source or model)."""
        for value in self._values.values():
            self._set(value, "–", TEXT)

    def update_stats(self, stats: PipelineStats, target_fps: float | None, recording: str | None) -> None:
        """Refresh every row; ``target_fps`` is None outside "hold target FPS" mode."""
        engine, capture = stats.engine, stats.capture
        self._set_processing(engine.processing_fps, target_fps, engine.controller)
        self._set_source(capture)
        latency = f"{engine.recent_latency_ms:.0f} ms (p95 {engine.recent_p95_latency_ms:.0f})" \
            if engine.frames_processed else "–"
        self._set(self._values["Latency"], latency, TEXT)
        self._set_share(engine)
        self._set(self._values["Dropped"], plural(stats.frames_dropped, "frame"), TEXT)
        state = self._values["State"]
        self._set(state, *describe_capture(capture, self._kind))
        if capture.state in ("reconnecting", "failed") and capture.last_error:
            state.setToolTip(f"{state.text()}: {capture.last_error}")
        if recording:
            self._set(self._values["Recording"], f"{plural(stats.frames_recorded, 'frame')} → {Path(recording).name}",
                      ERROR)
        else:
            self._set(self._values["Recording"], "off", TEXT)

    def _set_source(self, capture: CaptureStats) -> None:
        if capture.state == "live":
            self._reads.add((capture.frames_read,))
            self._measured_fps = self._reads.rate() or self._measured_fps
        else:
            self._reads.clear()  # a pause or an outage is not the source's rate
        if capture.fps:
            source = f"{capture.fps:.1f} fps"
        elif self._measured_fps:
            source = f"≈{self._measured_fps:.1f} fps"  # measured: the source declares no rate
        else:
            source = "rate unknown"
        if capture.width:
            source += f" · {capture.width}×{capture.height}"
        self._set(self._values["Source"], source, TEXT)

    def _set_share(self, engine: EngineStats) -> None:
        self._shares.add((engine.frames_processed, engine.frames_second_exit))
        share, tooltip = exit2_share_text(self._shares, engine.frames_processed, engine.frames_second_exit)
        value = self._values["Exit-2 share"]
        self._set(value, f"{share} (last {RECENT_SECONDS:.0f} s)" if share != "–" else share, TEXT)
        value.setToolTip(tooltip)

    def _set_processing(self, fps: float, target_fps: float | None, controller: ControllerState | None) -> None:
        value = self._values["Processing"]
        rate = f"{fps:.1f}" if fps > 0 else "–"  # a rate needs two frames
        if target_fps is None:
            self._set(value, f"{rate} fps", TEXT)
            return
        text = f"{rate} / {target_fps:.1f} fps"
        if controller is not None and not controller.reachable:
            self._set(value, f"{text} · too high", WARNING)
            value.setToolTip(f"exit 1 alone takes {controller.exit1_ms:.0f} ms per frame: "
                             f"at most {1000 / controller.exit1_ms:.1f} fps")
        elif fps > 0:
            self._set(value, text, GOOD if fps >= 0.9 * target_fps else WARNING)
        else:
            self._set(value, text, TEXT)

    @staticmethod
    def _set(label: QLabel, text: str, color: QColor) -> None:
        label.setText(text)
        label.setStyleSheet(f"color: {color.name()};")
