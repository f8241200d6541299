"""FlashAttention in plain PyTorch: the paper's Algorithm 1 (forward), Algorithm 2
(forward with dropout), Algorithm 4 (backward) and block-sparse FlashAttention (Section
3.3), Dao et al. 2022, Sections 3.1, 3.3 and B.4.

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
Dropout (probability ``dropout_p``) keeps P[b, h, i, j] where the counter-based hash of
(seed, b*H + h, i, j) says so (``repro.attention.dropout``): the backward regenerates the
same mask from the seed alone, as Algorithm 4 does. Block-sparse attention takes a
boolean ``block_mask`` of shape (B, H, Nq/bs, Nk/bs); tiles then have ``bs`` rows and
columns and a tile whose block is False for every head is skipped (Proposition 4).

Block arithmetic runs in fp32 for fp16/bf16/fp32 inputs, like the tensor-core kernels
that accumulate in fp32; results are cast back to the input dtype.
"""

from __future__ import annotations

import math

import torch

from .dropout import keep_mask

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


def _live(block_mask, i0: int, j0: int, block: int, shape) -> torch.Tensor | None:
    """(B, H_kv, G, 1, 1) mask of the heads for which tile (i0, j0) is a non-zero block,
    or None when every head skips it."""
    live = block_mask[:, :, i0 // block, j0 // block]
    if not bool(live.any()):
        return None
    return live.reshape(*shape, 1, 1)


def _dropout_tile(seed: int, p: float, bh: torch.Tensor, i0: int, i1: int, j0: int, j1: int, device) -> torch.Tensor:
    """The dropout keep-mask of one tile for every head: (B, H_kv, G, Br, Bc)."""
    rows = torch.arange(i0, i1, device=device)[:, None]
    cols = torch.arange(j0, j1, device=device)[None, :]
    return keep_mask(seed, bh, rows, cols, p)


def tiled_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    scale: float,
    block_q: int = DEFAULT_BLOCK_Q,
    block_k: int = DEFAULT_BLOCK_K,
    dropout_p: float = 0.0,
    seed: int = 0,
    block_mask: torch.Tensor | None = None,
    rescale: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 (Algorithm 2 when ``dropout_p`` > 0). Returns the output (B, H, Nq, d)
    in q's dtype and the fp32 (fp64 for fp64 inputs) log-sum-exp (B, H, Nq) of the
    undropped scores; rows that see no key get output 0 and L = +inf (so the backward's
    exp(S - L) is 0 there). With ``block_mask`` (B, H, Nq/bs, Nk/bs), ``block_q`` and
    ``block_k`` must equal bs. ``rescale=False`` is a negative control: it forgets to
    rescale the running sums when the running maximum grows, which breaks exactness."""
    B, H, n_q, d = q.shape
    h_kv, n_k = k.shape[1], k.shape[2]
    g = H // h_kv
    offset = n_k - n_q
    acc = _acc_dtype(q.dtype)
    qg = q.reshape(B, h_kv, g, n_q, d)
    kg, vg = k.unsqueeze(2), v.unsqueeze(2)  # (B, H_kv, 1, Nk, d)
    bh = torch.arange(B * H, device=q.device).view(B, h_kv, g, 1, 1)

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
            live = None
            if block_mask is not None:
                live = _live(block_mask, i0, j0, block_q, (B, h_kv, g))
                if live is None:
                    continue  # a zero block of the mask: neither loaded nor computed
            s = torch.matmul(qg[..., i0:i1, :].to(acc), k_j.transpose(-1, -2)) * scale  # (.., Br, Bc)
            if causal and j1 - 1 > i0 + offset:  # the block crosses the diagonal
                s.masked_fill_(~_block_mask(i0, i1, j0, j1, offset, q.device), float("-inf"))
            if live is not None:
                s = s.masked_fill(~live, float("-inf"))
            m_old = row_max[..., i0:i1]
            m_new = torch.maximum(m_old, s.amax(dim=-1))
            # a row with nothing visible yet keeps m = -inf; shift it by 0 to avoid inf - inf
            m_shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
            p = torch.exp(s - m_shift[..., None])  # (.., Br, Bc)
            alpha = torch.exp(m_old - m_shift)  # exp(m_old - m_new), 0 where m_old = -inf
            if not rescale:
                alpha = torch.where(torch.isinf(m_old), alpha, torch.ones_like(alpha))
            row_sum[..., i0:i1] = alpha * row_sum[..., i0:i1] + p.sum(dim=-1)
            if dropout_p > 0:  # Algorithm 2: the sum keeps every term, the output only the kept ones
                p = p * _dropout_tile(seed, dropout_p, bh, i0, i1, j0, j1, q.device) / (1.0 - dropout_p)
            o_acc[..., i0:i1, :] = alpha[..., None] * o_acc[..., i0:i1, :] + torch.matmul(p, v_j)
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
    dropout_p: float = 0.0,
    seed: int = 0,
    block_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 4: dQ, dK, dV from recomputed blocks of P (and of the dropout mask,
    regenerated from ``seed``)."""
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
    bh = torch.arange(B * H, device=q.device).view(B, h_kv, g, 1, 1)

    for j0 in range(0, n_k, block_k):
        j1 = min(j0 + block_k, n_k)
        k_j = k[:, :, None, j0:j1, :].to(acc)  # (B, H_kv, 1, Bc, d)
        v_j = v[:, :, None, j0:j1, :].to(acc)
        dk_j = torch.zeros(B, h_kv, j1 - j0, d, dtype=acc, device=q.device)
        dv_j = torch.zeros_like(dk_j)
        i_start = _first_query_block(j0, offset, block_q) if causal else 0
        for i0 in range(i_start, n_q, block_q):
            i1 = min(i0 + block_q, n_q)
            live = None
            if block_mask is not None:
                live = _live(block_mask, i0, j0, block_q, (B, h_kv, g))
                if live is None:
                    continue
            q_i = qg[..., i0:i1, :].to(acc)
            do_i = dog[..., i0:i1, :].to(acc)
            s = torch.matmul(q_i, k_j.transpose(-1, -2)) * scale  # (B, H_kv, G, Br, Bc)
            if causal and j1 - 1 > i0 + offset:
                s.masked_fill_(~_block_mask(i0, i1, j0, j1, offset, q.device), float("-inf"))
            if live is not None:
                s = s.masked_fill(~live, float("-inf"))
            p = torch.exp(s - lse_g[..., i0:i1, None])  # recomputed probabilities
            dp = torch.matmul(do_i, v_j.transpose(-1, -2))
            if dropout_p > 0:  # the same Z as the forward, regenerated from the seed
                z = _dropout_tile(seed, dropout_p, bh, i0, i1, j0, j1, q.device).to(acc) / (1.0 - dropout_p)
                dv_j += torch.matmul((p * z).transpose(-1, -2), do_i).sum(dim=2)
                dp = dp * z
            else:
                dv_j += torch.matmul(p.transpose(-1, -2), do_i).sum(dim=2)
            ds = p * (dp - delta[..., i0:i1, None])
            dq[..., i0:i1, :] += scale * torch.matmul(ds, k_j)
            dk_j += scale * torch.matmul(ds.transpose(-1, -2), q_i).sum(dim=2)
        dk[:, :, j0:j1] = dk_j
        dv[:, :, j0:j1] = dv_j
    return dq.reshape(B, H, n_q, d).to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class TiledAttention(torch.autograd.Function):
    """Exact attention with memory linear in N; saves only O and the log-sum-exp
    (and the dropout seed) besides the inputs."""

    @staticmethod
    def forward(
        ctx,
        q,
        k,
        v,
        causal: bool,
        scale: float,
        block_q: int,
        block_k: int,
        dropout_p: float,
        seed: int,
        block_mask,
        rescale: bool,
        backward_seed: int,
    ):
        # rescale=False and backward_seed != seed are the broken variants of
        # repro.attention.controls (the public tiled_attention always passes True and seed)
        out, lse = tiled_forward(q, k, v, causal, scale, block_q, block_k, dropout_p, seed, block_mask, rescale=rescale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale, ctx.block_q, ctx.block_k = causal, scale, block_q, block_k
        ctx.dropout_p, ctx.seed = dropout_p, backward_seed  # the backward regenerates the mask from the seed
        ctx.block_mask = block_mask
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = tiled_backward(
            grad_out,
            q,
            k,
            v,
            out,
            lse,
            ctx.causal,
            ctx.scale,
            ctx.block_q,
            ctx.block_k,
            ctx.dropout_p,
            ctx.seed,
            ctx.block_mask,
        )
        return dq, dk, dv, None, None, None, None, None, None, None, None, None


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    softmax_scale: float | None = None,
    block_q: int = DEFAULT_BLOCK_Q,
    block_k: int = DEFAULT_BLOCK_K,
    *,
    dropout_p: float = 0.0,
    seed: int = 0,
    block_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable tiled attention; see the module docstring. ``block_mask`` must be
    (B, H, Nq/bs, Nk/bs) with bs = ``block_q`` = ``block_k``."""
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    if block_mask is not None and block_q != block_k:
        raise ValueError("block-sparse tiled attention needs block_q == block_k == the mask's block size")
    return TiledAttention.apply(
        q,
        k,
        v,
        causal,
        float(scale),
        int(block_q),
        int(block_k),
        float(dropout_p),
        int(seed),
        block_mask,
        True,
        int(seed),
    )
