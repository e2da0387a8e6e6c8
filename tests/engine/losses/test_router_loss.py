"""RouterLoss: gradient only through the scores, running median, direction of the push, resume."""

from __future__ import annotations

import io
import statistics

import pytest
import torch

from engine.losses.router_loss import RouterLoss


def test_gradient_reaches_scores_only() -> None:
    scores = torch.tensor([0.2, 0.7, 0.5], requires_grad=True)
    loss_first = torch.tensor([3.0, 1.0, 2.0], requires_grad=True)
    loss_second = torch.tensor([1.0, 0.8, 2.5], requires_grad=True)
    router_loss = RouterLoss()
    router_loss(scores, loss_first, loss_second).backward()
    assert loss_first.grad is None and loss_second.grad is None
    median = statistics.median([2.0, 0.2, -0.5])
    expected = (loss_first.detach() - loss_second.detach() - median) / 3  # d/ds of the mean
    torch.testing.assert_close(scores.grad, expected)


def test_value_matches_formula() -> None:
    router_loss = RouterLoss()
    router_loss(torch.tensor([0.5]), torch.tensor([4.0]), torch.tensor([2.0]))  # D = 2
    value = router_loss(torch.tensor([0.25]), torch.tensor([1.0]), torch.tensor([1.0]))  # D = median(2, 0) = 1
    assert router_loss.median == pytest.approx(1.0)
    assert value.item() == pytest.approx(0.25 * (1.0 - 0.5) + 0.75 * (1.0 + 0.5))


def test_median_uses_a_bounded_window() -> None:
    router_loss = RouterLoss(window=5)
    assert router_loss.median == 0.0
    for value in range(10):
        router_loss(torch.tensor([0.5]), torch.tensor([float(value)]), torch.tensor([0.0]))
    assert router_loss.median == pytest.approx(7.0)  # median of 5..9
    assert len(router_loss.state_dict()["history"]) == 5


def test_images_gaining_more_than_median_are_pushed_to_second_detector() -> None:
    router_loss = RouterLoss()
    router_loss(torch.full((4,), 0.5), torch.tensor([1.0, 1.2, 1.4, 1.6]), torch.ones(4))  # D = 0.3
    logits = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    # Image 0 gains 0.9 from detector 2 (> D): hard. Image 1 gains 0.05 (< D): easy.
    router_loss(logits.sigmoid(), torch.tensor([1.9, 1.05]), torch.tensor([1.0, 1.0])).backward()
    assert logits.grad[0] > 0 > logits.grad[1]
    optimizer.step()
    assert logits[0] < 0 < logits[1]  # s -> 0 (second detector) for image 0, s -> 1 for image 1


def test_state_dict_round_trip_resumes_the_median() -> None:
    router_loss = RouterLoss(window=100)
    for value in (3.0, -1.0, 2.0, 7.0):
        router_loss(torch.tensor([0.5]), torch.tensor([value]), torch.tensor([0.0]))
    buffer = io.BytesIO()
    torch.save(router_loss.state_dict(), buffer)
    buffer.seek(0)
    resumed = RouterLoss(window=100)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.median == router_loss.median == pytest.approx(2.5)
    with pytest.raises(ValueError, match="keys"):
        resumed.load_state_dict({"history": []})


def test_non_finite_losses_are_skipped(caplog) -> None:
    router_loss = RouterLoss()
    scores = torch.tensor([0.5, 0.5], requires_grad=True)
    value = router_loss(scores, torch.tensor([float("nan"), 2.0]), torch.tensor([1.0, 1.0]))
    assert torch.isfinite(value) and router_loss.median == pytest.approx(1.0)
    value.backward()
    assert scores.grad[0] == 0 and "non-finite" in caplog.text


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="one value per image"):
        RouterLoss()(torch.rand(3), torch.rand(2), torch.rand(3))
