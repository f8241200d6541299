"""Negative controls of the Transformer experiments (repro/transformer/experiments.py and
ablations.py): changes made to a built model from outside it.

Each one must make its experiment end "contradicted"; ``paperkb run CLAIM --controls`` checks that.
"""

from __future__ import annotations

from typing import Any


def identical_heads(model: Any) -> None:
    """``identical-heads``: every head of every attention layer is the same head (its Q, K, V rows are
    the first head's, kept tied through training by a parametrization)."""
    import torch
    from torch.nn.utils import parametrize

    from repro.transformer.model import MultiHeadAttention

    class FirstHeadEverywhere(torch.nn.Module):
        def __init__(self, n_heads: int):
            super().__init__()
            self.n_heads = n_heads

        def forward(self, w):
            rows = w.shape[0] // self.n_heads
            head = w[:rows]
            return head.repeat(self.n_heads, *([1] * (w.dim() - 1)))

    for module in model.modules():
        if isinstance(module, MultiHeadAttention) and module.n_heads > 1:
            for proj in (module.w_q, module.w_k, module.w_v):
                parametrize.register_parametrization(proj, "weight", FirstHeadEverywhere(module.n_heads))
                parametrize.register_parametrization(proj, "bias", FirstHeadEverywhere(module.n_heads))


def zeroed_positions(model: Any) -> None:
    """``zeroed-learned-positions``: the position table replaced by a frozen all-zero one, so
    the model has no positional information at all."""
    import torch

    pe = model.pe
    del model.pe
    model.register_buffer("pe", torch.zeros_like(pe), persistent=False)
