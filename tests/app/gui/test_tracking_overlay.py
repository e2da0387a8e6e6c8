"""The GUI draws track ids on boxes and zone outlines with their live counts (a camera tile on a
generated clip's frame, tracked by the real tracker)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

from engine.data.synthetic.video import write_video
from engine.detections import Detections
from engine.runtime.frames import Frame, Result
from engine.tracking.tracker import LaneTracking
from engine.tracking.zones import ZoneSettings
from engine.train.stream_eval import load_truth

SIZE = (320, 180)
ZONE_RGB = (255, 220, 60)


def tracked_results(tmp_path: Path, frames: int = 20) -> list[Result]:
    video = write_video(tmp_path / "clip.mp4", num_frames=frames, seed=5, size=SIZE, difficulty_range=(0.0, 0.3))
    truth = load_truth(video.with_suffix(".json"))
    with av.open(str(video)) as container:
        images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    # The clip's one object drifts right through the gate and across the door line.
    tracking = LaneTracking(zones=(ZoneSettings("gate", polygon=((200, 20), (315, 20), (315, 130), (200, 130))),
                                   ZoneSettings("door", line=((250, 0), (250, 180)))))
    results = []
    for index, image in enumerate(images):
        rows = truth.boxes[index]
        det = Detections(rows[:, 1:5].astype(np.float32), np.full(len(rows), 0.9, np.float32),
                         rows[:, 0].astype(np.int64), truth.class_names, 1, 0.8, 0.5)
        det, update = tracking.update(det, SIZE)
        results.append(Result(Frame(index, index / truth.fps, 0.0, image), det, 12.0, {}, update))
    return results


def test_tile_draws_track_ids_and_zone_counts(qtbot, tmp_path):
    from app.gui.camera_grid import CameraGrid, CameraStatus
    from app.gui.theme import GOOD

    results = tracked_results(tmp_path)
    last = results[-1]
    assert all(caption.split()[1].startswith("#") for caption in last.detections.captions())
    summaries = [zone.summary() for zone in last.tracking.zones]
    assert summaries[0].startswith("gate: ") and summaries[0] != "gate: empty"
    assert summaries[1] in ("door: in 1 · out 0", "door: in 0 · out 1")

    grid = CameraGrid(["gate-cam"])
    qtbot.addWidget(grid)
    grid.resize(800, 480)
    grid.show()
    grid.set_status("gate-cam", CameraStatus("live", GOOD))
    for result in results:
        grid.show_result("gate-cam", result)
    qtbot.wait(50)
    picture = grid.grab().toImage()
    shot = Path(os.environ.get("DYNASTREAM_SCREENSHOT", tmp_path / "tracking.png"))
    picture.save(str(shot))
    zone_pixels = sum(
        _near(picture.pixelColor(x, y).getRgb()[:3], ZONE_RGB)
        for x in range(0, picture.width(), 2) for y in range(0, picture.height(), 2)
    )
    assert zone_pixels > 50  # the dashed outlines and the count labels' text


def _near(rgb: tuple[int, ...], target: tuple[int, ...]) -> bool:
    return all(abs(a - b) <= 40 for a, b in zip(rgb, target))
