"""Building blocks computed another way than written in the papers give the same numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.model.csp import PyramidPools


@pytest.mark.parametrize("kernels", [(5, 9, 13), (13, 9, 5), (3, 7)])
@pytest.mark.parametrize("size", [(20, 32), (7, 11)])  # the second smaller than the largest window
@pytest.mark.parametrize("training", [False, True])
def test_pyramid_pools_equal_one_pool_per_size(kernels, size, training):
    x = torch.randn(2, 4, *size)
    pooled = PyramidPools(kernels).train(training)(x)
    assert len(pooled) == len(kernels)
    for kernel, got in zip(kernels, pooled):
        assert torch.equal(got, nn.MaxPool2d(kernel, 1, kernel // 2)(x))


def test_pyramid_pools_reject_even_sizes():
    with pytest.raises(ValueError, match="odd"):
        PyramidPools((4, 8))
