"""Small helpers shared by the model files (repro/llama/model.py, repro/transformer/model.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (works on a meta-device model: shapes only)."""
    return sum(p.numel() for p in model.parameters())


def on_meta(build: Callable[[Any], M], config: Any) -> M:
    """``build(config)`` with shapes only: no memory, for counting or for assign-loading weights."""
    with torch.device("meta"):
        return build(config)
