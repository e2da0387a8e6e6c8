"""Our array-based ByteTrack against supervision's ByteTrack, the tracker it replaced: the same ids
for every box, and the same kept tracks, frame by frame, on sequences that exercise every rule
(births, low-score rescues, losses, re-finds, timeouts, duplicates, empty frames, bad boxes)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.tracking.byte_track import ByteTrack

sv = pytest.importorskip("supervision")


def reference_tracker(activation: float, lost_frames: int, match_cost: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in supervision 0.28, still the reference
        return sv.ByteTrack(track_activation_threshold=activation, lost_track_buffer=lost_frames,
                            minimum_matching_threshold=match_cost, frame_rate=30)


def reference_step(tracker, boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, set[int]]:
    """One frame through supervision: each box's id (-1 unclaimed) and the ids of the tracks kept."""
    ids = np.full(len(boxes), -1, np.int64)
    if len(boxes):  # supervision cannot step with an empty frame while it holds tracks
        detections = sv.Detections(xyxy=boxes, confidence=scores, class_id=np.zeros(len(boxes), int),
                                   data={"index": np.arange(len(boxes))})
        tracked = tracker.update_with_detections(detections)
        if len(tracked):
            ids[np.asarray(tracked.data["index"], int)] = np.asarray(tracked.tracker_id, np.int64)
    kept = {int(t.external_track_id) for t in (*tracker.tracked_tracks, *tracker.lost_tracks)}
    return ids, kept


def moving_scene(seed: int, frames: int = 300, objects: int = 15) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boxes drifting with noisy velocities, missed 10% of the time, scores spread over both
    passes' ranges, objects leaving and new ones entering, plus a few random clutter boxes."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 600, (objects, 2))
    velocity = rng.normal(0, 3, (objects, 2))
    size = rng.uniform(20, 80, (objects, 2))
    sequence = []
    for _ in range(frames):
        centre += velocity
        velocity += rng.normal(0, 0.3, velocity.shape)
        left = ((centre < -50) | (centre > 700)).any(1)
        centre[left] = rng.uniform(0, 600, (int(left.sum()), 2))
        seen = rng.random(objects) > 0.1
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)[seen] + rng.normal(0, 2, (int(seen.sum()), 4))
        scores = np.clip(rng.normal(0.55, 0.25, len(boxes)), 0.05, 0.99)
        clutter = rng.uniform(0, 550, (int(rng.integers(0, 3)), 2))
        boxes = np.concatenate([boxes, np.concatenate([clutter, clutter + rng.uniform(10, 50, clutter.shape)], 1)])
        scores = np.concatenate([scores, rng.uniform(0.1, 0.5, len(clutter))])
        sequence.append((boxes.astype(np.float32), scores.astype(np.float32)))
    return sequence


def assert_same_as_reference(sequence, activation=0.25, lost_frames=30, match_cost=0.8) -> None:
    reference = reference_tracker(activation, lost_frames, match_cost)
    ours = ByteTrack(activation, lost_frames, match_cost)
    for frame, (boxes, scores) in enumerate(sequence):
        expected, kept = reference_step(reference, boxes, scores)
        got = ours.update(boxes, scores)
        assert got.tolist() == expected.tolist(), f"frame {frame}: ids differ"
        assert ours.live_ids == kept, f"frame {frame}: kept tracks differ"


@pytest.mark.parametrize(("seed", "activation", "lost_frames"),
                         [(1, 0.25, 30), (2, 0.25, 5), (3, 0.5, 1), (4, 0.6, 30), (5, 0.3, 10)])
def test_same_ids_as_supervision(seed, activation, lost_frames):
    assert_same_as_reference(moving_scene(seed), activation, lost_frames)


def test_same_ids_through_crowds_and_duplicates():
    """Many overlapping objects, each often detected twice: duplicate tracks, ambiguous matches."""
    sequence = []
    for boxes, scores in moving_scene(seed=11, frames=200, objects=40):
        twice = boxes[::3] + 1.5
        sequence.append((np.concatenate([boxes, twice]), np.concatenate([scores, scores[::3] * 0.9])))
    assert_same_as_reference(sequence)


def test_bad_boxes_are_ignored_and_keep_their_slot():
    tracker = ByteTrack()
    boxes = np.array([[10, 10, 50, 60], [np.nan, 0, 5, 5], [30, 30, 30, 40], [100, 100, 140, 160]], np.float32)
    scores = np.array([0.9, 0.9, 0.9, 0.9], np.float32)
    ids = tracker.update(boxes, scores)
    assert ids.tolist() == [1, -1, -1, 2]  # NaN and zero-width boxes: no track, same positions


def test_empty_frames_lose_tracks_then_end_them():
    tracker = ByteTrack(lost_frames=3)
    box, score = np.array([[10, 10, 50, 60]], np.float32), np.array([0.9], np.float32)
    assert tracker.update(box, score).tolist() == [1]
    for _ in range(4):
        assert tracker.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)).tolist() == []
    assert tracker.live_ids == {1}  # past lost_frames: removed, listed for one more frame
    tracker.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert tracker.live_ids == set()
    assert tracker.update(box, score).tolist() == [-1]  # a new track, confirmed at its second frame
    assert tracker.update(box, score).tolist() == [2]
