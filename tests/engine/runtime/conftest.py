"""Runtime test fixtures (the servers live in tests/support/servers.py, shared with the app tests)."""

from tests.support.disk import small_disk  # noqa: F401
from tests.support.servers import mjpeg_server, rtsp_server, silent_server  # noqa: F401
