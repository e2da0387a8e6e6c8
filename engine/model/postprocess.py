"""Pre- and post-processing: letterbox, batched class-aware NMS, boxes back to image pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torchvision

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
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.orig_width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.orig_height)
        return out


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


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """Equal-sized H x W x 3 uint8 RGB images -> ``[N, 3, H, W]`` float32 in [0, 1]."""
    batch = np.stack(images) if len(images) > 1 else images[0][None]
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def nms(predictions: torch.Tensor, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
        max_detections: int = 300, max_candidates: int = 10_000) -> list[torch.Tensor]:
    """Class-aware NMS per image.

    Args:
        predictions: ``[N, A, 5 + C]`` decoded (cx, cy, w, h, objectness, class probabilities).

    Returns:
        One ``[K, 6]`` tensor per image: x1, y1, x2, y2, score, class id (score = obj x class prob).
    """
    results = []
    for pred in predictions:  # [A, 5 + C]
        pred = pred[pred[:, 4] > conf_threshold]  # objectness bounds the score: cheap pre-filter
        if not len(pred):
            results.append(pred.new_zeros((0, 6)))
            continue
        class_scores = pred[:, 5:] * pred[:, 4:5]
        score, cls = class_scores.max(1)
        keep = score > conf_threshold
        pred, score, cls = pred[keep], score[keep], cls[keep]
        if len(score) > max_candidates:
            top = score.topk(max_candidates).indices
            pred, score, cls = pred[top], score[top], cls[top]
        boxes = torchvision.ops.box_convert(pred[:, :4], "cxcywh", "xyxy")
        kept = torchvision.ops.batched_nms(boxes, score, cls, iou_threshold)[:max_detections]
        results.append(torch.cat([boxes[kept], score[kept, None], cls[kept, None].float()], 1))
    return results
