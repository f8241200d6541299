"""Attention tests run torch on one intra-op thread: with pytest-xdist already using both
cores, OpenMP threads spinning against each other make small matmuls 100x slower."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
