"""Joining (or starting) the Ray cluster the fleet runs on, without widening what Ray exposes.

Ray trusts whoever reaches its ports: its Jobs API runs code for anyone who reaches the
dashboard (CVE-2023-48022) and the dashboard's DELETE endpoints had no authentication up to
2.53 (CVE-2026-27482). So the fleet:

* refuses a Ray older than :data:`MIN_RAY_VERSION` (token authentication and the dashboard fix);
* starts no dashboard (``include_dashboard=False`` on the cluster it starts itself);
* binds a cluster it starts to 127.0.0.1, and talks to a loopback cluster on loopback only;
* asks for Ray's token authentication (``RAY_AUTH_MODE=token``) on the cluster it starts, and
  warns when it joins one without it (the mode is set on every node by ``ray start``'s
  environment, see docs/fleet.md);
* turns Ray's usage statistics off (no phoning home).

``ray`` is imported here only, inside :func:`connect`, so a monitor without ``--ray`` never loads it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass

from engine.errors import UserError

logger = logging.getLogger(__name__)

#: Token authentication arrived in 2.52; the dashboard's unauthenticated DELETE endpoints
#: (CVE-2026-27482) were fixed after 2.53.
MIN_RAY_VERSION = (2, 54)
#: Seconds to wait for a TCP answer from a cluster address before calling it unreachable.
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class NodeView:
    """A live node of the cluster, as Ray's node table describes it."""

    node_id: str
    address: str
    resources: dict
    labels: dict
    head: bool


@dataclass(frozen=True)
class RaySession:
    """The connection the driver holds: where, and whether this process started the cluster."""

    address: str
    started_here: bool
    authenticated: bool


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` of a ``--ray`` address (a ``ray://`` client address is refused)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--ray takes HOST:PORT of the cluster's head (its GCS port, 6379 by default), "
                        f"'auto' or 'local'; got {address!r}")
    return host.strip("[]"), int(port)


def connect(address: str) -> RaySession:
    """Join the cluster at ``address`` (``HOST:PORT``, ``auto``) or start one here (``local``).

    Raises:
        UserError: an address that does not answer (within :data:`CONNECT_TIMEOUT`), a Ray
            too old, or a cluster that refuses the connection; one line each.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    host = "127.0.0.1" if address == "local" else None
    if address not in ("local", "auto"):
        host, port = split_address(address)
        _probe(address, host, port)
    if host is not None and is_loopback(host):
        # Ray otherwise replaces a loopback address by the machine's outward one, and a
        # cluster bound to loopback cannot be reached there. Read when Ray is imported.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if address == "local":
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    ray = _import_ray()
    options: dict = {"log_to_driver": False, "logging_level": logging.WARNING, "namespace": "dynastream"}
    if address == "local":
        options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
    elif host is not None and is_loopback(host):
        options["_node_ip_address"] = "127.0.0.1"
    handlers = _signal_handlers()
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot join the Ray cluster at {address}: {message}") from None
    finally:
        # ray.init installs its own SIGTERM handler, which kills the driver outright; the
        # application's handlers (a clean stop with a summary) are put back.
        _restore(handlers)
    authenticated = os.environ.get("RAY_AUTH_MODE", "disabled") == "token"
    if not authenticated:
        logger.warning("Ray token authentication is off: anyone who reaches the cluster's ports can run code "
                       "on it; set RAY_AUTH_MODE=token on every node and here (docs/fleet.md)")
    return RaySession(address, address == "local", authenticated)


def _signal_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(handlers: dict) -> None:
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _probe(address: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__.replace("Error", " error").lower()
        raise UserError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("monitor --ray needs Ray (pip install 'ray>=2.54')") from None
    version = tuple(int(p) for p in ray.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_RAY_VERSION:
        raise UserError(f"Ray {ray.__version__} lacks security fixes the fleet relies on; "
                        f"install ray>={'.'.join(map(str, MIN_RAY_VERSION))}")
    return ray


def alive_nodes() -> list[NodeView]:
    """The cluster's live nodes that have a CPU to give an engine."""
    import ray

    nodes = []
    for entry in ray.nodes():
        resources = dict(entry.get("Resources", {}))
        if not entry.get("Alive") or resources.get("CPU", 0) < 1:
            continue
        nodes.append(NodeView(entry["NodeID"], entry.get("NodeManagerAddress", "?"), resources,
                              dict(entry.get("Labels") or {}), "node:__internal_head__" in resources))
    return nodes


def disconnect() -> None:
    """Leave the cluster (and stop it when this process started it)."""
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()
