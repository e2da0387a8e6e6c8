"""Pure helpers: drop-policy queues, the monotonic pts clock, backoff, and source parsing."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from engine.runtime.queues import DropPolicy, StreamEnd, put_blocking, put_end, put_latest
from engine.runtime.sources import SourceKind, natural_key, parse_source, redact_url
from engine.runtime.timeline import MIN_STEP, Backoff, PtsClock


def test_put_latest_drops_oldest_and_counts() -> None:
    target: queue.Queue[int] = queue.Queue(maxsize=2)
    assert [put_latest(target, item) for item in range(5)] == [0, 0, 1, 1, 1]
    assert [target.get_nowait(), target.get_nowait()] == [3, 4]


def test_put_blocking_waits_for_room_and_yields_to_stop() -> None:
    target: queue.Queue[int] = queue.Queue(maxsize=1)
    stop = threading.Event()
    assert put_blocking(target, 1, stop)
    threading.Timer(0.15, stop.set).start()
    started = time.monotonic()
    assert not put_blocking(target, 2, stop)
    assert 0.1 < time.monotonic() - started < 1.0
    assert target.get_nowait() == 1


def test_end_sentinel_is_never_lost() -> None:
    target: queue.Queue[object] = queue.Queue(maxsize=1)
    target.put("frame")
    stop = threading.Event()
    stop.set()
    assert put_end(target, StreamEnd("stopped"), stop, DropPolicy.ALL_FRAMES) == 1
    assert target.get_nowait() == StreamEnd("stopped")


def test_clock_starts_at_zero_and_follows_source() -> None:
    clock = PtsClock(live=False, fps=10)
    assert [clock.convert(p, 0.0) for p in (7.0, 7.1, 7.35)] == pytest.approx([0.0, 0.1, 0.35])


def test_clock_fills_missing_pts_from_rate_or_wall_clock() -> None:
    file_clock = PtsClock(live=False, fps=20)
    assert [file_clock.convert(None, 100.0) for _ in range(3)] == pytest.approx([0.0, 0.05, 0.1])
    live_clock = PtsClock(live=True)
    assert [live_clock.convert(None, w) for w in (100.0, 100.5, 100.7)] == pytest.approx([0.0, 0.5, 0.7])


def test_clock_nudges_duplicates_and_rebases_resets() -> None:
    clock = PtsClock(live=False, fps=10)
    out = [clock.convert(p, 0.0) for p in (0.0, 0.1, 0.1, 0.05, 0.2, -30.0, -29.9)]
    assert out[:5] == pytest.approx([0.0, 0.1, 0.1 + MIN_STEP, 0.1 + 2 * MIN_STEP, 0.2])
    # A jump back of 30 s is a clock reset: continue one frame later, then follow the source.
    assert out[5:] == pytest.approx([0.3, 0.4])


def test_clock_continues_across_reconnect_with_outage_duration() -> None:
    clock = PtsClock(live=True)
    assert clock.convert(50.0, 1000.0) == 0.0
    assert clock.convert(50.1, 1000.1) == pytest.approx(0.1)
    clock.new_connection()
    # The new connection's clock starts anywhere; the 3 s outage is kept.
    assert clock.convert(2.0, 1003.1) == pytest.approx(3.1)
    assert clock.convert(2.2, 1003.3) == pytest.approx(3.3)


def test_live_clock_rebases_jumps_far_ahead_of_the_wall_clock() -> None:
    clock = PtsClock(live=True)
    clock.convert(0.0, 0.0)
    assert clock.convert(3600.0, 0.1) == pytest.approx(0.1)


def test_backoff_doubles_to_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    with pytest.raises(ValueError, match="backoff"):
        Backoff(0.0, 1.0)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("rtsp://cam.local:554/stream1", SourceKind.RTSP),
        ("RTSPS://cam.local/s", SourceKind.RTSP),
        ("https://example.com/live/index.m3u8", SourceKind.NETWORK),
        ("http://10.0.0.2:8080/video.mjpg", SourceKind.NETWORK),
    ],
)
def test_parse_urls(text: str, kind: SourceKind) -> None:
    spec = parse_source(text)
    assert spec.kind is kind
    assert spec.is_live and spec.is_network


def test_parse_paths(tmp_path: Path) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x")
    assert parse_source(video).kind is SourceKind.FILE
    assert parse_source(f"file://{video}").kind is SourceKind.FILE
    for name in ("f10.jpg", "f9.JPG", "f1.png"):
        (tmp_path / name).write_bytes(b"x")
    spec = parse_source(tmp_path)
    assert spec.kind is SourceKind.IMAGES and not spec.is_live
    assert [Path(p).name for p in spec.images] == ["f1.png", "f9.JPG", "f10.jpg"]


def test_urls_hide_passwords() -> None:
    assert redact_url("rtsp://admin:hunter2@cam:554/s") == "rtsp://admin:***@cam:554/s"
    assert parse_source("rtsp://admin:hunter2@cam/s").display == "rtsp://admin:***@cam/s"
    assert redact_url("rtsp://cam/s") == "rtsp://cam/s"


def test_natural_key_orders_numbers_by_value() -> None:
    assert sorted(["a10", "a2", "A1"], key=natural_key) == ["A1", "a2", "a10"]


def test_capture_times_place_a_connection_burst_at_its_capture_not_its_arrival() -> None:
    from engine.runtime.timeline import CaptureTimes

    # Captured at 100.0 + pts, 15 fps; FFmpeg hands the first second over at once at 101.2 s,
    # then frames arrive 0.2 s after capture. The first frame has no timestamp (as from RTSP).
    times: CaptureTimes[int] = CaptureTimes()
    released = []
    for index in range(25):
        pts = index / 15
        arrival = 101.2 + index * 0.001 if pts < 1.0 else 100.2 + pts
        got = times.add(index, None if index == 0 else pts, arrival)
        assert not got or index >= 15, "frames are held while they arrive in a burst"
        released += got
    assert [t.item for t in released] == list(range(25))
    for timed in released[1:]:
        assert timed.captured == pytest.approx(100.2 + timed.source_pts, abs=1e-6)
    assert released[0].captured == pytest.approx(released[1].captured - 1 / 15)


def test_capture_times_do_not_hold_sources_without_timestamps() -> None:
    from engine.runtime.timeline import CaptureTimes

    times: CaptureTimes[int] = CaptureTimes()
    assert times.add(0, None, 10.0) == []
    second = times.add(1, None, 10.04)
    assert [(t.item, t.captured) for t in second] == [(0, 10.0), (1, 10.04)]
    assert [(t.item, t.captured) for t in times.add(2, None, 10.08)] == [(2, 10.08)]


def test_reconnect_gap_is_the_real_outage_with_capture_times() -> None:
    from engine.runtime.timeline import CaptureTimes

    clock = PtsClock(live=True)
    outputs = []
    for connection, start in enumerate((1000.0, 1012.0)):  # captures start at these wall times
        clock.new_connection()
        times: CaptureTimes[float] = CaptureTimes()
        for index in range(40):
            pts = 50.0 * connection + index / 15  # each connection's clock starts anew
            arrival = start + 1.2 + index * 0.001 if index / 15 < 1.0 else start + 0.2 + index / 15
            for timed in times.add(start + index / 15, pts, arrival):
                outputs.append((timed.item, clock.convert(timed.source_pts, timed.captured)))
    captured = [c for c, _ in outputs]
    stamped = [s for _, s in outputs]
    # The timeline follows capture times across the outage, to well within 0.1 s.
    for c, s in zip(captured, stamped, strict=True):
        assert s == pytest.approx(c - captured[0], abs=0.01)
