"""Synthetic clips: decodable H.264 with correct timing, and ground truth for every frame."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from engine.data.synthetic.video import ground_truth_path, write_video
from engine.errors import UserError

FRAMES, FPS, SIZE = 24, 12, (128, 96)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", FRAMES, seed=2, fps=FPS, size=SIZE)


def test_video_has_every_frame_at_the_right_time(clip: Path) -> None:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == SIZE
        frames = list(container.decode(stream))
        assert float(stream.duration * stream.time_base) == pytest.approx(FRAMES / FPS)
    assert len(frames) == FRAMES
    assert frames[0].format.name == "yuv420p"
    assert [round(frame.time * FPS) for frame in frames] == list(range(FRAMES))


def test_ground_truth_covers_every_frame(clip: Path) -> None:
    truth = json.loads(ground_truth_path(clip).read_text())
    assert ground_truth_path(clip) == clip.with_suffix(".json")
    images = truth["images"]
    assert [image["frame_index"] for image in images] == list(range(FRAMES))
    assert [image["pts"] for image in images] == pytest.approx([i / FPS for i in range(FRAMES)])
    assert truth["info"]["fps"] == FPS and truth["info"]["num_frames"] == FRAMES
    per_frame = {image["id"]: 0 for image in images}
    width, height = SIZE
    for annotation in truth["annotations"]:
        per_frame[annotation["image_id"]] += 1
        x, y, w, h = annotation["bbox"]
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and w >= 2 and h >= 2
        assert isinstance(annotation["track_id"], int)
    assert [per_frame[image["id"]] for image in images] == [
        image["difficulty_factors"]["num_objects"] for image in images
    ]
    assert sum(per_frame.values()) > 0


def test_same_seed_gives_the_same_ground_truth(clip: Path, tmp_path: Path) -> None:
    again = write_video(tmp_path / "again.mp4", FRAMES, seed=2, fps=FPS, size=SIZE)
    first, second = json.loads(ground_truth_path(clip).read_text()), json.loads(ground_truth_path(again).read_text())
    first["info"].pop("video"), second["info"].pop("video")
    assert first["annotations"] == second["annotations"]
    assert [i["difficulty_factors"] for i in first["images"]] == [i["difficulty_factors"] for i in second["images"]]


def test_objects_move_smoothly_between_frames(clip: Path) -> None:
    truth = json.loads(ground_truth_path(clip).read_text())
    tracks: dict[int, dict[int, list[float]]] = {}
    for annotation in truth["annotations"]:
        tracks.setdefault(annotation["track_id"], {})[annotation["image_id"]] = annotation["bbox"]
    steps = [
        abs((boxes[frame][0] + boxes[frame][2] / 2) - (boxes[frame - 1][0] + boxes[frame - 1][2] / 2))
        for boxes in tracks.values()
        for frame in boxes
        if frame - 1 in boxes
    ]
    assert steps and max(steps) < 30  # at most ~110 px/s plus box changes from occlusion


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"num_frames": 0}, "at least 1"), ({"size": (127, 96)}, "even"), ({"size": (8, 8)}, "between"),
     ({"fps": 0}, "fps"), ({"difficulty_range": (0.5, 0.2)}, "low <= high")],
)
def test_bad_arguments_raise_user_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"num_frames": 2, "seed": 0, **kwargs}
    with pytest.raises(UserError, match=message):
        write_video(tmp_path / "bad.mp4", **arguments)


def test_wrong_suffix_and_unwritable_place_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"\.mp4"):
        write_video(tmp_path / "clip.avi", 2, seed=0, size=(64, 48))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot"):
        write_video(blocker / "clip.mp4", 2, seed=0, size=(64, 48))
