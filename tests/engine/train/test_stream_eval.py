"""Streaming evaluation: which result each source frame shows, and the scores of made-up runs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.train.stream_eval import ClipTruth, FrameEvent, evaluate_stream, latest_results

FPS = 10.0
START = 100.0


def _event(frame: int, latency_ms: float, wall_time: float | None = None,
           detections: np.ndarray | None = None) -> FrameEvent:
    wall = START + frame / FPS if wall_time is None else wall_time
    return FrameEvent(frame=frame, pts=frame / FPS, wall_time=wall, available_at=wall + latency_ms / 1000, exit=1,
                      detections=np.zeros((0, 6)) if detections is None else detections)


def test_each_frame_shows_the_latest_result_available_by_its_time() -> None:
    # Frame 0's result arrives after frame 1 is due; frame 2's before frame 3; frame 5's right on time.
    events = [_event(0, 150.0), _event(2, 50.0), _event(5, 0.0)]
    assert latest_results(events, FPS) == [None, None, 0, 1, 1, 2]


def test_results_never_show_before_their_own_frame() -> None:
    # A file decoded faster than real time: every frame captured at once, results 10 ms later.
    events = [_event(frame, 10.0, wall_time=START) for frame in range(4)]
    assert latest_results(events, FPS) == [None, 1, 2, 3]


def _truth_and_perfect_events(frames: int, latency_ms: float) -> tuple[ClipTruth, list[FrameEvent]]:
    # One square drifting right by 4 px per frame.
    boxes = [np.array([[0, 10 + 4 * i, 20, 50 + 4 * i, 60]], dtype=np.float64) for i in range(frames)]
    truth = ClipTruth(FPS, ("circle",), boxes)
    events = [_event(i, latency_ms, detections=np.array([[*b[0, 1:], 1.0, 0.0]])) for i, b in enumerate(boxes)]
    return truth, events


def test_a_perfect_instant_run_scores_one_on_both() -> None:
    truth, events = _truth_and_perfect_events(6, latency_ms=0.0)
    result = evaluate_stream(events, truth)
    assert result["map"] == pytest.approx(1.0) and result["streaming_map"] == pytest.approx(1.0)
    assert result["frames"] == result["processed"] == 6 and result["mean_result_age_frames"] == 0.0


def test_latency_costs_streaming_accuracy_only() -> None:
    truth, events = _truth_and_perfect_events(6, latency_ms=30.0)
    result = evaluate_stream(events, truth)
    assert result["map"] == pytest.approx(1.0)
    assert 0.0 < result["streaming_map"] < result["map"]
    assert result["mean_latency_ms"] == pytest.approx(30.0) and result["mean_result_age_frames"] == 1.0
