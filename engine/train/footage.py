"""A user's own footage as calibration input: router scores of frames spread over a video or image folder.

No labels are needed. The thresholds a calibration stores are quantiles of the router's scores and
the exit costs are timed on synthetic input, so unlabelled footage from the cameras the model will
watch is enough, and it is closer to them than any labelled set. Frames are read by the readers
``run`` uses and letterboxed by the packer its predictor uses, one frame per batch as ``run`` feeds
them, so the scores are the ones ``run`` will see on the same footage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from engine.errors import SourceError
from engine.model.postprocess import InputPacker
from engine.runtime.readers import make_reader
from engine.runtime.sources import SourceInfo, SourceKind, parse_source

#: Frames scored when no count is asked for: enough for thresholds at every tenth of the range.
DEFAULT_FRAMES = 300
#: Seconds a file may take to open or to deliver data (local files answer at once).
READ_TIMEOUT_S = 30.0

T = TypeVar("T")


class EvenSample(Generic[T]):
    """At most ``capacity`` items at evenly spaced positions of a sequence, whose length may be unknown.

    Positions are grouped into slots of ``spacing`` consecutive positions (``length / capacity``
    when the length is known, else 1) and the first position of each slot is kept. When more
    slots turn up than ``capacity`` (the length was unknown, or a file's header undercounted its
    frames), the spacing doubles and neighbouring slots merge, so the sample always spans all of
    the sequence seen so far. Ask :meth:`wants` before computing an item, so that skipped
    positions cost nothing.

    Args:
        capacity: the most items kept.
        length: the sequence's length, when known in advance.
    """

    def __init__(self, capacity: int, length: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.spacing = Fraction(length, capacity) if length and length > capacity else Fraction(1)
        self._kept: dict[int, tuple[int, T]] = {}  # slot -> (position, item), in position order

    def __len__(self) -> int:
        return len(self._kept)

    def wants(self, position: int) -> bool:
        """Whether an item at ``position`` (increasing from call to call) would be kept."""
        return self._slot(position) not in self._kept

    def add(self, position: int, item: T) -> None:
        """Keep ``item`` if its slot is still free; positions must increase from call to call."""
        if not self.wants(position):
            return
        self._kept[self._slot(position)] = (position, item)
        while len(self._kept) > self.capacity:
            self.spacing *= 2
            merged: dict[int, tuple[int, T]] = {}
            for kept_position, kept in self._kept.values():
                merged.setdefault(self._slot(kept_position), (kept_position, kept))
            self._kept = merged

    @property
    def positions(self) -> list[int]:
        return [position for position, _ in self._kept.values()]

    @property
    def items(self) -> list[T]:
        return [item for _, item in self._kept.values()]

    def _slot(self, position: int) -> int:
        return int(position / self.spacing)


@dataclass(frozen=True)
class FootageScores:
    """Router scores of the frames sampled from a source.

    Attributes:
        scores: raw easiness scores of the sampled frames, in source order.
        frames_read: frames decoded from the source (sampled or not).
        warning: the reader's note on unreadable data it skipped, if any.
    """

    scores: np.ndarray
    frames_read: int
    warning: str | None = None


class Footage:
    """A video file or an image folder opened for calibration; a context manager that closes it.

    Raises:
        SourceError: one line naming the source: a missing path, an empty file, a folder with no
            (readable) images, a file that is not a readable video, or a live source.
    """

    def __init__(self, source: str) -> None:
        spec = parse_source(source)
        if spec.kind not in (SourceKind.FILE, SourceKind.IMAGES):
            raise SourceError(f"{spec.display}: calibration reads a video file or an image folder, not a live "
                              "source (record some footage to a file first)")
        self.display = spec.display
        self._reader = make_reader(spec, open_timeout=READ_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, folder_fps=25.0)
        self.info: SourceInfo = self._reader.open()

    def __enter__(self) -> Footage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @torch.no_grad()
    def router_scores(self, model: Any, imgsz: int, stride: int, max_frames: int = DEFAULT_FRAMES,
                      on_frame: Callable[[int], None] | None = None) -> FootageScores:
        """Read the whole source and score up to ``max_frames`` frames spread evenly over it.

        Args:
            model: anything with ``router_score(images [1, 3, H, W]) -> [1]`` (a cascade, or a
                backend seen through one).
            imgsz: network input size; frames are letterboxed as ``run`` letterboxes them.
            stride: the model's stride (input sides are padded to a multiple of it).
            max_frames: the most frames scored.
            on_frame: called with the number of frames sampled so far after each frame read.
        """
        sample: EvenSample[float] = EvenSample(max_frames, self.info.frame_count)
        packer = InputPacker(imgsz, stride)
        model.eval()
        read = 0
        for position, frame in enumerate(self._reader.frames()):
            read += 1
            if sample.wants(position):
                batch, _ = packer.pack([frame.image])  # [1, 3, H, W] float32 in [0, 1]
                sample.add(position, float(model.router_score(torch.from_numpy(batch))[0]))
            if on_frame is not None:
                on_frame(len(sample))
        if not len(sample):
            raise SourceError(f"{self.display}: no frame could be read")
        damage = self._reader.damage
        return FootageScores(np.asarray(sample.items, np.float64), read, None if damage is None else str(damage))
