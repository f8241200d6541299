"""Negative controls of repro/llama/experiments.py: broken variants built from outside the
library (a wrapped cache, an edited config or model, a leaky split), never switches inside it.

Each one must make its experiment end "contradicted"; ``paperkb run CLAIM --controls`` checks that.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any


def unrounded_swiglu(args: Any) -> Any:
    """``swiglu-no-multiple-of``: the SwiGLU width 8·dim/3 (times ffn_dim_multiplier)
    without the round-up to ``multiple_of``, as an explicit width."""
    hidden = int(2 * (4 * args.dim) / 3)
    if args.ffn_dim_multiplier is not None:
        hidden = int(args.ffn_dim_multiplier * hidden)
    return replace(args, ffn_hidden_dim=hidden)


def swap_swiglu(model: Any) -> None:
    """``swapped-swiglu``: exchange each layer's gate and up projections in place, so the
    feed-forward computes silu(W3 x) * W1 x."""
    import torch

    with torch.no_grad():
        for layer in model.layers:
            ff = layer.feed_forward
            ff.w1.weight, ff.w3.weight = ff.w3.weight, ff.w1.weight


def leaky_split(text: str, fraction: float) -> tuple[list[str], list[str]]:
    """``leaky-split``: the text cut in two at a line break without removing repeated lines,
    so held-out lines the notes repeat (templates) also occur in training."""
    cut = int((1 - fraction) * len(text))
    cut = text.rfind("\n", 0, cut) + 1
    return text[:cut].splitlines(), text[cut:].splitlines()


class DroppingCache:
    """Negative control: a KV cache that loses the newest position of every decoding step
    (it keeps the zeros it was made with), as a cache indexed one position off would."""

    def __init__(self, cache):
        self.inner = cache
        self.inner.k.zero_()
        self.inner.v.zero_()

    def update(self, start_pos, k, v):
        if k.shape[2] == 1:  # a decoding step: store nothing
            end = start_pos + 1
            return self.inner.k[: k.shape[0], :, :end], self.inner.v[: k.shape[0], :, :end]
        return self.inner.update(start_pos, k, v)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class ExpandedCache:
    """Negative control: a "GQA" cache that stores every query head's copy of the keys and
    values (repeat before caching), so it allocates what multi-head attention would."""

    def __init__(self, batch, max_len, n_heads, head_dim, dtype, device):
        import torch

        self.k = torch.zeros(batch, n_heads, max_len, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)

    def update(self, start_pos, k, v):
        group = self.k.shape[1] // k.shape[1]
        end = start_pos + k.shape[2]
        self.k[: k.shape[0], :, start_pos:end] = k.repeat_interleave(group, dim=1)
        self.v[: k.shape[0], :, start_pos:end] = v.repeat_interleave(group, dim=1)
        return self.k[: k.shape[0], :, :end], self.v[: k.shape[0], :, :end]
