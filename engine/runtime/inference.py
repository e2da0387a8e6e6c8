"""The engine worker: the only thread that touches the model. Frames in, results out."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from engine.runtime.controller import ControllerState
from engine.runtime.frames import Frame, Result
from engine.runtime.latency import LatencyHistogram
from engine.runtime.queues import DropPolicy, StreamEnd, put_blocking, put_end, put_latest
from engine.runtime.routing import RoutingMode, RoutingPolicy
from engine.runtime.worker import Worker

if TYPE_CHECKING:  # the predictor brings torch; torch-free importers (the GUI) only need the types
    from engine.model.predictor import Predictor

logger = logging.getLogger(__name__)

#: Frames the recent latency figures cover (about 20 s at 30 fps).
RECENT_FRAMES = 600


@dataclass(frozen=True)
class EngineStats:
    frames_processed: int = 0
    frames_second_exit: int = 0
    processing_fps: float = 0.0
    mean_latency_ms: float = 0.0  # capture to result, over the whole run
    p95_latency_ms: float = 0.0
    recent_latency_ms: float = 0.0  # over the last RECENT_FRAMES frames
    recent_p95_latency_ms: float = 0.0
    mean_engine_ms: float = 0.0
    mode: str = ""
    controller: ControllerState | None = None
    error: str | None = None

    @property
    def second_exit_fraction(self) -> float:
        return self.frames_second_exit / self.frames_processed if self.frames_processed else 0.0


class InferenceEngine(Worker):
    """Runs the predictor on frames from ``input`` and puts :class:`Result` items on each output.

    Args:
        predictor: the model and its backend; used from this worker's thread only.
        input: frames (and a final :class:`StreamEnd`).
        outputs: ``(queue, policy)`` pairs; LIVE outputs keep only the newest results.
        mode: the initial routing mode; ``set_mode`` changes it while running.
        pace: with a target frame rate, sleep rather than run faster than the target.
        latest: a :class:`~engine.runtime.recorder.LatestResult` to keep up to date, if any.
        tap: a :class:`~engine.runtime.recorder.RecordingTap` that gets every result (all-frames
            recordings: each frame with its own detections), if any.
        source_paced: frames arrive at the source's own rate (live mode): the controller then
            learns that rate from the frames and never budgets below it.
    """

    def __init__(self, predictor: Predictor, input: queue.Queue, outputs: Sequence[tuple[queue.Queue, DropPolicy]],
                 mode: RoutingMode, calibration=None, pace: bool = True, latest=None, tap=None,
                 source_paced: bool = False) -> None:
        self.predictor = predictor
        self.latest = latest  # optional LatestResult holder the live recorder draws from
        self.tap = tap
        self.input = input
        self.outputs = list(outputs)
        self.policy = RoutingPolicy(mode, calibration)
        self.pace = pace
        self._lock = threading.Lock()
        self._pending_mode: RoutingMode | None = None
        self._timing_reset = False  # set by reset_rate, taken by the next frame
        self.source_paced = source_paced
        self._last_done: float | None = None  # perf_counter when the previous result was ready
        self._last_frame: Frame | None = None
        self._source_ms: float | None = None
        self._latencies: deque[float] = deque(maxlen=RECENT_FRAMES)
        self._run_latency = LatencyHistogram()
        self._engine_ms: deque[float] = deque(maxlen=120)
        self._done_times: deque[float] = deque(maxlen=120)
        self._stats = EngineStats(mode=mode.describe())
        super().__init__("engine")

    @property
    def stats(self) -> EngineStats:
        with self._lock:
            return self._stats

    def set_mode(self, mode: RoutingMode) -> None:
        """Change routing while running (applied before the next frame)."""
        with self._lock:
            self._pending_mode = mode

    def reset_rate(self) -> None:
        """Start the processing-rate measurement afresh (after a pause, which is not slowness)."""
        with self._lock:
            self._timing_reset = True

    def _run(self) -> None:
        try:
            end = self._consume(self.input, self._process)
        except Exception as exc:  # the worker must always end its outputs, even on a bug
            logger.exception("engine failed")
            with self._lock:
                self._stats = replace(self._stats, error=f"{type(exc).__name__}: {exc}")
            end = StreamEnd("failed")
        for target, policy in self.outputs:
            put_end(target, end, self._stop, policy)
        if self.tap is not None:
            self.tap.close(end)

    def _process(self, frame: Frame) -> None:
        with self._lock:
            mode, self._pending_mode = self._pending_mode, None
            reset, self._timing_reset = self._timing_reset, False
        if mode is not None:
            self.policy.set_mode(mode)
        start = time.perf_counter()
        decision = self.policy.decide()
        det = self.predictor.predict([frame.image], threshold=decision.threshold, route=decision.route)[0]
        engine_ms = (time.perf_counter() - start) * 1000
        self.policy.observe(det.exit, det.router_score, engine_ms, *self._cycle_and_source(frame, reset))
        latency_ms = (time.time() - frame.wall_time) * 1000
        result = Result(frame, det, latency_ms, {"engine_ms": engine_ms})
        if self.latest is not None:
            self.latest.set(result)
        for target, policy in self.outputs:
            if policy is DropPolicy.LIVE:
                put_latest(target, result)
            else:
                put_blocking(target, result, self._stop)
        if self.tap is not None:
            self.tap.offer(result, self._stop)
        self._record(det.exit, latency_ms, engine_ms, decision.controller, reset)
        if self.pace and decision.controller is not None and decision.controller.pace:
            # Exit 2 alone is faster than the target: hold the target instead of burning CPU.
            remaining = 1.0 / decision.controller.target_fps - (time.perf_counter() - start)
            if remaining > 0:
                self._stop.wait(remaining)

    def _cycle_and_source(self, frame: Frame, reset: bool) -> tuple[float | None, float | None]:
        """Wall time since the previous result (ms; None after a reset), and the live source's
        frame interval (ms)."""
        now = time.perf_counter()
        cycle = None if self._last_done is None or reset else (now - self._last_done) * 1000
        self._last_done = now
        last, self._last_frame = self._last_frame, frame
        if not self.source_paced or last is None or last.source_id != frame.source_id:
            return cycle, self._source_ms if self.source_paced else None
        frames, seconds = frame.index - last.index, frame.wall_time - last.wall_time
        if frames > 0 and seconds > 0:
            interval = 1000 * seconds / frames
            self._source_ms = interval if self._source_ms is None else self._source_ms + 0.1 * (
                interval - self._source_ms)
        return cycle, self._source_ms

    def _record(self, exit_taken: int, latency_ms: float, engine_ms: float, controller, reset: bool) -> None:
        now = time.perf_counter()
        if reset:
            self._done_times.clear()
        self._latencies.append(latency_ms)
        self._run_latency.add(latency_ms)
        self._engine_ms.append(engine_ms)
        self._done_times.append(now)
        times = self._done_times
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        lat = np.fromiter(self._latencies, float)
        with self._lock:
            s = self._stats
            self._stats = EngineStats(
                frames_processed=s.frames_processed + 1,
                frames_second_exit=s.frames_second_exit + (exit_taken == 2),
                processing_fps=fps, mean_latency_ms=self._run_latency.mean,
                p95_latency_ms=self._run_latency.percentile(95), recent_latency_ms=float(lat.mean()),
                recent_p95_latency_ms=float(np.percentile(lat, 95)),
                mean_engine_ms=float(np.mean(self._engine_ms)), mode=self.policy.mode.describe(),
                controller=controller, error=s.error,
            )

