"""Pre- and post-processing: letterbox, batched class-aware NMS, boxes back to image pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from engine.model.box_kernels import boxes_to_original, nms_rows

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input: ``input = original * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    orig_width: int
    orig_height: int
    input_width: int
    input_height: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """``[K, 4]`` xyxy boxes in input pixels -> original pixels, clipped to the image."""
        # Floats throughout: the kernel is compiled (and cached by setup) for one signature.
        return boxes_to_original(np.asarray(boxes, np.float32), float(self.pad_x), float(self.pad_y),
                                 1 / self.scale, float(self.orig_width), float(self.orig_height))


def letterbox_shape(width: int, height: int, imgsz: int, stride: int = 32, square: bool = False
                    ) -> tuple[int, int, float]:
    """(input width, input height, scale) for an image: longer side to ``imgsz``, sides padded
    to a multiple of ``stride`` (or to ``imgsz`` x ``imgsz`` when ``square``)."""
    scale = imgsz / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if square:
        return imgsz, imgsz, scale
    return int(np.ceil(new_w / stride) * stride), int(np.ceil(new_h / stride) * stride), scale


def letterbox(image: np.ndarray, imgsz: int, stride: int = 32, square: bool = False,
              out_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (H x W x 3 uint8) keeping its aspect ratio and pad it, centred.

    ``out_shape`` (width, height) forces the padded size, so frames of a stream batch alike.
    """
    h, w = image.shape[:2]
    in_w, in_h, scale = letterbox_shape(w, h, imgsz, stride, square)
    if out_shape is not None:
        in_w, in_h = out_shape
        scale = min(in_w / w, in_h / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image if (new_w, new_h) == (w, h) else cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    pad_x, pad_y = (in_w - new_w) / 2, (in_h - new_h) / 2
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    canvas = np.full((in_h, in_w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas, Letterbox(scale, left, top, w, h, in_w, in_h)


@dataclass(frozen=True)
class PreparedImage:
    """An image already letterboxed to the network's input, ahead of the model call (on a capture
    thread: see :meth:`engine.model.predictor.Predictor.prepare`).

    Attributes:
        pixels: ``H x W x 3`` uint8 RGB at the network's input size, C-contiguous.
        letterbox: how the original image was fitted into ``pixels``.
    """

    pixels: np.ndarray
    letterbox: Letterbox


def prepare_image(image: np.ndarray, imgsz: int, stride: int = 32) -> PreparedImage:
    """``image`` letterboxed as :class:`InputPacker` would pack it, into an array of its own."""
    pixels, box = letterbox(image, imgsz, stride)
    return PreparedImage(pixels, box)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """Equal-sized H x W x 3 uint8 RGB images -> ``[N, 3, H, W]`` float32 in [0, 1]."""
    batch = np.stack(images) if len(images) > 1 else images[0][None]
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


@dataclass(frozen=True)
class _Placement:
    """Where one image lands in its batch slot: resized size and top-left offset."""

    image_size: tuple[int, int]  # (height, width) of the source image
    new_size: tuple[int, int]  # (height, width) after resizing
    top: int
    left: int


INPUT_LAYOUTS = ("nchw_float", "nhwc_uint8")


class InputPacker:
    """Letterboxes uint8 RGB images straight into one reused input batch.

    ``layout`` is what the backend reads (its ``input_layout``): ``nchw_float`` a float32
    ``[N, 3, H, W]`` batch in [0, 1]; ``nhwc_uint8`` the letterboxed pixels themselves, ``[N, H, W, 3]``
    uint8, for a backend that converts them inside its graph. Per image, one resize into a reused
    buffer (for ``nhwc_uint8``, straight into the batch slot when the image spans its whole width),
    and for ``nchw_float`` one split into reused planes and one scaled conversion into the slot; the
    padding is written only when a slot's placement changes. So a stream of equal-sized frames
    allocates nothing per frame.

    The returned batch is this packer's own buffer: it stays valid until the next :meth:`pack`.
    """

    def __init__(self, imgsz: int, stride: int = 32, layout: str = "nchw_float") -> None:
        if layout not in INPUT_LAYOUTS:
            raise ValueError(f"layout must be one of {INPUT_LAYOUTS}, got {layout!r}")
        self.imgsz = imgsz
        self.stride = stride
        self.layout = layout
        self._batch = np.empty((0, 0, 0, 0), np.uint8 if layout == "nhwc_uint8" else np.float32)
        self._placements: list[_Placement | None] = []
        self._resized: dict[tuple[int, int], tuple[np.ndarray, list[np.ndarray]]] = {}

    def pack(self, images: Sequence[np.ndarray], prepared: Sequence[PreparedImage | None] | None = None
             ) -> tuple[np.ndarray, list[Letterbox]]:
        """Images (H x W x 3 uint8 RGB) -> (the batch, their letterboxes).

        The batch takes the input size of the first image; others are fitted into it. Where
        ``prepared`` holds an image's letterbox already made at the batch's input size, its
        pixels are used instead of resizing again; one prepared ``nhwc_uint8`` image is handed
        on as it is, without a copy.
        """
        h, w = images[0].shape[:2]
        in_w, in_h, _ = letterbox_shape(w, h, self.imgsz, self.stride)
        ready = [p if p is not None and p.pixels.shape == (in_h, in_w, 3) else None
                 for p in (prepared or [None] * len(images))]
        if len(images) == 1 and ready[0] is not None and self.layout == "nhwc_uint8":
            return ready[0].pixels[None], [ready[0].letterbox]
        shape = (len(images), in_h, in_w, 3) if self.layout == "nhwc_uint8" else (len(images), 3, in_h, in_w)
        if self._batch.shape != shape:
            self._batch = np.empty(shape, self._batch.dtype)
            self._placements = [None] * len(images)
        return self._batch, [self._pack_one(i, image, in_w, in_h) if ready[i] is None else self._copy_in(i, ready[i])
                             for i, image in enumerate(images)]

    def _copy_in(self, slot: int, prepared: PreparedImage) -> Letterbox:
        """A prepared image into its slot, padding included (so the slot's placement is forgotten)."""
        self._placements[slot] = None
        target = self._batch[slot]
        if self.layout == "nhwc_uint8":
            target[...] = prepared.pixels
        else:
            h, w = prepared.pixels.shape[:2]
            planes = self._buffers(h, w)[1]
            cv2.split(prepared.pixels, planes)
            for channel, plane in enumerate(planes):
                np.multiply(plane, np.float32(1 / 255), out=target[channel])
        return prepared.letterbox

    def _pack_one(self, slot: int, image: np.ndarray, in_w: int, in_h: int) -> Letterbox:
        h, w = image.shape[:2]
        scale = min(in_w / w, in_h / h)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        pad_x, pad_y = (in_w - new_w) / 2, (in_h - new_h) / 2
        left, top = round(pad_x - 0.1), round(pad_y - 0.1)  # as letterbox() places it
        placement = _Placement((h, w), (new_h, new_w), top, left)
        target = self._batch[slot]
        if self._placements[slot] != placement:
            target.fill(PAD_VALUE if self.layout == "nhwc_uint8" else PAD_VALUE / 255.0)
            self._placements[slot] = placement
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        if self.layout == "nhwc_uint8":
            region = target[top:top + new_h, left:left + new_w]
            if (new_w, new_h) == (w, h):
                region[...] = image
            elif new_w == in_w:  # whole rows: the region is contiguous, resize writes into the batch
                cv2.resize(image, (new_w, new_h), dst=region, interpolation=interpolation)
            else:
                region[...] = cv2.resize(image, (new_w, new_h), dst=self._buffers(new_h, new_w)[0],
                                         interpolation=interpolation)
            return Letterbox(scale, left, top, w, h, in_w, in_h)
        resized, planes = self._buffers(new_h, new_w)
        if (new_w, new_h) == (w, h):
            resized = np.ascontiguousarray(image)
        else:
            cv2.resize(image, (new_w, new_h), dst=resized, interpolation=interpolation)
        cv2.split(resized, planes)  # HWC -> three contiguous planes, vectorised
        for channel, plane in enumerate(planes):
            np.multiply(plane, np.float32(1 / 255), out=target[channel, top:top + new_h, left:left + new_w])
        return Letterbox(scale, left, top, w, h, in_w, in_h)

    def _buffers(self, height: int, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
        buffers = self._resized.get((height, width))
        if buffers is None:
            buffers = (np.empty((height, width, 3), np.uint8), [np.empty((height, width), np.uint8) for _ in range(3)])
            # A stream needs one size, or two where prepared frames (the padded input size) mix with
            # frames resized here (the unpadded one); keeping both spares a reallocation per frame.
            if len(self._resized) >= 2:
                self._resized.pop(next(iter(self._resized)))
            self._resized[(height, width)] = buffers
        return buffers


def nms(predictions: torch.Tensor | np.ndarray, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
        max_detections: int = 300, max_candidates: int = 10_000) -> list[torch.Tensor]:
    """Class-aware NMS per image (see :func:`~engine.model.box_kernels.nms_rows` for the rule).

    Args:
        predictions: ``[N, A, 5 + C]`` decoded (cx, cy, w, h, objectness, class probabilities).

    Returns:
        One ``[K, 6]`` float32 tensor per image: x1, y1, x2, y2, score, class id (score = obj x
        class prob), highest score first.
    """
    return [torch.from_numpy(rows) for rows in nms_arrays(predictions, conf_threshold, iou_threshold,
                                                           max_detections, max_candidates)]


def nms_arrays(predictions: torch.Tensor | np.ndarray, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
               max_detections: int = 300, max_candidates: int = 10_000) -> list[np.ndarray]:
    """:func:`nms` with arrays out: what the graph runtimes hand the predictor.

    No PyTorch operator runs on a whole prediction tensor (its thread pool would wake and compete
    with the inference runtime's threads): each image's rows go to one compiled call. Nor does a
    tensor wrap the result: freeing one drops the GIL and takes it back, which cost a worker
    0.19 ms a frame in the demo pipeline while the tracker and the capture threads held it.
    """
    if isinstance(predictions, torch.Tensor):
        predictions = predictions.detach().cpu().numpy()
    return [nms_rows(np.ascontiguousarray(pred, np.float32), conf_threshold, iou_threshold, max_detections,
                     max_candidates)
            for pred in predictions]
