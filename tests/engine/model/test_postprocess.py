"""The lean per-frame path: packing frames into a reused batch, and NMS on the candidates only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from engine.model.postprocess import InputPacker, letterbox, letterbox_shape, nms, nms_arrays, prepare_image, to_tensor


def _reference_pack(images, imgsz, stride=32):
    h, w = images[0].shape[:2]
    in_w, in_h, _ = letterbox_shape(w, h, imgsz, stride)
    boxed = [letterbox(image, imgsz, stride, out_shape=(in_w, in_h)) for image in images]
    return to_tensor([b[0] for b in boxed]).numpy(), [b[1] for b in boxed]


@pytest.mark.parametrize("shapes", [[(360, 640)], [(120, 200)], [(64, 96)], [(360, 640), (360, 640)],
                                    [(360, 640), (300, 300)]])
def test_packer_matches_letterbox_then_to_tensor(shapes):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    packer = InputPacker(128)
    ours, ours_boxes = packer.pack(images)
    expected, expected_boxes = _reference_pack(images, 128)
    assert ours.shape == expected.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert ours_boxes == expected_boxes


def test_packer_reuses_its_buffer_and_repads_when_the_frame_size_changes():
    rng = np.random.default_rng(1)
    packer = InputPacker(128)
    first, _ = packer.pack([rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)])
    buffer = first.ctypes.data
    second, _ = packer.pack([rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)])
    assert second.ctypes.data == buffer, "a stream of equal frames allocates no new batch"
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)  # same input size, less padding
    third, _ = packer.pack([image])
    np.testing.assert_allclose(third, _reference_pack([image], 128)[0], atol=1e-6)


@pytest.mark.parametrize("shapes", [[(360, 640)], [(128, 128)], [(64, 96)], [(360, 640), (300, 300)]])
def test_uint8_packer_writes_the_letterboxed_pixels(shapes):
    # (300, 300) beside a 640x360 frame is padded left and right: resized aside, then copied in.
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    packer = InputPacker(128, layout="nhwc_uint8")
    ours, ours_boxes = packer.pack(images)
    h, w = shapes[0]
    in_w, in_h, _ = letterbox_shape(w, h, 128)
    expected = [letterbox(image, 128, out_shape=(in_w, in_h)) for image in images]
    assert ours.dtype == np.uint8 and ours.shape == (len(images), in_h, in_w, 3)
    np.testing.assert_array_equal(ours, np.stack([e[0] for e in expected]))
    assert ours_boxes == [e[1] for e in expected]
    again, _ = packer.pack(images)
    assert again.ctypes.data == ours.ctypes.data


@pytest.mark.parametrize("layout", ["nchw_float", "nhwc_uint8"])
@pytest.mark.parametrize("shapes", [[(360, 640)], [(360, 640), (360, 640)], [(360, 640), (300, 300)],
                                    [(300, 300), (360, 640)]])
def test_prepared_images_pack_like_raw_ones(layout, shapes):
    # Frames letterboxed ahead (on capture threads) give the batch raw frames give; one prepared
    # at another input size (a second camera's) is packed from its raw image instead.
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    expected, expected_boxes = InputPacker(128, layout=layout).pack(images)
    expected = expected.copy()
    packer = InputPacker(128, layout=layout)
    packer.pack([rng.integers(0, 256, (*shapes[0], 3), dtype=np.uint8)] * len(images))  # a stale batch
    prepared = [prepare_image(image, 128) for image in images]
    ours, ours_boxes = packer.pack(images, prepared)
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert ours_boxes == expected_boxes
    if len(images) == 1 and layout == "nhwc_uint8":
        assert np.shares_memory(ours, prepared[0].pixels), "one prepared frame goes to the backend as it is"
    raw_again, _ = packer.pack(images, [None] * len(images))  # after prepared ones: padding rewritten
    np.testing.assert_allclose(raw_again, expected, atol=1e-6)


def _reference_nms(predictions, conf, iou, max_det):
    """The plain PyTorch formulation the fast path must equal."""
    results = []
    for pred in predictions:
        class_scores = pred[:, 5:] * pred[:, 4:5]
        score, cls = class_scores.max(1)
        keep = (pred[:, 4] > conf) & (score > conf)
        pred, score, cls = pred[keep], score[keep], cls[keep]
        boxes = torchvision.ops.box_convert(pred[:, :4], "cxcywh", "xyxy")
        kept = torchvision.ops.batched_nms(boxes, score, cls, iou)[:max_det]
        results.append(torch.cat([boxes[kept], score[kept, None], cls[kept, None].float()], 1))
    return results


@pytest.mark.parametrize("conf", [0.001, 0.25, 0.99])
def test_nms_equals_batched_nms_over_all_anchors(conf):
    generator = torch.Generator().manual_seed(0)
    n, anchors, classes = 3, 2000, 5
    centres = torch.rand(n, anchors, 2, generator=generator) * 300 - 20  # some boxes start off-image
    sizes = torch.rand(n, anchors, 2, generator=generator) * 60 + 2
    probabilities = torch.rand(n, anchors, 1 + classes, generator=generator) ** 3
    predictions = torch.cat([centres, sizes, probabilities], -1)
    ours = nms(predictions, conf, 0.45, 100)
    for mine, expected in zip(ours, _reference_nms(predictions, conf, 0.45, 100)):
        assert mine.dtype == torch.float32 and mine.shape == expected.shape
        torch.testing.assert_close(mine, expected, atol=1e-4, rtol=0)
    assert nms(predictions.numpy(), conf, 0.45, 100)[0].shape == ours[0].shape  # arrays too
    # The graph runtimes' path: the same rows as arrays (a tensor to free per frame cost a GIL round trip).
    for rows, mine in zip(nms_arrays(predictions.numpy(), conf, 0.45, 100), ours):
        assert isinstance(rows, np.ndarray) and np.array_equal(rows, mine.numpy())


def test_nms_of_an_image_without_candidates_is_empty():
    out = nms(torch.zeros(1, 10, 8), 0.25)
    assert out[0].shape == (0, 6)


def test_nms_considers_only_the_best_candidates_and_reads_any_layout():
    generator = torch.Generator().manual_seed(1)
    centres = torch.rand(1, 500, 2, generator=generator) * 200
    sizes = torch.rand(1, 500, 2, generator=generator) * 40 + 2
    predictions = torch.cat([centres, sizes, torch.rand(1, 500, 4, generator=generator)], -1)
    capped = nms(predictions, 0.05, 0.45, 300, max_candidates=40)[0]
    scores = (predictions[0, :, 5:] * predictions[0, :, 4:5]).max(1).values
    best = scores.argsort(descending=True)[:40]
    torch.testing.assert_close(capped, _reference_nms(predictions[:, best], 0.05, 0.45, 300)[0], atol=1e-4, rtol=0)
    # float64 and non-contiguous rows (a transposed view) give the same detections
    strided = np.ascontiguousarray(predictions.numpy().transpose(0, 2, 1)).astype(np.float64).transpose(0, 2, 1)
    torch.testing.assert_close(nms(strided, 0.05, 0.45, 300)[0], nms(predictions, 0.05, 0.45, 300)[0])


def test_boxes_go_back_through_the_letterbox_clipped_to_the_image():
    image = np.zeros((360, 640, 3), np.uint8)
    _, box = letterbox(image, 320)  # scale 0.5, 180 rows padded to 192: 6 above
    rows = np.array([[10, 16, 110, 66, 0.9, 1], [-5, 0, 400, 200, 0.5, 0]], np.float32)
    back = box.to_original(rows[:, :4])  # a view of the detection rows, as the predictor hands them
    np.testing.assert_allclose(back, [[20, 20, 220, 120], [0, 0, 640, 360]], atol=1e-4)
    assert back.dtype == np.float32 and back.flags.c_contiguous
    assert box.to_original(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_iou_cost_kernel_is_numpys_arithmetic_bit_for_bit():
    # The tracker's ids hang on exact ties between costs: the kernel must equal this NumPy
    # formula (float64, the quotient rounded to float32) bit for bit, empty and degenerate boxes too.
    from engine.model.box_kernels import iou_cost

    def numpy_cost(a, b):
        w = np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0])
        h = np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1])
        inter = np.maximum(w, 0) * np.maximum(h, 0)
        area_a, area_b = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        union = np.add.outer(area_a, area_b) - inter
        iou = np.zeros(inter.shape, np.float32)
        np.divide(inter, union, out=iou, where=union > 0, casting="unsafe")
        return 1 - iou

    rng = np.random.default_rng(3)
    for _ in range(300):
        a = rng.uniform(0, 300, (rng.integers(0, 9), 4)).astype(np.float32).astype(np.float64)
        b = rng.uniform(0, 300, (rng.integers(0, 9), 4)).astype(np.float32).astype(np.float64)
        a[:, 2:] = a[:, :2] + rng.uniform(0, 80, (len(a), 2)) * rng.integers(0, 2, (len(a), 1))  # some zero-area
        b[:, 2:] = b[:, :2] + rng.uniform(0, 80, (len(b), 2))
        got, want = iou_cost(a, b), numpy_cost(a, b)
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
        assert np.array_equal(got, want)
