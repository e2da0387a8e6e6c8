"""Still scenes: determinism, sane ground truth, and difficulty that really changes the picture."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.synthetic.classes import CLASS_NAMES, ObjectSpec
from engine.data.synthetic.distractors import DistractorSpec
from engine.data.synthetic.effects import Effects
from engine.data.synthetic.scene import MIN_VISIBLE_FRACTION, generate_image, render_scene


def _plain_background(size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), 90.0, dtype=np.float32)


def _square(center: tuple[float, float], radius: float) -> ObjectSpec:
    return ObjectSpec(CLASS_NAMES.index("square"), center, radius, 1.0, 0.0, (230.0, 200.0, 20.0))


def _block(x0: float, y0: float, x1: float, y1: float) -> DistractorSpec:
    """Clutter filling a rectangle (a lump with four corners), used as a controlled occluder."""
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
    return DistractorSpec("lump", (0.0, 0.0), (corners,), 0, (10.0, 10.0, 200.0))


def _render(layers: list) -> object:
    return render_scene(_plain_background(), layers, Effects(), np.random.default_rng(0), difficulty=0.0, busyness=0.0)


def test_same_seed_gives_identical_pictures_and_labels() -> None:
    first, second = generate_image(0.7, 123, size=(96, 80)), generate_image(0.7, 123, size=(96, 80))
    np.testing.assert_array_equal(first.image, second.image)
    assert first.annotations == second.annotations
    assert first.factors == second.factors
    assert not np.array_equal(first.image, generate_image(0.7, 124, size=(96, 80)).image)


@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("size", [(128, 128), (160, 96)])
def test_boxes_lie_inside_the_image_and_are_not_degenerate(difficulty: float, size: tuple[int, int]) -> None:
    for seed in range(3):
        picture = generate_image(difficulty, seed, size=size)
        width, height = size
        assert picture.image.shape == (height, width, 3) and picture.image.dtype == np.uint8
        boxes = picture.boxes
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= width) and np.all(boxes[:, 3] <= height)
        assert np.all(boxes[:, 2:] - boxes[:, :2] >= 2)
        assert all(0.0 <= a.occlusion <= 1.0 - MIN_VISIBLE_FRACTION + 1e-6 for a in picture.annotations)
        assert all(0 <= a.class_id < len(CLASS_NAMES) for a in picture.annotations)
        assert picture.factors.num_objects == len(picture.annotations)


def test_easiest_scenes_hold_a_few_large_clear_objects() -> None:
    for seed in range(6):
        factors = generate_image(0.0, seed).factors
        assert 1 <= factors.num_objects <= 3
        assert factors.min_object_size >= 40
        assert factors.num_distractors == 0 and factors.mean_occlusion == 0.0
        assert factors.contrast > 0.3


def test_difficulty_moves_every_factor_the_right_way() -> None:
    def mean_factors(difficulty: float) -> dict[str, float]:
        factors = [generate_image(difficulty, seed).factors for seed in range(20)]
        names = ("num_objects", "min_object_size", "contrast", "noise", "blur", "num_distractors", "true_difficulty")
        return {name: float(np.mean([getattr(f, name) for f in factors])) for name in names}

    easy, hard = mean_factors(0.1), mean_factors(0.9)
    assert hard["num_objects"] > easy["num_objects"] + 7
    assert hard["min_object_size"] < easy["min_object_size"] / 3
    assert hard["contrast"] < easy["contrast"] - 0.15
    assert hard["noise"] > easy["noise"] and hard["blur"] > easy["blur"]
    assert hard["num_distractors"] > easy["num_distractors"] + 8
    assert hard["true_difficulty"] > easy["true_difficulty"] + 0.4


def test_ground_truth_box_is_the_visible_part_after_occlusion() -> None:
    picture = _render([_square((32.0, 32.0), 14.0), _block(32.0, 0.0, 64.0, 64.0)])
    (annotation,) = picture.annotations
    x1, y1, x2, y2 = annotation.box
    full_side = 2 * 14.0 / np.sqrt(2.0)
    assert x2 == 32 and x1 == pytest.approx(32 - full_side / 2, abs=1)
    assert y2 - y1 == pytest.approx(full_side, abs=1)
    assert annotation.occlusion == pytest.approx(0.5, abs=0.05)


def test_mostly_hidden_objects_are_dropped_and_hidden_under_layers_stay() -> None:
    hidden = _render([_square((32.0, 32.0), 14.0), _block(0.0, 0.0, 64.0, 39.0)])
    assert hidden.annotations == ()
    behind_clutter = _render([_block(0.0, 0.0, 64.0, 39.0), _square((32.0, 32.0), 14.0)])
    assert len(behind_clutter.annotations) == 1 and behind_clutter.annotations[0].occlusion == 0.0


def test_objects_mostly_outside_the_frame_are_dropped() -> None:
    picture = _render([_square((-5.0, 32.0), 12.0), _square((40.0, 32.0), 12.0)])
    assert [a.source for a in picture.annotations] == [1]
