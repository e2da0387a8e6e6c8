"""A small live RTSP server for the capture tests, built on GStreamer's gst-rtsp-server.

Run it with the system interpreter, which has the GObject bindings (python3-gi), not the
project's virtualenv::

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 [--width 320 --height 240 --fps 15]

It serves a live H.264 test pattern at ``rtsp://127.0.0.1:PORT/test`` and prints ``READY``
on stdout once it listens. SIGTERM or SIGINT stops it cleanly; the tests also SIGKILL it to
imitate a camera that disappears.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

MOUNT = "/test"


def build_launch_line(width: int, height: int, fps: int) -> str:
    """The media pipeline: a live test pattern, encoded for low latency, one IDR per second.

    ``is-live=true`` makes the source produce frames at the wall-clock rate, like a camera.
    ``config-interval=1`` resends SPS/PPS every second so that a client that joins late
    (or reconnects) can start decoding at the next keyframe.
    """
    return (
        f"( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=300 "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(build_launch_line(args.width, args.height, args.fps))
    # One pipeline shared by all clients, as a real camera has one sensor.
    factory.set_shared(True)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        sys.stderr.write(f"rtsp_server: cannot listen on {args.host}:{args.port}\n")
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
