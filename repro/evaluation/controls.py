"""Negative controls of repro/evaluation/experiments.py, built from outside the model.

Each one must make its experiment end "contradicted"; ``paperkb run CLAIM --controls`` checks that.
"""

from __future__ import annotations

from typing import Any


def without_rope(model: Any) -> None:
    """``no-rope``: every rotary angle set to zero (the table of e^(i·0) = 1), so the model
    sees no position at all."""
    import torch

    model.freqs_cis = torch.ones_like(model._freqs(next(model.parameters()).device))
