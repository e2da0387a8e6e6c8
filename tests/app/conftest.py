"""App test fixtures: the shared test servers (the tiny model lives in tests/conftest.py)."""

from tests.support.servers import rtsp_server, silent_server  # noqa: F401
