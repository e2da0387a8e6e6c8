"""Test servers: a real RTSP server process (GStreamer) and a TCP server that never answers."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from tests.support.media import pattern

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = ROOT / "tests" / "support" / "rtsp_server.py"
# The server needs the RTSP bindings and the elements of its pipeline (x264enc is in -ugly).
GI_CHECK = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("videotestsrc", "x264enc", "rtph264pay") if Gst.ElementFactory.find(e) is None]
if missing:
    raise SystemExit("missing GStreamer elements: " + ", ".join(missing))
"""


@functools.cache
def rtsp_unavailable_reason() -> str | None:
    """Why the GStreamer RTSP server cannot run here, or None when it can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found (needed for the GStreamer RTSP test server)"
    result = subprocess.run([SYSTEM_PYTHON, "-c", GI_CHECK], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"{SYSTEM_PYTHON} cannot run the GStreamer RTSP server ({detail}); run scripts/install_system_deps.sh"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_answers(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RtspServer:
    """The GStreamer test server as a child process that tests can kill and restart.

    Args:
        port: TCP port on 127.0.0.1; kept across restarts.
        log_path: file collecting the server's output, shown when it fails to start.
    """

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/test"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, width: int = 320, height: int = 240, fps: int = 15, timeout: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        command += ["--width", str(width), "--height", str(height), "--fps", str(fps)]
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not port_answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"RTSP test server did not start:\n{self._log_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server, as a camera that loses power would vanish."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None

    def restart(self, **kwargs: int) -> None:
        """Kill the server, then start it again on the same port (``start`` arguments allowed)."""
        self.kill()
        self.start(**kwargs)


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspServer]:
    """A running RTSP server at ``rtsp_server.url``; skipped when GStreamer is not installed."""
    reason = rtsp_unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = RtspServer(free_port(), tmp_path / "rtsp_server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Port of a TCP listener that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept_forever() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept_forever, name="silent-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(2)
        for connection in held:
            connection.close()
        listener.close()


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.frames`` JPEG pictures as multipart/x-mixed-replace, like an IP camera."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for index in range(self.server.frames):  # type: ignore[attr-defined]
            _, jpeg = cv2.imencode(".jpg", pattern(index, 96, 64)[:, :, ::-1])
            header = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            try:
                self.wfile.write(header.encode() + jpeg.tobytes() + b"\r\n")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.02)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture
def mjpeg_server() -> Iterator[str]:
    """URL of a local HTTP MJPEG stream of 20 frames (96x64) per request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MjpegHandler)
    server.daemon_threads = True
    server.frames = 20  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)
