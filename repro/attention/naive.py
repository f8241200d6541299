"""The standard attention algorithm (FlashAttention paper, Section 2.2, Algorithm 0).

It materialises the full ``(Nq, Nk)`` score and probability matrices, so its extra
memory grows as N^2: this is the baseline the paper measures against, and in fp32 it
is also the reference every other implementation is judged by.
"""

from __future__ import annotations

import math

import torch


def causal_mask(n_q: int, n_k: int, device=None) -> torch.Tensor:
    """Boolean ``(Nq, Nk)`` mask, True where query i may attend key j.

    Aligned bottom-right as in flash-attention: query i sees keys j <= i + (Nk - Nq), so
    the last query always sees the last key. When Nq > Nk the first Nq - Nk queries see
    no key at all; their output is defined as 0.
    """
    i = torch.arange(n_q, device=device)[:, None]
    j = torch.arange(n_k, device=device)[None, :]
    return j <= i + (n_k - n_q)


def block_grid(n: int, block_size: int) -> int:
    """Number of blocks of ``block_size`` covering ``n`` rows (the last may be partial)."""
    return -(-n // block_size)


def expand_block_mask(block_mask: torch.Tensor, n_q: int, n_k: int, block_size: int) -> torch.Tensor:
    """A (..., Nq/bs, Nk/bs) block mask as an element mask (..., Nq, Nk) (Section 3.3:
    the attention mask is a block form of the matrix ``block_mask``)."""
    m = block_mask.repeat_interleave(block_size, dim=-2).repeat_interleave(block_size, dim=-1)
    return m[..., :n_q, :n_k]


def expand_kv(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Repeat key/value heads (B, H_kv, N, d) -> (B, H, N, d) for GQA/MQA."""
    n_kv = x.shape[1]
    if n_kv == n_heads:
        return x
    return x.repeat_interleave(n_heads // n_kv, dim=1)


def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    softmax_scale: float | None = None,
    upcast: bool = False,
    *,
    keep: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    block_mask: torch.Tensor | None = None,
    block_size: int = 128,
) -> torch.Tensor:
    """softmax(q k^T * scale) v with the N x N matrices written out.

    ``keep`` (a (B, H, Nq, Nk) boolean dropout mask, Algorithm 2's Z) drops the
    probabilities where False and scales the rest by 1 / (1 - ``dropout_p``);
    ``block_mask`` (broadcastable to (B, H, Nq/bs, Nk/bs)) hides whole blocks of keys
    (block-sparse attention, Section 3.3). A query that sees no key gets 0.

    q: (B, H, Nq, d); k, v: (B, H_kv, Nk, d). With ``upcast`` the computation runs in
    fp32 and the result is returned in fp32 (the reference of the correctness rule);
    without it, every step runs in the input dtype (the "same-dtype PyTorch" baseline).
    """
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if upcast:
        q, k, v = q.float(), k.float(), v.float()
    k = expand_kv(k, q.shape[1])
    v = expand_kv(v, q.shape[1])
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, Nq, Nk)
    allowed = None
    if causal:
        allowed = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
    if block_mask is not None:
        sparse = expand_block_mask(block_mask.to(q.device), q.shape[-2], k.shape[-2], block_size)
        allowed = sparse if allowed is None else allowed & sparse
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)  # (B, H, Nq, Nk)
    if allowed is not None:
        # rows with no visible key are NaN after softmax; flash-attention returns 0 there
        probs = probs.masked_fill(~allowed.any(dim=-1, keepdim=True), 0.0)
    if keep is not None:
        probs = probs * keep.to(probs.dtype) / (1.0 - dropout_p)
    return torch.matmul(probs, v)  # (B, H, Nq, d)
