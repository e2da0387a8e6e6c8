"""Scoring a streaming run's events against a clip's ground truth, offline and as a live viewer saw it.

Inputs are one events file (JSON lines written by ``run --events``: ``frame``, ``pts``,
``wall_time``, ``latency_ms`` and ``detections`` per processed frame) and the clip's COCO
ground truth (``synth --video`` writes it beside the clip: one image per frame with its
``frame_index``, and ``info.fps``). A multi-camera monitor writes one events file per camera, so
one events file and one truth file is the unit scored here.

Two scores, both COCO mAP@0.5:0.95 (and @0.5) from :func:`engine.train.evaluate.coco_map`:

- ``map`` / ``map50``: the processed frames only, each with its own detections. This is the
  detector's accuracy, blind to frames the pipeline skipped and to how late results came.
- ``streaming_map`` / ``streaming_map50``: every source frame from 0 to the last processed
  one, each scored with the latest result available at that frame's time, as in streaming
  perception (Li, Wang and Ramanan, ECCV 2020). Times are on the capture clock
  (``time.time()``):

  * result ``e`` becomes available at ``wall_time_e + latency_ms_e / 1000`` (capture time plus
    capture-to-result latency);
  * source frame ``i`` is due at ``t_i = wall_time_0 - pts_0 + i / fps``, where event 0 is the
    earliest processed frame and ``fps`` comes from the truth file: the source is taken to play
    at its native rate from the moment the first processed frame was captured;
  * frame ``i`` is scored with the detections of the result that became available last at or
    before ``t_i``. A skipped frame therefore keeps the previous result, a frame's own result
    only counts if it arrived by its time, and frames before any result count as empty.
  * a result never shows before its own frame is due (``t_frame``): a file decoded faster than
    its native rate would otherwise hand earlier frames results from their future.

  For live sources and ``run --realtime`` the capture clock is the source's clock, so this is
  what a viewer saw. A file decoded as fast as the pipeline pulls frames does not play at its
  native rate; its streaming score then mostly measures how far decoding ran ahead.

Tracking quality, when the events carry ``track_id`` (``run`` tracks by default) and the truth
has per-box ``track_id`` (``synth --video`` writes them): ``mota``, ``idf1`` and ``hota`` over
the processed frames, each frame's tracked boxes against its ground truth, computed by
``motrics`` (CLEAR MOT, Identity and HOTA with TrackEval's definitions and matching). Matching
is class-agnostic, as the tracker is: a track that keeps following its object through a frame
where a head named it differently is not an identity switch. Boxes no track claimed are not
part of the tracker's output and are left out.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.coco_format import read_json_object
from engine.errors import UserError
from engine.train.evaluate import coco_map

logger = logging.getLogger(__name__)

# An event's pts may differ from the truth's frame time by rounding (4 decimals in the events
# file) but not by a whole frame; a larger gap means the events come from another clip or rate.
_PTS_TOLERANCE_FRAMES = 0.5


@dataclass(frozen=True)
class ClipTruth:
    """Ground truth of one clip.

    Attributes:
        fps: the clip's frame rate.
        class_names: class names, indexed by class index.
        boxes: per frame, ``[M, 5]`` rows ``class, x1, y1, x2, y2`` in pixels.
        track_ids: per frame, ``[M]`` object ids of those rows (None when the file has none).
    """

    fps: float
    class_names: tuple[str, ...]
    boxes: list[np.ndarray]
    track_ids: list[np.ndarray] | None = None


@dataclass(frozen=True)
class FrameEvent:
    """One processed frame of a run.

    Attributes:
        frame: source frame index.
        pts: presentation time in seconds on the source's clock.
        wall_time: capture time, ``time.time()``.
        available_at: when the result was ready, on the same clock as ``wall_time``.
        exit: the exit the frame left through.
        detections: ``[K, 6]`` rows ``x1, y1, x2, y2, score, class`` in pixels.
        track_ids: ``[K]`` their track ids, ``-1`` for an untracked box; None when the run did not track.
    """

    frame: int
    pts: float
    wall_time: float
    available_at: float
    exit: int
    detections: np.ndarray
    track_ids: np.ndarray | None = None


def load_truth(path: str | Path) -> ClipTruth:
    """Read a clip's ground truth written by ``synth --video``.

    Raises:
        UserError: a missing or unreadable file, or one without ``info.fps`` and per-frame images.
    """
    path = Path(path)
    document = read_json_object(path, "truth file")
    try:
        fps = float(document["info"]["fps"])
        categories = sorted(document["categories"], key=lambda c: int(c["id"]))
        frame_of_image = {int(image["id"]): int(image["frame_index"]) for image in document["images"]}
        annotations = [(int(a["image_id"]), int(a["category_id"]), [float(v) for v in a["bbox"]],
                        None if a.get("track_id") is None else int(a["track_id"]))
                       for a in document.get("annotations", []) if not a.get("iscrowd", 0)]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: not a clip's ground truth (needs info.fps, categories, and images with "
                        "frame_index, as synth --video writes)") from None
    if not math.isfinite(fps) or fps <= 0 or sorted(frame_of_image.values()) != list(range(len(frame_of_image))):
        raise UserError(f"{path}: needs a positive info.fps and one image per frame, frame_index 0, 1, 2, ...")
    class_of_category = {int(c["id"]): index for index, c in enumerate(categories)}
    rows: dict[int, list[list[float]]] = defaultdict(list)
    ids: dict[int, list[int]] = defaultdict(list)
    for image_id, category, (x, y, w, h), track_id in annotations:
        if image_id not in frame_of_image or category not in class_of_category:
            raise UserError(f"{path}: an annotation names unknown image {image_id} or category {category}")
        rows[frame_of_image[image_id]].append([class_of_category[category], x, y, x + w, y + h])
        ids[frame_of_image[image_id]].append(-1 if track_id is None else track_id)
    frames = range(len(frame_of_image))
    boxes = [np.asarray(rows[i], dtype=np.float64).reshape(-1, 5) for i in frames]
    tracked = bool(annotations) and all(a[3] is not None for a in annotations)
    track_ids = [np.asarray(ids[i], dtype=np.int64) for i in frames] if tracked else None
    return ClipTruth(fps, tuple(str(c["name"]) for c in categories), boxes, track_ids)


def load_events(path: str | Path, class_names: Sequence[str]) -> list[FrameEvent]:
    """Read a ``run --events`` file, mapping detection labels to the truth's class indices.

    Returns:
        The events in frame order.

    Raises:
        UserError: a missing file, a line that is not an event, a label the truth does not know,
            or a frame that appears twice; the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"events file not found: {path}")
    index_of = {name: i for i, name in enumerate(class_names)}
    events = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    events.append(_parse_event(line, index_of, f"{path}:{number}"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file of JSON lines") from None
    if not events:
        raise UserError(f"{path}: no events (is it the file written by run --events?)")
    events.sort(key=lambda e: e.frame)
    repeated = next((a.frame for a, b in pairwise(events) if a.frame == b.frame), None)
    if repeated is not None:
        raise UserError(f"{path}: frame {repeated} appears twice; give one run's events per file")
    return events


def _parse_event(line: str, index_of: dict[str, int], where: str) -> FrameEvent:
    try:
        record = json.loads(line)
        rows = [_detection_row(d, index_of, where) for d in record["detections"]]
        tracked = bool(record["detections"]) and all("track_id" in d for d in record["detections"])
        track_ids = np.asarray([-1 if d["track_id"] is None else int(d["track_id"]) for d in record["detections"]],
                               dtype=np.int64) if tracked else None
        wall_time = float(record["wall_time"])
        event = FrameEvent(
            frame=int(record["frame"]), pts=float(record["pts"]), wall_time=wall_time,
            available_at=wall_time + float(record["latency_ms"]) / 1000, exit=int(record["exit"]),
            detections=np.asarray(rows, dtype=np.float64).reshape(-1, 6), track_ids=track_ids,
        )
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not JSON ({exc.msg})") from None
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{where}: not an event (needs frame, pts, wall_time, latency_ms, exit and "
                        "detections with box, score and label, as run --events writes)") from None
    if event.frame < 0 or not all(map(math.isfinite, (event.pts, event.wall_time, event.available_at))):
        raise UserError(f"{where}: negative frame index or a time that is not a finite number")
    return event


def _detection_row(detection: dict[str, Any], index_of: dict[str, int], where: str) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in detection["box"])
    label = detection.get("label")
    # Names, not indices, tie a model to the truth: a model trained with its classes in another
    # order must not score as if it confused them.
    if label is None:
        class_index = int(detection["class"])
    elif label in index_of:
        class_index = index_of[label]
    else:
        raise UserError(f"{where}: label {label!r} is not a class of the truth file ({', '.join(index_of)})")
    return [x1, y1, x2, y2, float(detection["score"]), class_index]


def check_same_clip(events: Sequence[FrameEvent], truth: ClipTruth, events_name: str) -> None:
    """Refuse events whose frames the truth does not have, or whose timing belongs to another frame rate."""
    last = events[-1]
    if last.frame >= len(truth.boxes):
        raise UserError(f"{events_name}: frame {last.frame} is beyond the truth's {len(truth.boxes)} frames "
                        "(another clip, or a run with --loop?)")
    for event in events:
        if abs(event.pts * truth.fps - event.frame) > _PTS_TOLERANCE_FRAMES:
            raise UserError(f"{events_name}: frame {event.frame} has pts {event.pts:g} s, but the truth's "
                            f"{truth.fps:g} fps puts it at {event.frame / truth.fps:g} s (another clip?)")


def latest_results(events: Sequence[FrameEvent], fps: float) -> list[int | None]:
    """For each source frame up to the last processed one, the event whose result it shows.

    Returns:
        Per source frame ``i`` (``0..events[-1].frame``), the position in ``events`` of the result
        that became available last at or before ``t_i`` (see the module docstring), or ``None``
        before the first result.
    """
    start = events[0].wall_time - events[0].pts
    shows_from = [max(e.available_at, start + e.frame / fps) for e in events]
    by_arrival = sorted(range(len(events)), key=lambda k: (shows_from[k], events[k].frame))
    shown: list[int | None] = []
    current, arrived = None, 0
    for i in range(events[-1].frame + 1):
        due = start + i / fps
        while arrived < len(by_arrival) and shows_from[by_arrival[arrived]] <= due:
            current, arrived = by_arrival[arrived], arrived + 1
        shown.append(current)
    return shown


def evaluate_events_file(events_path: str | Path, truth_path: str | Path) -> dict[str, float | int | None]:
    """Load, check and score one run's events file against its clip's truth file (:func:`evaluate_stream`)."""
    truth = load_truth(truth_path)
    events = load_events(events_path, truth.class_names)
    check_same_clip(events, truth, str(events_path))
    return evaluate_stream(events, truth)


def evaluate_stream(events: Sequence[FrameEvent], truth: ClipTruth) -> dict[str, float | int | None]:
    """Offline and streaming mAP of one run (see the module docstring), plus what shaped them.

    Args:
        events: the run's processed frames in frame order (:func:`load_events`), all within the truth.
        truth: the clip's ground truth.

    Returns:
        ``map``, ``map50`` (processed frames), ``streaming_map``, ``streaming_map50`` (every source
        frame up to the last processed one), ``frames`` (source frames scored), ``processed``,
        ``second_exit_fraction``, ``mean_latency_ms`` and ``mean_result_age_frames`` (how many
        frames old the shown result was, over the frames that showed one).
    """
    num_classes = len(truth.class_names)
    offline = coco_map([e.detections for e in events], [truth.boxes[e.frame] for e in events], num_classes)
    shown = latest_results(events, truth.fps)
    empty = np.zeros((0, 6))
    streamed = coco_map([empty if k is None else events[k].detections for k in shown], truth.boxes[: len(shown)],
                        num_classes)
    ages = [i - events[k].frame for i, k in enumerate(shown) if k is not None]
    return {
        "map": round(offline["map"], 4),
        "map50": round(offline["map50"], 4),
        "streaming_map": round(streamed["map"], 4),
        "streaming_map50": round(streamed["map50"], 4),
        "frames": len(shown),
        "processed": len(events),
        "second_exit_fraction": round(sum(e.exit == 2 for e in events) / len(events), 4),
        "mean_latency_ms": round(1000 * float(np.mean([e.available_at - e.wall_time for e in events])), 2),
        "mean_result_age_frames": round(float(np.mean(ages)), 3) if ages else None,
        **tracking_scores(events, truth),
    }


def tracking_scores(events: Sequence[FrameEvent], truth: ClipTruth) -> dict[str, float | None]:
    """``mota``, ``idf1`` and ``hota`` of the processed frames (see the module docstring).

    All three are None when the truth has no track ids or the run did not track (no event
    carries ``track_id``).
    """
    import motrics

    tracked = any(e.track_ids is not None for e in events)
    if truth.track_ids is None or not tracked:
        return {"mota": None, "idf1": None, "hota": None}
    pred_ids, pred_boxes = [], []
    for event in events:
        ids = event.track_ids if event.track_ids is not None else np.full(len(event.detections), -1)
        keep = ids >= 0
        pred_ids.append(ids[keep])
        pred_boxes.append(event.detections[keep, :4])
    gt = motrics.Frames(ids=[truth.track_ids[e.frame] for e in events], boxes=[truth.boxes[e.frame][:, 1:5]
                                                                               for e in events])
    scores = motrics.evaluate(gt, motrics.Frames(ids=pred_ids, boxes=pred_boxes))
    return {"mota": round(float(scores.clear.mota), 4), "idf1": round(float(scores.identity.idf1), 4),
            "hota": round(float(scores.hota.hota), 4)}


