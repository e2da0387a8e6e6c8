"""`monitor` end to end: generated files and a real RTSP server on one engine, bad configs."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest

from app.cli import main
from tests.support.media import make_video, read_times
from tests.support.servers import RtspServer

CAMERA_KEYS = {"frames_read", "frames_processed", "processing_fps", "second_exit_fraction", "frames_dropped",
               "frames_recorded", "reconnects", "exit_reason"}


def write_config(path: Path, weights: Path, cameras: list[dict], budget: str = "{route: first}") -> Path:
    lines = [f"model: {{weights: '{weights}', backend: torch}}", f"budget: {budget}", "cameras:"]
    lines += [f"  - {json.dumps(camera)}" for camera in cameras]
    path.write_text("\n".join(lines) + "\n")
    return path


def monitor(capsys, config: Path, *args: str) -> tuple[int, dict | None, str]:
    rc = main(["monitor", "--config", str(config), "--no-progress", *args])
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return rc, (json.loads(lines[-1]) if lines else None), err


def rate(times: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in times) / (end - start)


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_files_and_a_missing_camera(tiny_weights, tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="engine.runtime.capture")
    make_video(tmp_path / "a.mp4", frames=12, fps=10, size=(96, 64))
    make_video(tmp_path / "b.mp4", frames=7, fps=10, size=(64, 48))
    config = write_config(tmp_path / "cameras.yaml", tiny_weights, [
        {"name": "a", "source": str(tmp_path / "a.mp4"), "events": str(tmp_path / "a.jsonl"),
         "record": str(tmp_path / "a-rec.mp4")},
        {"name": "b", "source": str(tmp_path / "b.mp4"), "events": str(tmp_path / "b.jsonl")},
        {"name": "ghost", "source": str(tmp_path / "missing.mp4")},
    ], budget="{second_fraction: 0.5, allocation: per-camera}")
    rc, summary, err = monitor(capsys, config)
    assert rc == 2 and "error: camera ghost:" in err and "missing.mp4" in err
    cameras = summary["cameras"]
    assert set(cameras) == {"a", "b", "ghost"} and all(set(c) >= CAMERA_KEYS for c in cameras.values())
    assert (cameras["a"]["frames_processed"], cameras["b"]["frames_processed"]) == (12, 7)
    assert cameras["a"]["exit_reason"] == cameras["b"]["exit_reason"] == "eof"
    assert cameras["ghost"]["exit_reason"] == "error" and cameras["ghost"]["frames_processed"] == 0
    assert cameras["a"]["frames_recorded"] == 12 and len(read_times(tmp_path / "a-rec.mp4")) == 12
    assert [e["frame"] for e in events_of(tmp_path / "b.jsonl")] == list(range(7))
    assert summary["allocation"] == "per-camera" and summary["mode"] == "second_fraction=0.5"
    captures = [r.getMessage() for r in caplog.records if r.name == "engine.runtime.capture"]
    assert any(m.startswith("a: capture ") for m in captures) and any(m.startswith("b: capture ") for m in captures)


@pytest.mark.parametrize(("cameras", "message"), [
    ([{"name": "a", "source": "x.mp4", "fsp": 3}], r"cameras\[0\].fsp: unknown key"),
    ([{"name": "a", "source": "x.mp4"}, {"name": "a", "source": "y.mp4"}], "duplicate camera name"),
    ([], "no cameras"),
    ([{"name": "a", "source": "x.mp4", "classes": ["unicorn"]}], "camera a: unknown class 'unicorn'"),
])
def test_bad_config_is_one_line(tiny_weights, tmp_path, capsys, cameras, message):
    import re

    config = write_config(tmp_path / "cameras.yaml", tiny_weights, cameras)
    if not cameras:
        config.write_text(config.read_text().replace("cameras:\n", "cameras: []\n"))
    rc, summary, err = monitor(capsys, config)
    assert rc == 2 and summary is None
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and re.search(message, lines[0]), err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_rtsp_outage_never_slows_the_file_cameras(tiny_weights, tmp_path, capsys, rtsp_server: RtspServer):
    for name in ("left", "right"):
        make_video(tmp_path / f"{name}.mp4", frames=40, fps=10, size=(96, 64))
    cameras = [{"name": name, "source": str(tmp_path / f"{name}.mp4"), "realtime": True, "loop": True,
                "events": str(tmp_path / f"{name}.jsonl"), "record": str(tmp_path / f"{name}-rec.mp4")}
               for name in ("left", "right")]
    cameras.append({"name": "street", "source": rtsp_server.url, "events": str(tmp_path / "street.jsonl"),
                    "record": str(tmp_path / "street-rec.mp4"), "stall_timeout": 2.0})
    config = write_config(tmp_path / "cameras.yaml", tiny_weights, cameras, budget="{second_fraction: 0.5}")
    outage: dict[str, float] = {}

    def flap() -> None:
        deadline = time.monotonic() + 60
        while not (tmp_path / "street.jsonl").exists() or (tmp_path / "street.jsonl").stat().st_size < 2000:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        outage["down"] = time.time()
        rtsp_server.kill()
        time.sleep(15)
        rtsp_server.start()
        outage["up"] = time.time()

    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    rc, summary, err = monitor(capsys, config, "--duration", "32")
    flapper.join(30)
    assert rc == 0, err
    assert "down" in outage and "up" in outage, "the RTSP camera never delivered frames"
    cameras = summary["cameras"]
    assert set(cameras) == {"left", "right", "street"}
    street = events_of(tmp_path / "street.jsonl")
    assert cameras["street"]["reconnects"] >= 1
    assert any(e["wall_time"] > outage["up"] for e in street), "no frames after the server came back"
    for name in ("left", "right"):
        times = [e["wall_time"] for e in events_of(tmp_path / f"{name}.jsonl")]
        before = rate(times, times[0] + 1.0, outage["down"])
        during = rate(times, outage["down"], outage["up"])
        assert during >= 0.8 * before, (name, before, during)  # the outage slows nothing down
        assert max(b - a for a, b in itertools.pairwise(times)) < 2.0
        assert len(read_times(tmp_path / f"{name}-rec.mp4")) >= 0.9 * cameras[name]["frames_read"]
    assert len(read_times(tmp_path / "street-rec.mp4")) > 0


@pytest.mark.timeout(90)
def test_metrics_are_labelled_by_camera(tiny_weights, tmp_path, capsys):
    import urllib.request

    from tests.support.servers import free_port

    for name in ("north", "south"):
        make_video(tmp_path / f"{name}.mp4", frames=40, fps=10, size=(64, 48))
    config = write_config(tmp_path / "cameras.yaml", tiny_weights, [
        {"name": name, "source": str(tmp_path / f"{name}.mp4"), "realtime": True, "loop": True}
        for name in ("north", "south")])
    port = free_port()
    scraped: list[str] = []

    def scrape() -> None:
        # One scrape collects the metric families one after another, so the scrape in which a camera's
        # first frame shows up may have passed its gauges just before they were set: keep the next one.
        deadline, seen = time.monotonic() + 60, False
        while time.monotonic() < deadline and not scraped:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
                continue
            if 'dynastream_camera_frames_processed_total{camera="south"' in text:
                if seen:
                    scraped.append(text)
                seen = True
            time.sleep(0.2)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    rc, _summary, err = monitor(capsys, config, "--duration", "8", "--metrics-port", str(port))
    scraper.join(5)
    assert rc == 0, err
    assert scraped, "no per-camera metrics were served"
    for name in ("north", "south"):
        assert f'dynastream_camera_up{{camera="{name}"}} 1.0' in scraped[0]
        assert f'dynastream_camera_processing_fps{{camera="{name}"}}' in scraped[0], scraped[0]
        assert f'dynastream_camera_latency_seconds_count{{camera="{name}"}}' in scraped[0]
