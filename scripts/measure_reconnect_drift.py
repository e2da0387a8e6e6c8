"""Recording timeline against the wall clock while the RTSP camera stand-in is killed and restarted.

Starts the GStreamer test server (tests/support/rtsp_server.py), captures it into a recording
(capture and writer only: the model plays no part in timestamps), kills the server ``--kills``
times during ``--seconds``, and prints one JSON line: the recording's span against the wall time
between the first and the last captured frame (from arrivals, and from the first frame's
capture), and the drift each reconnect added (the change of ``pts - arrival`` between one
connection's settled frames and the next one's).
    python scripts/measure_reconnect_drift.py [--seconds 60] [--kills 5] [--down 1.0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.runtime.capture import Capture  # noqa: E402
from engine.runtime.queues import StreamEnd, get_item  # noqa: E402
from engine.runtime.writer import Writer  # noqa: E402
from tests.support.media import read_times  # noqa: E402
from tests.support.servers import RtspServer, free_port, rtsp_unavailable_reason  # noqa: E402

#: Frames at the start of each connection left out of its offset (they may arrive in a burst).
SETTLE_FRAMES = 15


def flap(server: RtspServer, seconds: float, kills: int, down: float, done: threading.Event) -> None:
    """Kill the server ``kills`` times, evenly over ``seconds``, each time down for ``down`` s."""
    period = seconds / (kills + 1)
    for _ in range(kills):
        if done.wait(period - down):
            return
        server.kill()
        time.sleep(down)
        server.start()


def connection_offsets(frames: list[tuple[int, float, float]]) -> list[float]:
    """Median of ``pts - arrival`` per connection, over its frames after the first few."""
    by_source: dict[int, list[float]] = {}
    for source_id, pts, arrival in frames:
        by_source.setdefault(source_id, []).append(pts - arrival)
    return [statistics.median(v[SETTLE_FRAMES:] or v) for _, v in sorted(by_source.items())]


def measure(seconds: float, kills: int, down: float, workdir: Path) -> dict:
    server = RtspServer(free_port(), workdir / "server.log")
    server.start()
    record = workdir / "flap.mp4"
    capture = Capture(server.url, stall_timeout=2.0, open_timeout=4.0, backoff_initial=0.25, backoff_max=1.0,
                      queue_size=256)  # no drops: the recording holds every captured frame
    writer = Writer(record)
    writer.start()
    capture.start()
    done = threading.Event()
    flapper = threading.Thread(target=flap, args=(server, seconds, kills, down, done), daemon=True)
    frames: list[tuple[int, float, float]] = []
    started = time.monotonic()
    flapper.start()
    try:
        while time.monotonic() - started < seconds:
            item = get_item(capture.output, 0.1)
            if item is None or isinstance(item, StreamEnd):
                continue
            frames.append((item.source_id, item.pts, time.time()))
            writer.input.put(item)
    finally:
        done.set()
        capture.stop()
        capture.join(5)
        writer.input.put(StreamEnd("stopped"))
        writer.join(10)
        flapper.join(10)
        server.kill()
    times = read_times(record)
    offsets = connection_offsets(frames)
    drifts = [b - a for a, b in itertools.pairwise(offsets)]
    wall = frames[-1][2] - frames[0][2]
    # The first connection's opening burst arrives at once although it was captured over about a
    # second: measured from that first frame's settled-latency arrival, the wall time is comparable.
    wall_from_capture = frames[-1][2] - (frames[0][1] - offsets[0])
    span = times[-1] - times[0]
    return {
        "reconnects": capture.stats.reconnects, "connections": len(offsets),
        "wall_s": round(wall, 3), "wall_from_first_capture_s": round(wall_from_capture, 3),
        "recording_span_s": round(span, 3), "span_minus_wall_from_first_capture_s": round(span - wall_from_capture, 3),
        "drift_per_reconnect_s": [round(d, 3) for d in drifts],
        "mean_drift_per_reconnect_s": round(statistics.mean(drifts), 3) if drifts else None,
        "frames_captured": len(frames), "frames_in_recording": len(times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--down", type=float, default=1.0, help="seconds the server stays down each time")
    args = parser.parse_args()
    reason = rtsp_unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(measure(args.seconds, args.kills, args.down, Path(workdir))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
