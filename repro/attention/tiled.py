"""FlashAttention in plain PyTorch: the paper's Algorithm 1 (forward) and Algorithm 4
(backward, without dropout), Dao et al. 2022, Sections 3.1 and B.4.

The forward pass walks over blocks of keys/values (outer loop) and blocks of queries
(inner loop), keeping for every query row a running maximum ``m`` and a running sum
``l`` of exponentials (the online softmax), so no ``(Nq, Nk)`` matrix ever exists: only
one ``(Br, Bc)`` block of scores at a time. It keeps the output un-normalised and divides
by ``l`` once at the end, as FlashAttention-2 does; this is algebraically Algorithm 1.
The pass saves the output and the log-sum-exp ``L = m + log l`` of each row.

The backward pass recomputes each block of probabilities from ``Q``, ``K`` and ``L``
(``P = exp(S - L)``) instead of storing them, so it too needs memory linear in N.

Shapes: q (B, H, Nq, d), k and v (B, H_kv, Nk, d) with H a multiple of H_kv. Query
heads are grouped as (B, H_kv, G, N, d) with G = H / H_kv, so a block of keys is
broadcast to the G query heads that share it (GQA; MQA when H_kv = 1) without copies.
Block arithmetic runs in fp32 for fp16/bf16/fp32 inputs, like the tensor-core kernels
that accumulate in fp32; results are cast back to the input dtype.
"""

from __future__ import annotations

import math

import torch

DEFAULT_BLOCK_Q = 128  # Br
DEFAULT_BLOCK_K = 128  # Bc


def _block_mask(i0: int, i1: int, j0: int, j1: int, offset: int, device) -> torch.Tensor:
    """Causal (bottom-right) mask of the score block rows i0:i1, columns j0:j1."""
    i = torch.arange(i0, i1, device=device)[:, None]
    j = torch.arange(j0, j1, device=device)[None, :]
    return j <= i + offset


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Blocks are computed in fp32 (fp64 inputs stay in fp64)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _first_query_block(j0: int, offset: int, block_q: int) -> int:
    """Start of the first query block that sees key ``j0`` under the causal mask."""
    first_row = max(0, j0 - offset)
    return (first_row // block_q) * block_q


def tiled_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    scale: float,
    block_q: int = DEFAULT_BLOCK_Q,
    block_k: int = DEFAULT_BLOCK_K,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1. Returns the output (B, H, Nq, d) in q's dtype and the fp32
    (fp64 for fp64 inputs) log-sum-exp (B, H, Nq); rows that see no key get output 0 and L = +inf (so the
    backward's exp(S - L) is 0 there)."""
    B, H, n_q, d = q.shape
    h_kv, n_k = k.shape[1], k.shape[2]
    g = H // h_kv
    offset = n_k - n_q
    acc = _acc_dtype(q.dtype)
    qg = q.reshape(B, h_kv, g, n_q, d)
    kg, vg = k.unsqueeze(2), v.unsqueeze(2)  # (B, H_kv, 1, Nk, d)

    o_acc = torch.zeros(B, h_kv, g, n_q, d, dtype=acc, device=q.device)
    row_max = torch.full((B, h_kv, g, n_q), float("-inf"), dtype=acc, device=q.device)
    row_sum = torch.zeros(B, h_kv, g, n_q, dtype=acc, device=q.device)

    for j0 in range(0, n_k, block_k):  # outer loop: blocks K_j, V_j
        j1 = min(j0 + block_k, n_k)
        k_j = kg[..., j0:j1, :].to(acc)
        v_j = vg[..., j0:j1, :].to(acc)
        i_start = _first_query_block(j0, offset, block_q) if causal else 0
        for i0 in range(i_start, n_q, block_q):  # inner loop: blocks Q_i
            i1 = min(i0 + block_q, n_q)
            s = torch.matmul(qg[..., i0:i1, :].to(acc), k_j.transpose(-1, -2)) * scale  # (.., Br, Bc)
            if causal and j1 - 1 > i0 + offset:  # the block crosses the diagonal
                s.masked_fill_(~_block_mask(i0, i1, j0, j1, offset, q.device), float("-inf"))
            m_old = row_max[..., i0:i1]
            m_new = torch.maximum(m_old, s.amax(dim=-1))
            # a row with nothing visible yet keeps m = -inf; shift it by 0 to avoid inf - inf
            m_shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
            p = torch.exp(s - m_shift[..., None])  # (.., Br, Bc)
            rescale = torch.exp(m_old - m_shift)  # exp(m_old - m_new), 0 where m_old = -inf
            row_sum[..., i0:i1] = rescale * row_sum[..., i0:i1] + p.sum(dim=-1)
            o_acc[..., i0:i1, :] = rescale[..., None] * o_acc[..., i0:i1, :] + torch.matmul(p, v_j)
            row_max[..., i0:i1] = m_new

    empty = row_sum == 0
    out = o_acc / torch.where(empty, torch.ones_like(row_sum), row_sum)[..., None]
    lse = torch.where(empty, torch.full_like(row_sum, float("inf")), row_max + torch.log(row_sum))
    return out.reshape(B, H, n_q, d).to(q.dtype), lse.reshape(B, H, n_q)


def tiled_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: bool,
    scale: float,
    block_q: int = DEFAULT_BLOCK_Q,
    block_k: int = DEFAULT_BLOCK_K,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 4 without dropout: dQ, dK, dV from recomputed blocks of P."""
    B, H, n_q, d = q.shape
    h_kv, n_k = k.shape[1], k.shape[2]
    g = H // h_kv
    offset = n_k - n_q
    acc = _acc_dtype(q.dtype)
    qg = q.reshape(B, h_kv, g, n_q, d)
    dog = grad_out.reshape(B, h_kv, g, n_q, d)
    lse_g = lse.reshape(B, h_kv, g, n_q)
    # D_i = rowsum(dO_i * O_i) (Algorithm 4 line 19, as in FlashAttention-2)
    delta = (dog.to(acc) * out.reshape(B, h_kv, g, n_q, d).to(acc)).sum(dim=-1)

    dq = torch.zeros(B, h_kv, g, n_q, d, dtype=acc, device=q.device)
    dk = torch.zeros(B, h_kv, n_k, d, dtype=acc, device=q.device)
    dv = torch.zeros(B, h_kv, n_k, d, dtype=acc, device=q.device)

    for j0 in range(0, n_k, block_k):
        j1 = min(j0 + block_k, n_k)
        k_j = k[:, :, None, j0:j1, :].to(acc)  # (B, H_kv, 1, Bc, d)
        v_j = v[:, :, None, j0:j1, :].to(acc)
        dk_j = torch.zeros(B, h_kv, j1 - j0, d, dtype=acc, device=q.device)
        dv_j = torch.zeros_like(dk_j)
        i_start = _first_query_block(j0, offset, block_q) if causal else 0
        for i0 in range(i_start, n_q, block_q):
            i1 = min(i0 + block_q, n_q)
            q_i = qg[..., i0:i1, :].to(acc)
            do_i = dog[..., i0:i1, :].to(acc)
            s = torch.matmul(q_i, k_j.transpose(-1, -2)) * scale  # (B, H_kv, G, Br, Bc)
            if causal and j1 - 1 > i0 + offset:
                s.masked_fill_(~_block_mask(i0, i1, j0, j1, offset, q.device), float("-inf"))
            p = torch.exp(s - lse_g[..., i0:i1, None])  # recomputed probabilities
            dv_j += torch.matmul(p.transpose(-1, -2), do_i).sum(dim=2)
            dp = torch.matmul(do_i, v_j.transpose(-1, -2))
            ds = p * (dp - delta[..., i0:i1, None])
            dq[..., i0:i1, :] += scale * torch.matmul(ds, k_j)
            dk_j += scale * torch.matmul(ds.transpose(-1, -2), q_i).sum(dim=2)
        dk[:, :, j0:j1] = dk_j
        dv[:, :, j0:j1] = dv_j
    return dq.reshape(B, H, n_q, d).to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class TiledAttention(torch.autograd.Function):
    """Exact attention with memory linear in N; saves only O and the log-sum-exp
    besides the inputs."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, scale: float, block_q: int, block_k: int):
        out, lse = tiled_forward(q, k, v, causal, scale, block_q, block_k)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale, ctx.block_q, ctx.block_k = causal, scale, block_q, block_k
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = tiled_backward(
            grad_out, q, k, v, out, lse, ctx.causal, ctx.scale, ctx.block_q, ctx.block_k
        )
        return dq, dk, dv, None, None, None, None


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    softmax_scale: float | None = None,
    block_q: int = DEFAULT_BLOCK_Q,
    block_k: int = DEFAULT_BLOCK_K,
) -> torch.Tensor:
    """Differentiable tiled attention; see the module docstring."""
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    return TiledAttention.apply(q, k, v, causal, float(scale), int(block_q), int(block_k))
