"""ByteTrack on arrays: every track's Kalman state stepped in one batch per frame.

ByteTrack (Zhang et al., ECCV 2022) associates detections with Kalman-predicted tracks by IoU in
two passes: high-score boxes first, then the low-score boxes left over, which keeps an object's
id while its score dips. The association rules here are those of supervision's ``ByteTrack``
(0.30), the tracker this project used before: the same passes, thresholds, track states and
id numbering, so ids and events come out the same (``tests/engine/tracking/test_byte_track.py``
steps both on the same sequences). What differs is the arithmetic: supervision keeps one Python
object per track and runs a dozen small NumPy calls per track and per frame (3.3 ms a frame for
nine objects on this project's 2-core machines, on a thread that competes with inference); here
the Kalman predict and correct steps, the tracks' boxes and the IoU matrices run as compiled
loops over the tracks (:mod:`engine.tracking.kalman_kernels`,
:func:`engine.model.box_kernels.iou_cost`): 0.52 -> 0.27 ms a frame on the demo's detections
against the batched NumPy steps they replaced, same ids, less time holding the GIL the engine's
workers wait for. A track's box is computed once per frame, not once per use.

State space per track: ``(cx, cy, a, h, vcx, vcy, va, vh)`` (centre, aspect w/h, height and their
velocities), constant velocity, noise proportional to the height.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from scipy.optimize import linear_sum_assignment

from engine.model import box_kernels
from engine.model.box_kernels import iou_cost
from engine.tracking import kalman_kernels
from engine.tracking.kalman_kernels import correct, predict_boxes, state_boxes

#: Noise of positions and of velocities, as a share of the box height per frame; the aspect
#: ratio's noise is a constant instead. Per state (or measured) component: standard deviation
#: = height x scale + floor.
_POSITION_NOISE = 1 / 20
_VELOCITY_NOISE = 1 / 160
_PROCESS_NOISE_SCALE = np.array([_POSITION_NOISE, _POSITION_NOISE, 0, _POSITION_NOISE,
                                 _VELOCITY_NOISE, _VELOCITY_NOISE, 0, _VELOCITY_NOISE])
_NOISE_FLOOR = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])  # standard deviation of the aspect ratio and its rate
_PROCESS_NOISE_FLOOR = _NOISE_FLOOR ** 2  # added as variance
_MEASUREMENT_NOISE_SCALE = np.array([_POSITION_NOISE, _POSITION_NOISE, 0, _POSITION_NOISE])
_MEASUREMENT_NOISE_FLOOR = np.array([0, 0, 1e-1, 0]) ** 2  # added as variance
#: A new track is twice as unsure of its position and ten times of its velocity.
_INITIAL_NOISE_SCALE = _PROCESS_NOISE_SCALE * [2, 2, 0, 2, 10, 10, 0, 10]
#: Boxes scoring at or below this never take part, not even in the second (low-score) pass.
_LOWEST_SCORE = 0.1
#: Largest ``1 - IoU`` accepted in the low-score pass, for unconfirmed tracks, and between a
#: track's corrected box and the detection reported with its id.
_SECOND_PASS_COST = 0.5
_UNCONFIRMED_COST = 0.7
_REPORT_COST = 0.5
#: Tracked and lost tracks closer than this ``1 - IoU`` are one object: the younger one goes.
_DUPLICATE_COST = 0.05


class State(IntEnum):
    TRACKED = 1
    LOST = 2
    REMOVED = 3


class _Track:
    """One track's bookkeeping; its Kalman state is row ``row`` of its tracker's arrays. ``key``
    orders and identifies tracks internally; ``track_id`` is the id shown to users, given once
    the track is confirmed."""

    __slots__ = ("confirmed", "frame", "key", "length", "row", "score", "start", "state", "track_id")

    def __init__(self, key: int, row: int, score: float, frame: int) -> None:
        self.key = key
        self.track_id = -1
        self.row = row
        self.score = score
        self.state = State.TRACKED
        self.confirmed = False
        self.frame = frame
        self.start = frame
        self.length = 1


class ByteTrack:
    """Multi-object tracker: one :meth:`update` per processed frame.

    Args:
        activation_score: boxes at or above this score start and extend tracks; a new track
            needs ``activation_score + 0.1``.
        lost_frames: frames a lost track is kept before it ends.
        match_cost: largest ``1 - IoU x score`` accepted in the first association.
    """

    def __init__(self, activation_score: float = 0.25, lost_frames: int = 30, match_cost: float = 0.8) -> None:
        self.activation_score = activation_score
        self.birth_score = activation_score + 0.1 if activation_score + 0.1 <= 1 else activation_score
        self.lost_frames = lost_frames
        self.match_cost = match_cost
        self.frame = 0
        self.tracked: list[_Track] = []
        self.lost: list[_Track] = []
        self._removed: list[_Track] = []  # the previous frame's removals (see _settle)
        self._mean = np.zeros((0, 8))  # Kalman means, one row per kept track
        self._cov = np.zeros((0, 8, 8))
        self._next_key = 0
        self._next_id = 1
        # Compiled (or loaded from Numba's cache) now, before frames flow: compiled on the first
        # frame instead, a fresh install's tracking thread sat compiling past the engine's wait
        # for it at the end of a short file, and that file's results were lost.
        box_kernels.compile_now()
        kalman_kernels.compile_now()

    @property
    def live_ids(self) -> set[int]:
        """Ids of every track still kept (tracked or lost); -1 stands for unconfirmed ones."""
        return {t.track_id for t in (*self.tracked, *self.lost)}

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Step with one frame's ``[N, 4]`` xyxy boxes and ``[N]`` scores; each box's track id
        (-1 where no confirmed track claims it)."""
        self.frame += 1
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        valid = (np.isfinite(boxes).all(1) & np.isfinite(scores)
                 & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        tlwh = boxes[valid]
        tlwh[:, 2:] -= tlwh[:, :2]
        kept_scores = scores[valid]
        high = kept_scores >= self.activation_score
        low = (kept_scores > _LOWEST_SCORE) & ~high
        measured: list[tuple[_Track, int, bool]] = []  # (track, its box's row in matched_tlwh, re-found)
        matched_tlwh: list[np.ndarray] = []
        matched_scores: list[np.ndarray] = []

        def take(track: _Track, tlwh_rows: np.ndarray, score_rows: np.ndarray, col: int, refound: bool) -> None:
            measured.append((track, col, refound))
            matched_tlwh.append(tlwh_rows[col])
            matched_scores.append(score_rows[col])

        unconfirmed = [t for t in self.tracked if not t.confirmed]
        pool = _union([t for t in self.tracked if t.confirmed], self.lost)
        pool_boxes = self._predict(pool)
        # First pass: high-score boxes against every confirmed or lost track, IoU weighted by score.
        det_tlwh, det_scores = tlwh[high], kept_scores[high]
        cost = 1 - (1 - _iou_cost(pool_boxes, _tlbr(det_tlwh))) * det_scores[None, :]
        matches, free_tracks, free_dets = _assign(cost, self.match_cost)
        for row, col in matches:
            take(pool[row], det_tlwh, det_scores, col, pool[row].state != State.TRACKED)
        # Second pass: low-score boxes against the tracks that were tracked and are still unmatched.
        free_tracks = [i for i in free_tracks if pool[i].state == State.TRACKED]
        second = [pool[i] for i in free_tracks]
        low_tlwh, low_scores = tlwh[low], kept_scores[low]
        matches, still_free, _ = _assign(_iou_cost(pool_boxes[free_tracks], _tlbr(low_tlwh)), _SECOND_PASS_COST)
        for row, col in matches:
            take(second[row], low_tlwh, low_scores, col, False)
        newly_lost = [second[i] for i in still_free]
        for track in newly_lost:
            track.state = State.LOST
        # Tracks seen in one frame only get one chance, against the high-score boxes left over.
        det_tlwh, det_scores = det_tlwh[free_dets], det_scores[free_dets]
        cost = 1 - (1 - _iou_cost(self._boxes(unconfirmed), _tlbr(det_tlwh))) * det_scores[None, :]
        matches, dropped, births = _assign(cost, _UNCONFIRMED_COST)
        for row, col in matches:
            take(unconfirmed[row], det_tlwh, det_scores, col, False)
        removed = [unconfirmed[i] for i in dropped]
        for track in removed:
            track.state = State.REMOVED
        if measured:
            self._correct([t.row for t, _, _ in measured], np.stack(matched_tlwh))
        for (track, _, refound), score in zip(measured, matched_scores):
            track.score = float(score)
            track.frame = self.frame
            track.state = State.TRACKED
            if refound:
                track.length = 0
            else:
                track.length += 1
                self._confirm(track)
        born = self._start([i for i in births if det_scores[i] >= self.birth_score], det_tlwh, det_scores)
        self._settle([(t, refound) for t, _, refound in measured], born, newly_lost, removed)
        shown = [t for t in self.tracked if t.confirmed]
        return self._report(boxes, shown)

    def _confirm(self, track: _Track) -> None:
        track.confirmed = True
        if track.track_id < 0:
            track.track_id = self._next_id
            self._next_id += 1

    def _predict(self, tracks: list[_Track]) -> np.ndarray:
        """One constant-velocity step for ``tracks`` at once (a lost track's height stops
        changing); their predicted boxes."""
        if not tracks:
            return np.empty((0, 4))
        rows = np.array([t.row for t in tracks], np.int64)
        lost = np.array([t.state != State.TRACKED for t in tracks])
        return predict_boxes(self._mean, self._cov, rows, lost, _PROCESS_NOISE_SCALE, _PROCESS_NOISE_FLOOR)

    def _correct(self, rows: list[int], tlwh: np.ndarray) -> None:
        """The Kalman correction of the tracks at ``rows`` with their boxes."""
        correct(self._mean, self._cov, np.array(rows, np.int64), _xyah(tlwh).astype(np.float64),
                _MEASUREMENT_NOISE_SCALE, _MEASUREMENT_NOISE_FLOOR)

    def _boxes(self, tracks: list[_Track]) -> np.ndarray:
        return state_boxes(self._mean, np.array([t.row for t in tracks], np.int64))

    def _start(self, picked: list[int], tlwh: np.ndarray, scores: np.ndarray) -> list[_Track]:
        """New tracks for the unclaimed high-score boxes ``picked``; confirmed at once only on the first frame."""
        if not picked:
            return []
        xyah = _xyah(tlwh[picked])
        means = np.zeros((len(picked), 8))
        means[:, :4] = xyah
        covs = _diagonal((means[:, 3:4] * _INITIAL_NOISE_SCALE + _NOISE_FLOOR) ** 2)
        first_row = len(self._mean)
        self._mean = np.concatenate([self._mean, means])
        self._cov = np.concatenate([self._cov, covs])
        born = []
        for n, i in enumerate(picked):
            track = _Track(self._next_key, first_row + n, float(scores[i]), self.frame)
            self._next_key += 1
            if self.frame == 1:
                self._confirm(track)
            born.append(track)
        return born

    def _settle(self, measured: list[tuple[_Track, bool]], born: list[_Track], newly_lost: list[_Track],
                removed: list[_Track]) -> None:
        """The track lists after this frame: lost tracks past ``lost_frames`` removed, duplicates
        dropped, the state arrays compacted to the tracks kept.

        A lost track removed now leaves the lost list only at the next frame (it can still be
        re-found once), as in the reference tracker; ids and ended-track reports depend on it.
        """
        for track in self.lost:
            if self.frame - track.frame > self.lost_frames:
                track.state = State.REMOVED
                removed.append(track)
        updated = [t for t, refound in measured if not refound]
        refound = [t for t, again in measured if again]
        tracked = _union(_union([t for t in self.tracked if t.state == State.TRACKED], updated + born), refound)
        tracked_keys = {t.key for t in tracked}
        lost = _without(self.lost, tracked_keys) + newly_lost
        lost = _without(_unique(lost), {t.key for t in self._removed})
        self._removed = removed
        self.tracked, self.lost = self._drop_duplicates(tracked, lost)
        kept = self.tracked + self.lost
        rows = [t.row for t in kept]
        self._mean, self._cov = self._mean[rows], self._cov[rows]
        for row, track in enumerate(kept):
            track.row = row


    def _drop_duplicates(self, tracked: list[_Track], lost: list[_Track]) -> tuple[list[_Track], list[_Track]]:
        """Where a tracked and a lost track cover the same box, keep the one followed longer."""
        if not tracked or not lost:
            return tracked, lost
        cost = _iou_cost(self._boxes(tracked), self._boxes(lost))
        drop_tracked, drop_lost = set(), set()
        for i, j in zip(*np.nonzero(cost < _DUPLICATE_COST)):
            if tracked[i].frame - tracked[i].start > lost[j].frame - lost[j].start:
                drop_lost.add(j)
            else:
                drop_tracked.add(i)
        return ([t for i, t in enumerate(tracked) if i not in drop_tracked],
                [t for j, t in enumerate(lost) if j not in drop_lost])

    def _report(self, boxes: np.ndarray, shown: list[_Track]) -> np.ndarray:
        """Each input box gets the id of the confirmed track whose corrected box it overlaps best
        (Hungarian on IoU, at least 0.5), so the ids follow the input order and unclaimed boxes stay -1."""
        ids = np.full(len(boxes), -1, np.int64)
        if not shown or not len(boxes):
            return ids
        matches, _, _ = _assign(_iou_cost(boxes, self._boxes(shown), float32=False), _REPORT_COST)
        for row, col in matches:
            ids[row] = shown[col].track_id
        return ids


def _diagonal(values: np.ndarray) -> np.ndarray:
    """``[N, D]`` -> ``[N, D, D]`` diagonal matrices."""
    out = np.zeros((*values.shape, values.shape[1]))
    out[:, np.arange(values.shape[1]), np.arange(values.shape[1])] = values
    return out


def _xyah(tlwh: np.ndarray) -> np.ndarray:
    """``[N, 4]`` float32 (left, top, width, height) -> (centre x, centre y, width / height, height)."""
    out = tlwh.copy()
    out[:, :2] += out[:, 2:] / 2
    out[:, 2] /= out[:, 3]
    return out


def _tlbr(tlwh: np.ndarray) -> np.ndarray:
    out = tlwh.copy()
    out[:, 2:] += out[:, :2]
    return out


def _iou_cost(a: np.ndarray, b: np.ndarray, float32: bool = True) -> np.ndarray:
    """``1 - IoU`` of every box in ``a`` against every box in ``b`` (xyxy), as float32; the
    boxes are first rounded to float32 unless ``float32`` is False."""
    if not len(a) or not len(b):
        return np.empty((len(a), len(b)), np.float32)
    if float32:
        a, b = a.astype(np.float32), b.astype(np.float32)
    return iou_cost(np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64))


def _assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost one-to-one matching keeping pairs with cost at most ``limit``: the matches
    (by row), then the unmatched rows and columns.

    The unmatched come in the order of a Python set of their indices, not sorted: the reference
    tracker lists them so, and that order decides which new track gets which id.
    """
    rows, cols = cost.shape
    if not cost.size:
        return [], list(range(rows)), list(range(cols))
    r, c = linear_sum_assignment(np.where(cost > limit, np.float32(limit + 1e-4), cost))
    ok = cost[r, c] <= limit
    matched_rows, matched_cols = r[ok].tolist(), c[ok].tolist()
    return (list(zip(matched_rows, matched_cols)), list(set(range(rows)) - set(matched_rows)),
            list(set(range(cols)) - set(matched_cols)))

def _union(first: list[_Track], second: list[_Track]) -> list[_Track]:
    """``first`` then the tracks of ``second`` not already in it, in order."""
    return _unique(first + second)


def _unique(tracks: list[_Track]) -> list[_Track]:
    seen: set[int] = set()
    out = []
    for track in tracks:
        if track.key not in seen:
            seen.add(track.key)
            out.append(track)
    return out


def _without(tracks: list[_Track], keys: set[int]) -> list[_Track]:
    return [t for t in tracks if t.key not in keys]
