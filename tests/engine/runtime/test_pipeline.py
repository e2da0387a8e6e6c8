"""The pipeline object the GUI drives: pause and resume, looping files, and recordings that
start and stop while everything keeps running."""

from __future__ import annotations

import itertools
import queue
import time
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.runtime.pipeline import Pipeline, PipelineConfig
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import RoutingMode
from tests.support.media import make_video, read_times

FPS = 20


@pytest.fixture(scope="module")
def predictor(tiny_weights):
    import torch

    from engine.model.backends import TorchBackend
    from engine.model.checkpoint import load_model
    from engine.model.predictor import Predictor

    torch.set_num_threads(1)
    model = load_model(tiny_weights).model
    return Predictor(TorchBackend(model), model.class_names, model.input_size)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_video(path, frames=30, fps=FPS, size=(96, 64))
    return path


def run_pipeline(predictor, clip: Path, **options) -> Pipeline:
    config = PipelineConfig(source=str(clip), mode=RoutingMode("first"), **options)
    pipeline = Pipeline(config, predictor)
    pipeline.start()
    return pipeline


def results_until_end(pipeline: Pipeline, timeout: float = 30.0) -> tuple[list, StreamEnd | None]:
    results, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = pipeline.results.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(item, StreamEnd):
            return results, item
        results.append(item)
    return results, None


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_pause_holds_a_file_and_resume_continues_where_it_stopped(predictor, clip):
    pipeline = run_pipeline(predictor, clip, realtime=True, live_results=True, loop=True)
    try:
        wait_for(lambda: pipeline.stats.engine.frames_processed >= 3)
        assert pipeline.pause()
        wait_for(lambda: pipeline.stats.capture.state == "paused")
        held = pipeline.stats.capture.frames_read
        time.sleep(0.5)  # ten frame intervals at the clip's rate
        assert pipeline.stats.capture.frames_read <= held + 1 and pipeline.stats.paused
        pipeline.resume()
        wait_for(lambda: pipeline.stats.capture.frames_read >= held + 5)
        assert not pipeline.stats.paused
        assert pipeline.stats.capture.frames_dropped <= 2  # resumed in place, not skipped ahead
    finally:
        assert pipeline.shutdown(5.0)


def test_live_sources_cannot_be_held(predictor, clip, rtsp_server):
    pipeline = Pipeline(PipelineConfig(source=rtsp_server.url, mode=RoutingMode("first")), predictor)
    assert not pipeline.pause() and not pipeline.stats.paused


def test_a_looping_file_plays_on_one_continuous_timeline(predictor, clip, tmp_path):
    recording = tmp_path / "loop.mp4"
    pipeline = run_pipeline(predictor, clip, loop=True, record=str(recording))
    try:
        results = []
        while pipeline.stats.capture.loops < 1:  # all-frames: the consumer sets the pace
            results.append(pipeline.results.get(timeout=30.0))
        pipeline.set_loop(False)
        rest, end = results_until_end(pipeline, timeout=120.0)
        results += rest
    finally:
        assert pipeline.shutdown(5.0)
    assert end is not None and end.reason == "eof"
    passes = pipeline.stats.capture.loops + 1
    assert pipeline.stats.capture.frames_read == 30 * passes
    pts = [r.frame.pts for r in results]
    assert all(b > a for a, b in itertools.pairwise(pts))
    times = read_times(recording)
    assert len(times) == 30 * passes
    assert times[-1] == pytest.approx((30 * passes - 1) / FPS, abs=0.01)


def test_recordings_start_and_stop_while_the_pipeline_runs(predictor, clip, tmp_path):
    first, second = tmp_path / "first.mkv", tmp_path / "second.mp4"
    pipeline = run_pipeline(predictor, clip, realtime=True, loop=True, live_results=True)
    try:
        wait_for(lambda: pipeline.stats.engine.frames_processed >= 2)
        assert pipeline.writer is None and not pipeline.recording
        pipeline.start_recording(str(first))
        with pytest.raises(RuntimeError, match="already"):
            pipeline.start_recording(str(second))
        wait_for(lambda: pipeline.stats.frames_recorded >= 10)
        stats = pipeline.stop_recording()
        assert stats.state == "closed" and not pipeline.recording
        with pytest.raises(UserError):
            pipeline.start_recording(str(tmp_path))  # a folder: refused, nothing changes
        pipeline.start_recording(str(second))
        wait_for(lambda: pipeline.writer.stats.frames_written >= 10)
    finally:
        assert pipeline.shutdown(5.0)
    assert pipeline.writer.stats.state == "closed"
    assert len(read_times(first)) == stats.frames_written >= 10
    times = read_times(second)
    assert len(times) >= 10 and times[0] == 0.0  # each recording starts at its own zero
    assert pipeline.stats.frames_recorded == stats.frames_written + len(times)


def test_all_frames_recording_started_mid_stream_gets_every_later_frame(predictor, clip, tmp_path):
    recording = tmp_path / "late.mp4"
    pipeline = run_pipeline(predictor, clip)
    try:
        first = pipeline.results.get(timeout=30.0)
        pipeline.start_recording(str(recording))
        results, end = results_until_end(pipeline)
    finally:
        assert pipeline.shutdown(5.0)
    assert end is not None and end.reason == "eof" and first.frame.index == 0
    # Frames the engine finished after the recording started are all in it.
    assert 0 < len(read_times(recording)) <= len(results) + 1
    assert pipeline.writer.stats.frames_written == len(read_times(recording))


def test_frames_letterboxed_on_the_capture_thread_detect_as_the_engine_would(predictor, clip):
    from engine.model.predictor import Predictor

    class Ahead(Predictor):
        prepares_ahead = True
        calls = 0

        def prepare(self, image):
            Ahead.calls += 1
            return super().prepare(image)

    class OnEngine(Predictor):
        prepares_ahead = False

    runs = []
    for kind in (Ahead, OnEngine):
        pipeline = run_pipeline(kind(predictor.backend, predictor.class_names, predictor.imgsz), clip)
        try:
            results, end = results_until_end(pipeline)
        finally:
            assert pipeline.shutdown(5.0)
        assert end is not None and end.reason == "eof" and len(results) == 30
        runs.append(results)
    assert Ahead.calls == 30
    for ahead, on_engine in zip(*runs):
        assert ahead.frame.network_input is None  # dropped once the engine has used it
        assert ahead.detections.router_score == on_engine.detections.router_score
        assert ahead.detections.boxes.tolist() == on_engine.detections.boxes.tolist()
