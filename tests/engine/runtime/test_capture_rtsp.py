"""Capture from network streams: a real RTSP server, reconnects, and the stall watchdog."""

from __future__ import annotations

import itertools
import time

import pytest

from engine.errors import SourceError
from engine.runtime.capture import Capture, probe_source
from engine.runtime.queues import DropPolicy, StreamEnd
from tests.support.media import drain
from tests.support.servers import RtspServer, free_port

# A hung capture or server must fail the test, not stall the whole run.
pytestmark = pytest.mark.timeout(60)


def stop_and_join(capture: Capture) -> StreamEnd | None:
    capture.stop()
    assert capture.join(2.0), "capture thread did not exit"
    return drain(capture.output, 1.0).end


def test_probe_rtsp_stream(rtsp_server: RtspServer) -> None:
    info = probe_source(rtsp_server.url, timeout=5)
    assert (info.width, info.height, info.is_live) == (320, 240, True)
    assert info.codec == "h264"


@pytest.mark.slow
def test_rtsp_reconnects_after_server_restart_at_new_size(rtsp_server: RtspServer) -> None:
    capture = Capture(rtsp_server.url, stall_timeout=2.0, open_timeout=4.0, backoff_initial=0.25, queue_size=4)
    assert capture.policy is DropPolicy.LIVE
    capture.start()
    try:
        before = drain(capture.output, 8, limit=10).frames
        assert len(before) == 10 and before[0].size == (320, 240)

        rtsp_server.kill()
        time.sleep(0.5)  # the stream is down: capture notices and starts retrying
        rtsp_server.start(width=256, height=192)
        after = [f for f in drain(capture.output, 12, limit=40).frames if f.source_id > 0][:5]
        assert len(after) == 5, f"no frames after restart; stats={capture.stats}"
    finally:
        end = stop_and_join(capture)

    stats = capture.stats
    assert stats.reconnects >= 1
    assert after[0].size == (256, 192), "frames carry the new resolution"
    assert after[0].pts > before[-1].pts, "pts stay monotonic across the reconnect"
    pts = [f.pts for f in before + after]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert after[0].index > before[-1].index
    assert end == StreamEnd("stopped")
    assert stats.state == "stopped"


def test_unreachable_rtsp_fails_once_after_allowed_reconnects() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/test"
    started = time.monotonic()
    capture = Capture(url, max_reconnects=1, backoff_initial=0.2, open_timeout=2.0)
    capture.start()
    result = drain(capture.output, 6)
    assert capture.join(2.0)
    elapsed = time.monotonic() - started

    assert result.frames == []
    assert isinstance(result.end, StreamEnd) and result.end.failed
    message = str(result.end.error)
    assert isinstance(result.end.error, SourceError)
    assert message.startswith(url) and "Connection refused" in message
    assert "gave up after 1 reconnect" in message
    assert capture.stats.reconnects == 1
    assert capture.stats.state == "failed"
    assert elapsed < 4


def test_unreachable_rtsp_probe_fails_fast() -> None:
    with pytest.raises(SourceError, match="cannot open stream"):
        probe_source(f"rtsp://127.0.0.1:{free_port()}/test", timeout=3)


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_is_caught_by_watchdog_not_a_hang(silent_server: int, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{silent_server}/stream"
    started = time.monotonic()
    capture = Capture(url, max_reconnects=0, open_timeout=1.0, stall_timeout=1.0)
    capture.start()
    result = drain(capture.output, 10)
    assert capture.join(2.0)
    assert time.monotonic() - started < 8.0  # generous: CI machines are loaded; a hang would never end
    assert isinstance(result.end, StreamEnd) and result.end.failed
    assert "no answer within 1 s" in str(result.end.error)


def test_stop_during_backoff_is_prompt() -> None:
    capture = Capture(f"rtsp://127.0.0.1:{free_port()}/x", backoff_initial=5.0, backoff_max=5.0)
    capture.start()
    deadline = time.monotonic() + 3
    while capture.stats.state != "reconnecting" and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = capture.stats
    assert stats.state == "reconnecting"
    assert stats.next_retry_in is not None and 0 < stats.next_retry_in <= 5.0
    assert "Connection refused" in (stats.last_error or "")
    started = time.monotonic()
    assert stop_and_join(capture) == StreamEnd("stopped")
    assert time.monotonic() - started < 1.0


def test_http_mjpeg_stream_reconnects_when_the_server_closes(mjpeg_server: str) -> None:
    capture = Capture(mjpeg_server, backoff_initial=0.1, stall_timeout=2.0, queue_size=64)
    capture.start()
    try:
        frames = drain(capture.output, 8, limit=30).frames
    finally:
        end = stop_and_join(capture)
    first = [f for f in frames if f.source_id == 0]
    assert len(first) >= 15  # FFmpeg may hold back the last picture or two
    assert any(f.source_id == 1 for f in frames), "a second request follows the closed one"
    assert frames[0].size == (96, 64)
    reds = [int(f.image[:, :, 0].mean()) for f in first[:5]]
    assert reds == pytest.approx([(i * 37) % 256 for i in range(5)], abs=6)
    assert capture.stats.reconnects >= 1
    assert end == StreamEnd("stopped")


@pytest.mark.slow
def test_recording_timeline_follows_the_wall_clock_across_reconnects(rtsp_server: RtspServer) -> None:
    """Issue #12: each reconnect used to add about a second (the connection's opening burst)."""
    import statistics

    capture = Capture(rtsp_server.url, stall_timeout=2.0, open_timeout=4.0, backoff_initial=0.25,
                      backoff_max=0.5, queue_size=256)
    # source_id, pts, arrival: when the capture received the frame (the test drains in batches, and
    # under load late, so its own clock would add its delays to the offsets)
    arrivals: list[tuple[int, float, float]] = []
    capture.start()
    try:
        for _ in range(2):
            arrivals += [(f.source_id, f.pts, f.wall_time) for f in drain(capture.output, 10, limit=45).frames]
            rtsp_server.kill()
            time.sleep(0.5)
            rtsp_server.start()
        arrivals += [(f.source_id, f.pts, f.wall_time) for f in drain(capture.output, 10, limit=45).frames]
    finally:
        stop_and_join(capture)

    offsets: dict[int, list[float]] = {}
    for source_id, pts, arrival in arrivals:
        offsets.setdefault(source_id, []).append(pts - arrival)
    # Settled frames only (the first ones of a connection arrive in a burst, by design).
    settled = [statistics.median(values[20:]) for _, values in sorted(offsets.items()) if len(values) > 25]
    assert len(settled) >= 3, f"not enough connections: {sorted(offsets)}"
    drifts = [b - a for a, b in itertools.pairwise(settled)]
    assert all(abs(d) < 0.1 for d in drifts), drifts
