"""`monitor --ray` on a real multi-node Ray cluster on this machine (every node on 127.0.0.1).

A head and two worker nodes (one CPU each, as ``ray.cluster_utils.Cluster`` starts them), the
driver as its own process (as a user runs it), four cameras over both workers, one worker
removed mid-run: its cameras must resume on the other within 15 s and every camera's events go
on in one file. Also: the bad inputs, and a local fleet that listens on loopback only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from tests.support.media import make_video, read_times
from tests.support.servers import RtspServer, free_port

ROOT = Path(__file__).resolve().parents[2]
RECOVERY_SECONDS = 15.0


@pytest.fixture
def ray_env(monkeypatch) -> dict[str, str]:
    """The environment of every Ray process of a test: token auth, no usage stats, loopback.

    Set before Ray is imported here: it reads some of them once, at import.
    """
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    values = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
              "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **values}


@pytest.fixture
def ray_cluster(ray_env) -> Iterator:
    """A head and two worker nodes; every process of it gone afterwards."""
    import ray
    from ray.cluster_utils import Cluster

    node_args = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    session = Path(cluster.head_node.get_session_dir_path()).name
    try:
        cluster.add_node(**node_args)
        cluster.add_node(**node_args)
        yield cluster
    finally:
        cluster.shutdown()
        ray.shutdown()
        deadline = time.monotonic() + 20
        while _ray_processes(session) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _ray_processes(session), "Ray processes of the test were left running"
        assert not subprocess.run(["pgrep", "-f", f"raylet.*{session}"], capture_output=True).stdout


def _ray_processes(session: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", session], capture_output=True, text=True).stdout.split()
    return [pid for pid in found if pid != str(os.getpid())]


def write_config(path: Path, weights: Path, cameras: list[dict], budget: str = "{second_fraction: 0.5}") -> Path:
    lines = [f"model: {{weights: '{weights}', backend: torch}}", f"budget: {budget}", "cameras:"]
    lines += [f"  - {json.dumps(camera)}" for camera in cameras]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_driver(config: Path, address: str, env: dict, log: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "main.py"), "monitor", "--config", str(config), "--ray", address,
               "--no-progress", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env, cwd=ROOT)


@contextlib.contextmanager
def running_driver(config: Path, address: str, env: dict, log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """A driver process that is killed on the way out if the test has not ended it."""
    driver = start_driver(config, address, env, log, *args)
    try:
        yield driver
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_lost_node_moves_its_cameras(tiny_weights, tmp_path, ray_cluster, ray_env, rtsp_server: RtspServer):
    address = ray_cluster.address
    # a camera pinned where no node is: named, nothing runs
    pinned = write_config(tmp_path / "pinned.yaml", tiny_weights, [
        {"name": "dock", "source": rtsp_server.url, "node": ["usb-dock"]}])
    driver = start_driver(pinned, address, ray_env, tmp_path / "pinned.log")
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 2, out
    assert "camera dock: no node of the cluster has usb-dock" in (tmp_path / "pinned.log").read_text()

    cameras = []
    for name in ("gate", "yard", "dock"):
        make_video(tmp_path / f"{name}.mp4", frames=40, fps=10, size=(96, 64))
        cameras.append({"name": name, "source": str(tmp_path / f"{name}.mp4"), "realtime": True, "loop": True,
                        "fps": 5})
    cameras.append({"name": "street", "source": rtsp_server.url, "fps": 5, "stall_timeout": 3.0})
    for camera in cameras:
        camera.update(events=str(tmp_path / f"{camera['name']}.jsonl"),
                      record=str(tmp_path / "rec" / f"{camera['name']}.mp4"))
    config = write_config(tmp_path / "cameras.yaml", tiny_weights, cameras, budget="{target_fps: 12}")
    # --duration only bounds a run that goes wrong: the test stops the driver as a user would, with a
    # signal, as soon as every camera has shown events from after the loss.
    with running_driver(config, address, ray_env, tmp_path / "driver.log", "--duration", "150") as driver:
        names = [c["name"] for c in cameras]
        wait_for(lambda: all(len(events_of(tmp_path / f"{n}.jsonl")) >= 5 for n in names), 150,
                 "every camera's first events")
        lost = ray_cluster.list_all_nodes()[1]  # the first worker node
        loss_time = time.time()
        ray_cluster.remove_node(lost)
        wait_for(lambda: all(any(e["wall_time"] > loss_time + 3 for e in events_of(tmp_path / f"{n}.jsonl"))
                             for n in names), 60, "events of every camera after the loss")
        driver.terminate()
        out, _ = driver.communicate(timeout=120)
    log = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, log
    summary = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    assert summary["nodes_lost"] == 1
    moved = sorted(name for name, c in summary["cameras"].items() if c["moves"] == 1)
    stayed = sorted(name for name, c in summary["cameras"].items() if c["moves"] == 0)
    assert moved and stayed, summary  # the cameras were spread over both workers
    assert len({c["node"] for c in summary["cameras"].values()}) == 1  # all on the survivor now
    for name in names:
        times = [e["wall_time"] for e in events_of(tmp_path / f"{name}.jsonl")]
        assert times[0] < loss_time < times[-1]
        assert summary["cameras"][name]["exit_reason"] == "signal"
        assert summary["cameras"][name]["frames_processed"] == len(times)
    assert_driver_kill_leaves_no_actor(tmp_path, tiny_weights, address, ray_env)
    for name in moved:
        after = [e["wall_time"] for e in events_of(tmp_path / f"{name}.jsonl") if e["wall_time"] > loss_time]
        assert after[0] - loss_time < RECOVERY_SECONDS, (name, after[0] - loss_time)
        # the recording made on the lost node plays up to the loss; it goes on in a numbered file
        assert len(read_times(tmp_path / "rec" / f"{name}.mp4")) > 0
        assert len(read_times(tmp_path / "rec" / f"{name}.1.mp4")) > 0


def assert_driver_kill_leaves_no_actor(tmp_path: Path, weights: Path, address: str, env: dict) -> None:
    """A driver killed outright takes its node engines with it (Ray ends the actors it owned)."""
    config = write_config(tmp_path / "short.yaml", weights, [
        {"name": "gate", "source": str(tmp_path / "gate.mp4"), "realtime": True, "loop": True,
         "events": str(tmp_path / "short.jsonl")}])
    with running_driver(config, address, env, tmp_path / "short.log", "--duration", "120"):
        wait_for(lambda: len(events_of(tmp_path / "short.jsonl")) >= 3, 120, "the short run's events")
        assert engine_processes()
    # leaving the block killed the driver outright (SIGKILL)
    wait_for(lambda: not engine_processes(), 30, "the killed driver's node engines to end")


def engine_processes() -> list[str]:
    return subprocess.run(["pgrep", "-f", "ray::NodeEngine"], capture_output=True, text=True).stdout.split()


def test_an_unreachable_address_is_one_line(tiny_weights, tmp_path, capsys, ray_env):
    make_video(tmp_path / "a.mp4", frames=5, fps=10, size=(64, 48))
    config = write_config(tmp_path / "cameras.yaml", tiny_weights, [{"name": "a", "source": str(tmp_path / "a.mp4")}])
    start = time.monotonic()
    rc = main(["monitor", "--config", str(config), "--ray", f"127.0.0.1:{free_port()}", "--no-progress"])
    _, err = capsys.readouterr()
    assert rc != 0 and time.monotonic() - start < 30
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Ray cluster at 127.0.0.1:"), err


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_local_fleet_listens_on_loopback_only(tiny_weights, tmp_path, ray_env):
    make_video(tmp_path / "a.mp4", frames=40, fps=10, size=(64, 48))
    config = write_config(tmp_path / "cameras.yaml", tiny_weights, [
        {"name": "a", "source": str(tmp_path / "a.mp4"), "realtime": True, "loop": True,
         "events": str(tmp_path / "a.jsonl")}])
    env = {k: v for k, v in ray_env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}  # the fleet's own
    with running_driver(config, "local", env, tmp_path / "driver.log", "--duration", "40") as driver:
        wait_for(lambda: len(events_of(tmp_path / "a.jsonl")) >= 5, 150, "the camera's first events")
        pids = [driver.pid, *descendants(driver.pid)]
        listening = listening_addresses(pids)
        assert len(pids) > 3 and listening, "no Ray process found"
        outside = [(host, port) for host, port in listening if not is_loopback(host)]
        assert not outside, outside
        assert 8265 not in {port for _, port in listening}  # no dashboard
        driver.terminate()
        out, _ = driver.communicate(timeout=60)
    assert json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["exit_reason"] == "signal"
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids[1:]), 30, "the local cluster to stop")


def is_loopback(host: str) -> bool:
    address = ipaddress.ip_address(host)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is IPv4's loopback on a dual socket
    return (mapped or address).is_loopback


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def listening_addresses(pids: list[int]) -> list[tuple[str, int]]:
    """(host, port) of every TCP listening socket and bound UDP socket the processes hold."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6), ("udp", socket.AF_INET),
                          ("udp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes or (table.startswith("tcp") and state != "0A"):
                continue
            host_hex, port_hex = local.split(":")
            raw = bytes.fromhex(host_hex)
            # /proc/net prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found
