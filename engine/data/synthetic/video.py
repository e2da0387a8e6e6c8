"""Render a synthetic clip to H.264 MP4 with per-frame COCO ground truth beside it.

The clip is encoded with libx264 (yuv420p, constant quality) at a time base of
``1/fps`` and presentation timestamps equal to the frame index, so frame ``i`` shows at
``i / fps`` seconds. Ground truth goes to the same path with a ``.json`` suffix
(``clip.mp4`` -> ``clip.json``): one COCO image record per frame (``file_name`` is the
video's name, plus ``frame_index`` and ``pts`` in seconds), annotations with a
``track_id`` that follows each object across frames, and the categories.
"""

from __future__ import annotations

import logging
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from engine.data.synthetic.coco import annotation_record, image_record, write_json
from engine.data.synthetic.difficulty import FULL_RANGE, DifficultySchedule, check_range
from engine.data.synthetic.motion import MovingWorld
from engine.data.synthetic.scene import SyntheticImage, render_scene
from engine.errors import UserError

logger = logging.getLogger(__name__)

# Constant-quality setting: noisy busy stretches stay watchable while a 30 s clip at
# 640 x 360 stays within a few megabytes.
_CRF = 27
_PRESET = "veryfast"
_MIN_SIDE, _MAX_SIDE = 32, 4096


def ground_truth_path(video_path: str | Path) -> Path:
    """Where :func:`write_video` puts the ground truth for ``video_path``."""
    return Path(video_path).with_suffix(".json")


def _check_arguments(out_path: Path, num_frames: int, fps: int, size: tuple[int, int]) -> None:
    if num_frames < 1:
        raise UserError(f"number of frames must be at least 1, got {num_frames}")
    if not 1 <= fps <= 240:
        raise UserError(f"fps must be between 1 and 240, got {fps}")
    width, height = size
    if width % 2 or height % 2 or min(size) < _MIN_SIDE or max(size) > _MAX_SIDE:
        raise UserError(
            f"video size must be even, between {_MIN_SIDE} and {_MAX_SIDE} px per side, got {width}x{height}"
        )
    if out_path.suffix.lower() != ".mp4":
        raise UserError(f"video output must end in .mp4, got {out_path}")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {out_path.parent}: {exc.strerror}") from None


class _GroundTruth:
    """Collects the COCO records of a clip frame by frame."""

    def __init__(self, video_name: str, fps: int) -> None:
        self.video_name, self.fps = video_name, fps
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, index: int, picture: SyntheticImage, track_ids: list[int]) -> None:
        pts = index / self.fps
        self.images.append(image_record(index, self.video_name, picture, frame_index=index, pts=pts))
        for annotation in picture.annotations:
            annotation_id = len(self.annotations) + 1  # COCO evaluation reads id 0 as "no match"
            track_id = track_ids[annotation.source]
            self.annotations.append(annotation_record(annotation_id, index, annotation, track_id=track_id))


def write_video(
    out_path: str | Path,
    num_frames: int,
    seed: int,
    fps: int = 15,
    size: tuple[int, int] = (640, 360),
    difficulty_range: tuple[float, float] = FULL_RANGE,
) -> Path:
    """Render a clip whose difficulty drifts between calm and busy stretches.

    Args:
        out_path: ``.mp4`` file to write; its ground truth goes to :func:`ground_truth_path`.
        num_frames: frames to render.
        seed: equal seeds give identical clips and ground truth.
        fps: frame rate.
        size: ``(width, height)`` in pixels, both even.
        difficulty_range: ``(low, high)`` within [0, 1] that the difficulty schedule stays in, e.g.
            ``(0.0, 0.3)`` for a calm camera; the full range gives the same clip as before ranges existed.

    Returns:
        The video's path.

    Raises:
        UserError: for invalid counts, sizes or difficulty ranges, or an output that cannot be written.
    """
    out_path = Path(out_path)
    try:
        difficulty_range = check_range(difficulty_range)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _check_arguments(out_path, num_frames, fps, size)  # last: it creates the output folder
    schedule_seed, world_seed, noise_seed = np.random.SeedSequence(seed).spawn(3)
    schedule = DifficultySchedule.sample(
        np.random.default_rng(schedule_seed), duration_s=num_frames / fps, level_range=difficulty_range
    )
    world = MovingWorld(np.random.default_rng(world_seed), size[0], size[1], schedule)
    truth = _GroundTruth(out_path.name, fps)
    try:
        _render_clip(out_path, world, np.random.default_rng(noise_seed), num_frames, fps, truth)
    except OSError as exc:
        raise UserError(f"cannot write video {out_path}: {exc.strerror or exc}") from None
    info = {"seed": seed, "fps": fps, "num_frames": num_frames, "width": size[0], "height": size[1]}
    info["video"] = out_path.name
    info["difficulty_range"] = list(difficulty_range)
    write_json(ground_truth_path(out_path), truth.images, truth.annotations, info)
    logger.info("wrote %d frames to %s (%d annotations)", num_frames, out_path, len(truth.annotations))
    return out_path


def _render_clip(
    out_path: Path, world: MovingWorld, noise_rng: np.random.Generator, num_frames: int, fps: int, truth: _GroundTruth
) -> None:
    """Step the world, render and encode each frame, and hand its annotations to ``truth``."""
    with av.open(str(out_path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": str(_CRF), "preset": _PRESET})
        stream.width, stream.height, stream.pix_fmt = world.width, world.height, "yuv420p"
        # Kept in a local: the MP4 muxer replaces the stream's time base once the header is written.
        time_base = Fraction(1, fps)
        stream.time_base = time_base
        stream.codec_context.gop_size = 2 * fps  # a keyframe every two seconds keeps seeking cheap
        for index in tqdm(range(num_frames), desc="synth video", unit="frame", file=sys.stderr, leave=False):
            state = world.step(index / fps, 1.0 / fps if index else 0.0)
            picture = render_scene(
                state.background, state.layers, state.effects, noise_rng,
                difficulty=state.difficulty, busyness=state.busyness,
            )
            frame = av.VideoFrame.from_ndarray(picture.image, format="rgb24")
            frame.pts, frame.time_base = index, time_base
            container.mux(stream.encode(frame))
            truth.add(index, picture, state.track_ids)
        container.mux(stream.encode(None))  # flush delayed frames before the trailer is written
