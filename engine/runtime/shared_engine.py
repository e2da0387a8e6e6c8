"""One engine for many cameras: its worker threads are the only threads that touch the model.

Each camera is a *lane*: an input queue fed by its capture (through a fan-out in live mode), a
frame-rate cap, and its own outputs. The engine holds at most one pending frame per lane and
repeatedly processes the *due* lane that is longest overdue:

* live lanes keep only their newest frame (older ones are counted as dropped), so lag never
  builds up; all-frames lanes take their frames in order, with back-pressure on their capture;
* a lane's ``fps`` cap makes it due at most that often, on a fixed grid of slots;
* a lane that is offline, stalled or reconnecting simply has no pending frame and is passed
  over: it never holds up the others;
* a lane whose input ends closes its outputs with that end (the failure travels in it) and
  the engine carries on with the rest; the engine ends when every lane has ended.

Routing comes from an :class:`~engine.runtime.allocation.Allocator` (one budget, allocated
globally or per camera). A lane that tracks hands its results to the tracking stage, so
recordings, events, the GUI and track-aware routing all see the same track ids.

*Workers*: the engine runs one or more threads that share the predictor, each taking the next
due frame, so one frame's Python work (letterbox, NMS, publishing) overlaps another's inference.
On a 2-core CPU two single-threaded inference calls at once ran the predictor 1.3-1.6x faster
than one call on two threads: a 320-pixel network does not keep two cores busy from inside one
call. A lane may have several frames in flight; its results are still published in frame order.
Batching several cameras' frames per call was measured slower per image than batch 1 on the
CPU (``max_batch`` is for GPUs).
"""

from __future__ import annotations

import logging
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import UserError
from engine.runtime.allocation import Allocator
from engine.runtime.controller import ControllerState
from engine.runtime.frames import Frame, Result
from engine.runtime.latency import LatencyHistogram
from engine.runtime.outputs import ResultOutput
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import Decision, RoutingMode
from engine.runtime.tracking_stage import TrackingStage
from engine.runtime.worker import POLL_SECONDS, Worker

if TYPE_CHECKING:  # the predictor brings torch; torch-free importers only need the types
    from engine.model.predictor import Predictor
    from engine.tracking.tracker import LaneTracking

logger = logging.getLogger(__name__)
#: The process's GIL switch interval while an engine runs (see SharedEngine.start).
ENGINE_SWITCH_INTERVAL_S = 5e-4
#: A capped live lane wants frames prepared from this many source intervals before its next slot.
PREPARE_AHEAD_INTERVALS = 1.5
#: Pacing: idle time that may be caught up by running frames back to back (see SharedEngine._take_due).
PACE_BURST_S = 0.25

#: Longest idle wait before looking at the lanes again (seconds). Polling keeps the capture
#: side free of engine-specific queues; 2 ms bounds the added latency at a negligible CPU cost.
IDLE_WAIT = 0.002
#: Frames the recent latency figures cover (about 20 s at 30 fps).
RECENT_FRAMES = 600
#: Latency percentiles in the published stats are refreshed for each of a lane's first this many
#: frames, then at most every STATS_REFRESH_S (and when the lane ends).
STATS_EVERY = 8
STATS_REFRESH_S = 0.25
#: A live lane that delivered nothing for this long no longer counts towards the supply rate.
SUPPLY_STALE_SECONDS = 2.0


@dataclass(frozen=True)
class EngineStats:
    """One camera's processing figures, safe to read from any thread.

    Attributes:
        frames_processed, frames_second_exit: counts so far.
        frames_skipped: newer frames replaced this one's pending frame before it was due (live).
        processing_fps: results per second over the last few dozen frames.
        mean_latency_ms, p50_latency_ms, p95_latency_ms: capture to result, over the whole run.
        recent_latency_ms, recent_p95_latency_ms: the same over the last :data:`RECENT_FRAMES`.
        mean_engine_ms: the engine's own time per frame, recently.
        mode: the routing mode, described.
        controller: the rate controller's last decision (shared by every camera), if it runs.
        last_score, last_threshold: the latest frame's router score and the threshold it met.
        ended: how the camera's stream ended (with its failure), once it has.
    """

    frames_processed: int = 0
    frames_second_exit: int = 0
    frames_skipped: int = 0
    processing_fps: float = 0.0
    mean_latency_ms: float = 0.0
    p50_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    recent_latency_ms: float = 0.0
    recent_p95_latency_ms: float = 0.0
    mean_engine_ms: float = 0.0
    mode: str = ""
    controller: ControllerState | None = None
    last_score: float | None = None
    last_threshold: float | None = None
    ended: StreamEnd | None = None

    @property
    def second_exit_fraction(self) -> float:
        return self.frames_second_exit / self.frames_processed if self.frames_processed else 0.0

    @property
    def error(self) -> str | None:
        """The failure the stream ended with, as one line."""
        if self.ended is None or not self.ended.failed:
            return None
        return str(self.ended.error) if self.ended.error else "stream failed"


@dataclass
class Lane:
    """One camera as the engine sees it.

    Args:
        name: the camera's name (unique).
        input: its frames and a final :class:`StreamEnd`.
        outputs: where its results go.
        live: the input is paced by the source (keep the newest frame only).
        max_fps: process at most this many of its frames per second (None: no cap).
        tracking: the camera's tracker and zones, stepped by the engine thread (None: no tracking).
        track_routing: a frame right after tracks were born or lost asks for exit 2 (within
            the budget, see :meth:`Allocator.decide`); needs ``tracking``.
        max_frames: end the lane (``StreamEnd("limit")``) after processing this many frames, so
            that its recording and its consumer hold exactly that many.
    """

    name: str
    input: queue.Queue
    outputs: Sequence[ResultOutput]
    live: bool
    max_fps: float | None = None
    tracking: LaneTracking | None = None
    track_routing: bool = False
    max_frames: int | None = None
    pending: Frame | None = field(default=None, init=False)
    end: StreamEnd | None = field(default=None, init=False)
    closed: bool = field(default=False, init=False)
    next_due: float = field(default=-float("inf"), init=False)  # when the next frame may start
    last_frame: Frame | None = field(default=None, init=False)
    source_ms: float | None = field(default=None, init=False)
    taken: int = field(default=0, init=False)  # frames handed to workers
    published: int = field(default=0, init=False)  # of those, results published (in order)
    # Results done ahead of an earlier frame's, by sequence, and whether a worker is publishing.
    ready: dict[int, tuple[object, ...]] = field(default_factory=dict, init=False)
    publishing: bool = field(default=False, init=False)

    @property
    def in_flight(self) -> int:
        return self.taken - self.published

    @property
    def at_limit(self) -> bool:
        return self.max_frames is not None and self.taken >= self.max_frames

    @property
    def min_interval(self) -> float:
        return 1.0 / self.max_fps if self.max_fps else 0.0

    def refill(self) -> int:
        """Move what the capture delivered into ``pending``; returns how many frames were skipped."""
        skipped = 0
        while self.end is None and (self.live or self.pending is None):
            try:
                item = self.input.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, StreamEnd):
                self.end = item
            else:
                skipped += self.pending is not None
                self.pending = item
        return skipped

    def wants_prepared(self, now: float) -> bool:
        """Whether a frame captured ``now`` may well be the one this lane runs next, so worth
        preparing for the network on the capture thread.

        A live lane capped below its source's rate replaces most frames before one is due; only
        those that arrive within about a source interval of the next slot (or after it) can be
        taken. Any other lane may take the next frame, so it wants them all. A frame left
        unprepared is letterboxed by the engine, so a wrong guess costs time, never a result.
        """
        if not self.live or not self.max_fps or self.source_ms is None:
            return True
        return now >= self.next_due - PREPARE_AHEAD_INTERVALS * self.source_ms / 1000

    def due_in(self, now: float) -> float | None:
        """Seconds until the pending frame may run (<= 0: now); None without a pending frame."""
        return None if self.pending is None else self.next_due - now

    def schedule_next(self, now: float) -> None:
        """A frame starts ``now``: the next one is due one interval after this one's slot.

        Capped lanes keep to their grid of slots, so a frame that started a little late (other
        cameras were due first) does not push every later slot back: at 16 cameras capped at
        5 fps, timing from each start instead lost 10% of every camera's rate. A lane more than
        half an interval behind (a stalled source) restarts its grid from now.
        """
        interval = self.min_interval
        if self.next_due == -math.inf:
            self.next_due = now + interval
        else:
            self.next_due = max(self.next_due + interval, now + interval / 2)


@dataclass(frozen=True)
class _Taken:
    """A frame a worker took: its lane, its place in the lane's order and its routing."""

    lane: Lane
    frame: Frame
    sequence: int
    decision: Decision


class _LaneCounters:
    """Mutable per-lane figures, updated by whichever worker publishes the lane's results and read
    as :class:`EngineStats` under the engine's lock.

    Readers (a progress bar, a metrics scrape, a panel) ask a few times a second while results
    come hundreds of times a second: the stats are built when read, not per frame.
    """

    def __init__(self, mode: RoutingMode) -> None:
        self.latency = LatencyHistogram()
        self.recent: deque[float] = deque(maxlen=RECENT_FRAMES)
        self.engine_ms: deque[float] = deque(maxlen=120)
        self.done_times: deque[float] = deque(maxlen=60)
        self.processed = 0
        self.second_exit = 0
        self.skipped = 0
        self.mode = mode
        self.controller: ControllerState | None = None
        self.last_score: float | None = None
        self.last_threshold: float | None = None
        self.ended: StreamEnd | None = None
        self.latency_fields: dict[str, float] = {}
        self.refreshed_at = -math.inf  # when ``latency_fields`` were computed

    def refresh_latency(self) -> None:
        """Compute the latency fields of :class:`EngineStats` afresh (by the lane's publisher: the
        new fields replace the old in one assignment, so readers need not wait for it)."""
        self.refreshed_at = time.perf_counter()
        if not self.recent:
            return
        recent = np.fromiter(self.recent, float, len(self.recent))
        self.latency_fields = {
            "p50_latency_ms": self.latency.percentile(50), "p95_latency_ms": self.latency.percentile(95),
            "recent_latency_ms": float(recent.mean()), "recent_p95_latency_ms": float(np.percentile(recent, 95)),
            "mean_engine_ms": float(np.mean(self.engine_ms))}

    def stats(self) -> EngineStats:
        times = self.done_times
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        return EngineStats(
            frames_processed=self.processed, frames_second_exit=self.second_exit, frames_skipped=self.skipped,
            processing_fps=fps, mean_latency_ms=self.latency.mean, mode=self.mode.describe(),
            controller=self.controller, last_score=self.last_score, last_threshold=self.last_threshold,
            ended=self.ended, **self.latency_fields)


class SharedEngine(Worker):
    """Runs the predictor over the frames of every lane, under one allocated exit-2 budget.

    Args:
        predictor: the model and its backend, shared by the workers (it must accept calls from
            ``workers`` threads at once: see :func:`engine.model.loading.load_predictor`).
        lanes: the cameras.
        allocator: routing decisions (owns the rate controller).
        pace: with a target rate that exit 2 alone exceeds, hold the target instead of
            burning CPU.
        max_batch: run up to this many due cameras' frames in one call, each with its own
            camera's threshold (per-sample routing). 1 (the default) on CPUs, where batching
            was measured slower per image; larger batches pay on a GPU.
        workers: threads running the predictor at once (None: the predictor's ``workers``, 1 if
            it has none).
    """

    def __init__(self, predictor: Predictor, lanes: Sequence[Lane], allocator: Allocator,
                 pace: bool = True, max_batch: int = 1, workers: int | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        workers = workers if workers is not None else getattr(predictor, "workers", 1)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        names = [lane.name for lane in lanes]
        if len(set(names)) != len(names):
            raise ValueError(f"lane names must be unique, got {names}")
        self.predictor = predictor
        self.lanes = list(lanes)
        self.allocator = allocator
        self.pace = pace
        self.max_batch = max_batch
        self.workers = workers
        self._lock = threading.Lock()  # published stats and requests from other threads
        # Taking frames, routing them and publishing them in order; always taken before _lock.
        self._schedule = threading.Condition()
        self._pending_mode: RoutingMode | None = None
        self._counters = {lane.name: _LaneCounters(allocator.mode) for lane in lanes}
        self._timing_reset = False
        self._last_done: float | None = None
        self._next_start = 0.0  # pacing: the earliest time the next frame may start
        self._pace_state: ControllerState | None = None
        self._controller: ControllerState | None = None
        self.failure: str | None = None
        self._warm = threading.Event()  # a first frame has run (see _help)
        # Tracked cameras' results take a detour through their own thread (see tracking_stage).
        self._tracking = TrackingStage() if any(lane.tracking is not None for lane in self.lanes) else None
        super().__init__("engine")

    def start(self) -> None:
        # The engine's workers drop the GIL in the runtime's run (and copies) and must win
        # it back from the capture, tracking and recording threads. At Python's default 5 ms switch
        # interval a worker waited behind them for milliseconds per frame (at 0.1 ms the all-frames demo
        # ran 1.11x faster, one worker then). With two workers, 0.1 ms forced a switch whenever two
        # threads wanted Python at once, every switch a context switch: 0.5 ms kept the same frame rate
        # (demo 1.0x at exit 1, 1.07x at exit 2; 4 cameras 1.0x) with the workers' time in the network
        # up from 0.87 to 0.90 of the whole (2-core Xeon, OpenVINO, tracking on).
        if sys.getswitchinterval() > ENGINE_SWITCH_INTERVAL_S:
            sys.setswitchinterval(ENGINE_SWITCH_INTERVAL_S)
        if self._tracking is not None:
            self._tracking.start()
        super().start()

    def lane_stats(self, name: str) -> EngineStats:
        with self._lock:
            return self._counters[name].stats()

    @property
    def controller(self) -> ControllerState | None:
        with self._lock:
            return self._controller

    def set_mode(self, mode: RoutingMode) -> None:
        """Change routing while running (applied before the next frame)."""
        with self._lock:
            self._pending_mode = mode

    def reset_rate(self) -> None:
        """Start the rate measurements afresh (after a pause, which is not slowness)."""
        with self._lock:
            self._timing_reset = True

    def _run(self) -> None:
        helpers = [threading.Thread(target=self._help, name=f"engine-{i}", daemon=True)
                   for i in range(1, self.workers)]
        for helper in helpers:
            helper.start()
        self._work()
        self._warm.set()
        for helper in helpers:
            helper.join()
        end = StreamEnd("stopped") if self.failure is None else StreamEnd("failed", UserError(self.failure))
        for lane in self.lanes:
            if not lane.closed:
                self._close(lane, end)
        if self._tracking is not None and not self._tracking.finish(timeout=5.0):
            logger.warning("tracking did not finish within 5 s; stopping it")
            self._tracking.stop()

    def _help(self) -> None:
        # The other workers start once the first frame has run: runtimes initialise some state on
        # their first call (OpenVINO's Python binding deadlocked when two threads made it at once).
        while not self._warm.wait(POLL_SECONDS):
            if self._stop.is_set():
                return
        self._work()

    def _work(self) -> None:
        """One worker's loop: take the due frames, run them, publish them; until every lane has ended."""
        try:
            while not self._stop.is_set():
                with self._schedule:
                    if all(lane.closed for lane in self.lanes):
                        return
                    taken, ending, wait = self._take_due()
                for lane, end in ending:
                    self._close_outputs(lane, end)
                if taken:
                    self._process(taken)
                    self._warm.set()
                elif wait > 0:
                    self._stop.wait(wait)
        except Exception as exc:  # the lanes must always be ended, even on a bug
            logger.exception("engine failed")
            with self._schedule:
                self.failure = self.failure or f"engine failed ({type(exc).__name__}: {exc})"
                self._schedule.notify_all()
            self._stop.set()  # the other workers stop too; _run ends every lane with the failure

    def _take_due(self) -> tuple[list[_Taken], list[tuple[Lane, StreamEnd]], float]:
        """Under the schedule lock: the due lanes' frames that have waited longest (up to
        ``max_batch``), routed; the lanes that have ended (their outputs to be closed outside the
        lock); and how long to wait when nothing is due."""
        now = time.perf_counter()
        due, ending, wait = [], [], IDLE_WAIT
        for lane in self.lanes:
            if lane.closed:
                continue
            if self._tracking is not None and lane.name in self._tracking.failed:
                if lane.in_flight == 0:  # its outputs have the failure already
                    self._mark_closed(lane, StreamEnd("failed", self._tracking.failed[lane.name]))
                continue
            skipped = lane.refill()
            if skipped:
                self._count_skipped(lane.name, skipped)
            end = StreamEnd("limit") if lane.at_limit else (lane.end if lane.pending is None else None)
            if end is not None:
                if lane.in_flight == 0:
                    self._mark_closed(lane, end)
                    ending.append((lane, end))
                continue
            if lane.pending is None:
                continue
            due_in = lane.due_in(now)
            if due_in <= 0:
                due.append(lane)
            else:
                wait = min(wait, due_in)
        if not due:
            return [], ending, wait
        state = self._pace_state
        if self.pace and state is not None and state.pace and now < self._next_start:
            return [], ending, min(wait, self._next_start - now)
        due.sort(key=lambda lane: lane.next_due)  # the longest overdue first: round robin when uncapped
        due = due[: self.max_batch]
        with self._lock:
            mode, self._pending_mode = self._pending_mode, None
            reset, self._timing_reset = self._timing_reset, False
        if mode is not None:
            self.allocator.set_mode(mode)
        if reset:
            self._last_done = None
            with self._lock:
                for counters in self._counters.values():
                    counters.done_times.clear()
        taken = []
        for lane in due:
            frame, lane.pending = lane.pending, None
            lane.schedule_next(now)
            escalate = lane.track_routing and lane.tracking is not None and lane.tracking.churn
            taken.append(_Taken(lane, frame, lane.taken, self.allocator.decide(lane.name, escalate=escalate)))
            lane.taken += 1
        state = taken[-1].decision.controller
        self._pace_state = state
        if state is not None and state.pace:
            # A token bucket, not strict spacing: time the engine sat idle with nothing due (capped
            # cameras between their slots) may be caught up later, up to PACE_BURST_S of it. Strict
            # spacing lost it for good, so 16 cameras at 5 fps under an 80 fps target ran at 4.9 each.
            self._next_start = max(now - PACE_BURST_S, self._next_start) + len(taken) / state.target_fps
        return taken, ending, 0.0

    def _process(self, taken: list[_Taken]) -> None:
        """One predictor call over the taken frames, each routed by its own decision; then their
        results are published, each lane's in frame order."""
        start = time.perf_counter()
        detections = self.predictor.predict([t.frame.image for t in taken],
                                            threshold=[t.decision.threshold for t in taken],
                                            route=[t.decision.route for t in taken],
                                            prepared=[t.frame.network_input for t in taken])
        inference_s = (time.perf_counter() - start) / len(taken)
        for item, det in zip(taken, detections):
            self._publish(item, det, inference_s)

    def _publish(self, item: _Taken, det, inference_s: float) -> None:
        """Publish a result, and every later one of its lane already done, in frame order.

        A result that is done before an earlier frame's waits in the lane's ``ready`` while its
        worker goes on to the next frame; whichever worker publishes the earlier frame publishes
        it too. (A worker waiting for the other's frame sat idle 1-5 % of the time with two.)
        """
        lane = item.lane
        with self._schedule:
            lane.ready[item.sequence] = (item, det, inference_s)
            if lane.publishing:
                return
            lane.publishing = True
        while True:
            with self._schedule:
                entry = lane.ready.pop(lane.published, None)
                if entry is None:
                    lane.publishing = False
                    return
            try:
                if not self._stop.is_set():
                    self._finish(*entry)
            finally:
                with self._schedule:
                    lane.published += 1

    def _finish(self, item: _Taken, det, inference_s: float) -> None:
        """Observe, publish (through the tracking stage for a tracked camera) and count one result."""
        lane, frame, decision = item.lane, item.frame, item.decision
        if frame.network_input is not None:  # what capture prepared for the network is not needed downstream
            frame = replace(frame, network_input=None)
        engine_ms = inference_s * 1000  # this frame's share of the call
        self._learn_source_rate(lane, frame)
        with self._schedule:
            done = time.perf_counter()
            cycle_ms = None if self._last_done is None else (done - self._last_done) * 1000
            self._last_done = done
            det = self._with_ranks(lane.name, det)
            # With several workers, frames overlap: each costs the engine its time over the workers.
            self.allocator.observe(lane.name, det.exit, det.router_score, engine_ms / self.workers, cycle_ms,
                                   self._supply_ms())
        latency_ms = (time.time() - frame.wall_time) * 1000
        result = Result(frame, det, latency_ms, {"engine_ms": engine_ms, "camera": lane.name})
        if lane.tracking is not None:
            self._tracking.submit(lane, result, self._stop)
        else:
            for output in lane.outputs:
                output.offer(result, self._stop)
        self._record(lane.name, det, latency_ms, engine_ms, decision.controller)

    def _with_ranks(self, camera: str, det):
        """The detections with their score and threshold ranked among the camera's recent frames."""
        score_rank = self.allocator.rank(camera, det.router_score)
        if score_rank is None:
            return det
        threshold_rank = None if det.threshold is None else self.allocator.rank(camera, det.threshold)
        return replace(det, score_rank=score_rank, threshold_rank=threshold_rank)

    def _learn_source_rate(self, lane: Lane, frame: Frame) -> None:
        """A live lane's frame interval (ms), from frame indices and capture times."""
        last, lane.last_frame = lane.last_frame, frame
        if not lane.live or last is None or last.source_id != frame.source_id:
            return
        frames, seconds = frame.index - last.index, frame.wall_time - last.wall_time
        if frames > 0 and seconds > 0:
            interval = 1000 * seconds / frames
            lane.source_ms = interval if lane.source_ms is None else lane.source_ms + 0.1 * (interval - lane.source_ms)

    def _supply_ms(self) -> float | None:
        """The interval at which the open lanes together can supply frames (None: unlimited).

        A file read as fast as possible can always supply; live lanes supply at their source
        rate or their cap. The controller never budgets below this interval.
        """
        now, rate = time.time(), 0.0
        for lane in self.lanes:
            if lane.closed:
                continue
            if not lane.live:
                return None
            recent = lane.last_frame is not None and now - lane.last_frame.wall_time <= SUPPLY_STALE_SECONDS
            if lane.source_ms is None or not recent:
                continue
            interval_ms = max(lane.source_ms, 1000 * lane.min_interval)
            rate += 1000 / interval_ms
        return 1000 / rate if rate > 0 else None

    def _close(self, lane: Lane, end: StreamEnd) -> None:
        self._mark_closed(lane, end)
        self._close_outputs(lane, end)

    def _mark_closed(self, lane: Lane, end: StreamEnd) -> None:
        lane.closed = True
        counters = self._counters[lane.name]
        counters.refresh_latency()  # the final figures cover every frame
        with self._lock:
            counters.ended = end

    def _close_outputs(self, lane: Lane, end: StreamEnd) -> None:
        if lane.tracking is not None:
            self._tracking.end(lane, end)  # after the results still being tracked
        else:
            for output in lane.outputs:
                output.close(end)

    def _count_skipped(self, name: str, skipped: int) -> None:
        counters = self._counters[name]
        with self._lock:
            counters.skipped += skipped

    def _record(self, name: str, det, latency_ms: float, engine_ms: float,
                controller: ControllerState | None) -> None:
        counters = self._counters[name]
        with self._lock:
            counters.latency.add(latency_ms)
            counters.recent.append(latency_ms)
            counters.engine_ms.append(engine_ms)
            counters.done_times.append(time.perf_counter())
            counters.processed += 1
            counters.second_exit += det.exit == 2
            counters.mode = self.allocator.mode
            counters.last_score, counters.last_threshold = det.shown_score, det.shown_threshold
            if controller is not None:
                counters.controller = self._controller = controller
        # Percentiles over hundreds of values cost about half of this method's CPU (0.15 ms a frame on
        # a worker in the demo pipeline, caches cold after the network); four times a second is as
        # fresh as any reader (a progress bar, a metrics scrape, a panel at 4 Hz) needs. Outside the
        # lock: only this lane's publisher changes its figures.
        if counters.processed <= STATS_EVERY or counters.done_times[-1] - counters.refreshed_at >= STATS_REFRESH_S:
            counters.refresh_latency()
