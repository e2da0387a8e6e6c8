"""EvenSample: at most ``capacity`` items, spread over the whole sequence, its length known or not."""

from __future__ import annotations

import itertools

import pytest

from engine.train.footage import EvenSample


def fill(sample: EvenSample, length: int) -> EvenSample:
    for position in range(length):
        if sample.wants(position):
            sample.add(position, position * 10)
    return sample


@pytest.mark.parametrize("length, capacity", [(1000, 300), (301, 300), (20, 8), (7, 3), (12, 300)])
def test_known_length_gives_exactly_capacity_evenly_spaced(length, capacity):
    sample = fill(EvenSample(capacity, length), length)
    positions = sample.positions
    assert len(positions) == min(length, capacity)
    assert positions[0] == 0 and positions == sorted(positions)
    gaps = {b - a for a, b in itertools.pairwise(positions)}
    assert not gaps or max(gaps) - min(gaps) <= 1  # spacing length/capacity, rounded
    assert length - positions[-1] <= -(-length // capacity)  # the tail is covered too
    assert sample.items == [p * 10 for p in positions]


@pytest.mark.parametrize("length", [5, 300, 301, 1000, 4321])
def test_unknown_length_keeps_spanning_everything_seen(length):
    sample = fill(EvenSample(300), length)
    positions = sample.positions
    assert min(length, 151) <= len(positions) <= 300
    step = positions[1] - positions[0] if len(positions) > 1 else 1
    assert positions == list(range(0, length, step))  # every step-th frame, to the end


def test_a_header_that_undercounts_still_spans_the_real_length():
    sample = fill(EvenSample(10, length=20), 100)
    assert len(sample) <= 10 and sample.positions[-1] >= 80


def test_only_the_first_position_of_each_slot_is_wanted():
    sample, wanted = EvenSample(4, length=8), []
    for position in range(8):
        if sample.wants(position):
            wanted.append(position)
            sample.add(position, position)
    assert wanted == [0, 2, 4, 6]
    with pytest.raises(ValueError):
        EvenSample(0)
