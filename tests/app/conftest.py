"""App test fixtures: the shared test servers and the small disk (the tiny model lives in tests/conftest.py)."""

from tests.support.disk import small_disk  # noqa: F401
from tests.support.servers import rtsp_server, silent_server  # noqa: F401
