"""The negative controls of the FlashAttention experiments: deliberately broken attention
that an experiment must catch (run with ``ctx.control`` set, it ends "contradicted").

They belong to ``repro.attention.experiments`` (and the Llama parity experiment, which
runs our tiled attention inside a model); the library's public API
(``flash_attention``, ``tiled_attention``, ``triton_attention``, the GPT-2 model) has no
switch for them. Where a broken variant must reach below that API it goes through the
autograd functions' private arguments (``rescale``, ``backward_seed``).

* ``no-rescale`` (tiled): the online softmax forgets to rescale its running sums when
  the running maximum grows (Algorithm 1 without the ``exp(m_old - m_new)`` factor).
* ``fresh-backward-mask`` (tiled, triton): the backward draws a different dropout mask
  from the forward's instead of regenerating it (Algorithm 2 without the saved seed).
* ``causal-off`` (triton): the kernel launched with its causal mask off.
* ``ignore-block-mask`` (triton): the kernel launched dense, without the block mask.

This module imports torch: import it inside an experiment function, never at the top
of ``experiments.py`` (which must list ids without torch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from .api import RUNNERS, AttentionCall, flash_attention, kernels_for, prepare_call, tiled_blocks
from .tiled import DEFAULT_BLOCK_K, DEFAULT_BLOCK_Q, TiledAttention


def _scale(c: AttentionCall) -> float:
    return float(c.softmax_scale if c.softmax_scale is not None else 1.0 / math.sqrt(c.q.shape[-1]))


def _tiled(c: AttentionCall, *, rescale: bool = True, backward_seed_offset: int = 0) -> torch.Tensor:
    blocks = tiled_blocks(c)
    block_q, block_k = blocks.get("block_q", DEFAULT_BLOCK_Q), blocks.get("block_k", DEFAULT_BLOCK_K)
    return TiledAttention.apply(
        c.q, c.k, c.v, c.causal, _scale(c), int(block_q), int(block_k), c.dropout_p, c.seed, c.block_mask,
        rescale, c.seed + backward_seed_offset,
    )  # fmt: skip


def _triton_fresh_backward_mask(c: AttentionCall) -> torch.Tensor:
    kernels = kernels_for(c)
    return kernels.TritonAttention.apply(
        c.q, c.k, c.v, bool(c.causal), _scale(c), c.dropout_p, c.seed, c.block_mask, int(c.block_size), c.seed + 1
    )


# control -> impl -> how that implementation runs broken (other implementations run as usual)
BROKEN: dict[str, dict[str, Callable[[AttentionCall], torch.Tensor]]] = {
    "no-rescale": {"tiled": lambda c: _tiled(c, rescale=False)},
    "fresh-backward-mask": {
        "tiled": lambda c: _tiled(c, backward_seed_offset=1),
        "triton": _triton_fresh_backward_mask,
    },
    "causal-off": {"triton": lambda c: RUNNERS["triton"](dataclasses.replace(c, causal=False))},
    "ignore-block-mask": {"triton": lambda c: RUNNERS["triton"](dataclasses.replace(c, block_mask=None))},
}


def broken_attention(control: str | None) -> Callable[..., torch.Tensor]:
    """``flash_attention`` as the control ``control`` breaks it (same signature, same
    argument checks); ``flash_attention`` itself for None."""
    if control is None:
        return flash_attention
    if control not in BROKEN:
        raise ValueError(f"unknown attention control {control!r}; known: {', '.join(BROKEN)}")
    broken = BROKEN[control]

    def attention(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool = False,
        softmax_scale: float | None = None,
        dropout_p: float = 0.0,
        generator: torch.Generator | None = None,
        block_mask: torch.Tensor | None = None,
        block_size: int = 128,
        impl: str = "auto",
    ) -> torch.Tensor:
        call = prepare_call(q, k, v, causal, softmax_scale, dropout_p, generator, block_mask, block_size, impl)
        return broken.get(call.impl, RUNNERS[call.impl])(call)

    attention.__name__ = f"flash_attention_{control.replace('-', '_')}"
    return attention


def leak_future(model) -> None:
    """The ``impl-causal-off`` control of the GPT-2 experiment: every attention layer of
    ``model`` (a ``repro.attention.gpt2.GPT``) lets each position see the future."""
    for block in model.h:
        attn = block.attn

        def attend(q, k, v, cfg=attn.cfg):
            return flash_attention(q, k, v, causal=False, impl=cfg.attn_impl)

        attn.attend = attend
