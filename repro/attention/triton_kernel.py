"""FlashAttention forward and backward as Triton kernels (FlashAttention-2 work split:
Dao 2023, Algorithms 1 and 2, on top of the FlashAttention paper's Algorithms 1, 2, 4 and
block-sparse FlashAttention, Section 3.3), plus split-KV decoding (flash-decoding).

* forward: one program per (block of BLOCK_M queries, batch x head); it streams blocks
  of keys/values through on-chip memory with the online softmax and writes O and the
  log-sum-exp L (natural log; +inf for a query that sees no key, so exp(S - L) = 0).
* backward: D = rowsum(dO * O) in PyTorch, then two kernels, neither needing atomics:
  one program per (key block, query head) computes that head's dK, dV; under GQA/MQA the
  G heads of a group run in parallel into an fp32 buffer summed over the group after
  (no serial loop over the group); one program per query block computes dQ. Both split
  their loop into tiles that need no mask (the bulk) and tiles on the diagonal or the
  ragged edge (masked).
* decoding: for a few queries (Nq <= 16) the keys are split across programs, each
  writing a partial output and its log-sum-exp, combined afterwards (flash-decoding),
  so B x H x splits programs fill the GPU even at batch 1.
* dropout: the keep decision for P[b, h, i, j] is a hash of (seed, b*H + h, i, j)
  (``repro.attention.dropout``, bit-identical to the PyTorch version), so the backward
  regenerates the forward's mask from the seed.
* block-sparse: a (B, H, Nq/bs, Nk/bs) int8 block mask; a tile in a zero block is
  neither loaded nor computed. Tiles never straddle two mask blocks (BLOCK_M, BLOCK_N
  divide bs).

Batch and head offsets are computed in 64-bit (a tensor of 2^31 elements or more would
otherwise be addressed through a wrapped 32-bit product); row offsets within one head
stay 32-bit.

Covers causal (bottom-right aligned when Nq != Nk) and not, MHA/GQA/MQA, head dims 16
to 256 (padded to a power of two with masked loads), fp16/bf16/fp32 (fp32 dot products
run in IEEE precision, not TF32, so fp32 stays exact to fp32 rounding), and lengths that
are not multiples of the block sizes.

Tile sizes come from ``triton.autotune`` (per power-of-two length bucket) over a config space pruned per architecture
(Hopper sm_90, Ampere sm_80), head dim and dtype; with autotuning off
(``PAPERKB_TRITON_AUTOTUNE=0``, or in the interpreter) the first config of the pruned list
is used, so a run is deterministic.

Import through :func:`repro.attention.api.load_triton_kernels`; the kernels run on CUDA,
or on the CPU in Triton's interpreter when this module was imported with
``TRITON_INTERPRET=1`` (``INTERPRETED``), which is how the tests exercise them.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from paperkb.errors import PaperkbError

try:
    from triton import knobs as _knobs

    INTERPRETED = bool(_knobs.runtime.interpret)
except Exception:  # older triton reads the variable directly
    INTERPRETED = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")

# Tests set this to fill every output buffer with NaN before a launch, so an element a
# kernel forgets to write fails the comparison.
POISON_OUTPUTS = False

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def autotune_enabled() -> bool:
    return not INTERPRETED and os.environ.get("PAPERKB_TRITON_AUTOTUNE", "1") not in ("0", "false", "off", "no")


# --------------------------------------------------------------------------------------
# counter-based dropout (same arithmetic as repro.attention.dropout)
# --------------------------------------------------------------------------------------
@triton.jit
def _hash32(x):
    """lowbias32 on uint32 (wrapping multiplies)."""
    x = x ^ (x >> 16)
    x = x * tl.full([], 0x7FEB352D, tl.uint32)
    x = x ^ (x >> 15)
    x = x * tl.full([], 0x846CA68B, tl.uint32)
    x = x ^ (x >> 16)
    return x


@triton.jit
def _keep(seed, bh, rows2d, cols2d, dropout_p):
    """Keep-mask of a tile: rows2d and cols2d are broadcastable int tensors."""
    key = _hash32(seed.to(tl.uint32) ^ _hash32(bh.to(tl.uint32)))
    r = _hash32(key + rows2d.to(tl.uint32))
    x = _hash32(r + cols2d.to(tl.uint32) * tl.full([], 0x9E3779B9, tl.uint32))
    return (x >> 8).to(tl.float32) * (1.0 / 16777216.0) >= dropout_p


# --------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------
# The kernels' argument lists are grouped as in Triton's fused-attention tutorial: one line
# per tensor (pointer, then its strides), then shapes, scalars, and the constexpr flags and
# block sizes. ``# fmt: off`` keeps the formatter from putting each name on its own line.
# fmt: off
@triton.jit
def _fwd_step(
    acc, l_i, m_i, q,
    k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
    rows, start_n, offs_n, offs_d, d_mask,
    N_K, offset, qk_scale,
    seed, bh, dropout_p, dropout_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    cols = start_n + offs_n
    k_ptrs = k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd  # K^T block (D, N)
    v_ptrs = v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd  # (N, D)
    if MASKED:
        k = tl.load(k_ptrs, mask=(cols[None, :] < N_K) & d_mask[:, None], other=0.0)
        v = tl.load(v_ptrs, mask=(cols[:, None] < N_K) & d_mask[None, :], other=0.0)
    elif EVEN_D:
        k = tl.load(k_ptrs)
        v = tl.load(v_ptrs)
    else:
        k = tl.load(k_ptrs, mask=d_mask[:, None], other=0.0)
        v = tl.load(v_ptrs, mask=d_mask[None, :], other=0.0)
    s = tl.dot(q, k, input_precision=PRECISION) * qk_scale  # (M, N), log2 units
    if MASKED:
        valid = cols[None, :] < N_K
        if CAUSAL:
            valid = valid & (cols[None, :] <= rows[:, None] + offset)
        s = tl.where(valid, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with nothing visible yet
    p = tl.math.exp2(s - m_shift[:, None])
    alpha = tl.math.exp2(m_i - m_shift)
    l_i = l_i * alpha + tl.sum(p, 1)
    if DROPOUT:  # Algorithm 2: l sums every term, O only the kept ones (scaled)
        keep = _keep(seed, bh, rows[:, None], cols[None, :], dropout_p)
        p = tl.where(keep, p * dropout_scale, 0.0)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return acc, l_i, m_new


@triton.jit
def _fwd_inner(
    acc, l_i, m_i, q,
    k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
    rows, offs_n, offs_d, d_mask,
    lo, hi, N_K, offset, qk_scale,
    seed, bh, dropout_p, dropout_scale,
    mask_row, stride_mk,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    SPARSE: tl.constexpr, SPARSE_BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):
    for start_n in range(lo, hi, BLOCK_N):
        live = True
        if SPARSE:  # a tile in a zero block of the mask is neither loaded nor computed
            live = tl.load(mask_row + (start_n // SPARSE_BLOCK) * stride_mk) != 0
        if live:
            acc, l_i, m_i = _fwd_step(
                acc, l_i, m_i, q,
                k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                rows, start_n, offs_n, offs_d, d_mask,
                N_K, offset, qk_scale,
                seed, bh, dropout_p, dropout_scale,
                MASKED, CAUSAL, EVEN_D, DROPOUT, PRECISION,
            )
    return acc, l_i, m_i


@triton.jit(do_not_specialize=["seed"])  # a seed of 1 must not become a constant
def _fwd_kernel(
    Q, K, V, Out, LSE, BLOCK_MASK,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_mb, stride_mh, stride_mq, stride_mk,
    H, GROUP, N_Q, N_K, HEAD_DIM,
    qk_scale, dropout_p, dropout_scale, seed,
    CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    SPARSE: tl.constexpr, SPARSE_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)  # 64-bit: b * stride_qb can pass 2^31
    h = (bh % H).to(tl.int64)
    h_kv = h // GROUP
    rows = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = rows < N_Q

    q_ptrs = Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=row_mask[:, None] & d_mask[None, :], other=0.0)
    k_base = K + b * stride_kb + h_kv * stride_kh
    v_base = V + b * stride_vb + h_kv * stride_vh
    mask_row = BLOCK_MASK + b * stride_mb + h * stride_mh + (start_m // SPARSE_BLOCK) * stride_mq

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    offset = N_K - N_Q  # key j is visible to query i when j <= i + offset
    n_even = (N_K // BLOCK_N) * BLOCK_N
    if CAUSAL:
        hi = tl.minimum(N_K, tl.maximum(start_m + BLOCK_M + offset, 0))
        # blocks wholly below the diagonal for every row of this query block
        full = tl.maximum(start_m + offset + 1, 0) // BLOCK_N * BLOCK_N
        full = tl.minimum(full, n_even)
    else:
        hi = N_K
        full = n_even
    # stage 0: key blocks [0, full) that no row needs masked; stage 1: [full, hi), the
    # diagonal and the ragged edge, masked (unrolled at compile time)
    for stage in tl.static_range(2):
        acc, l_i, m_i = _fwd_inner(
            acc, l_i, m_i, q,
            k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
            rows, offs_n, offs_d, d_mask,
            0 if stage == 0 else full, full if stage == 0 else hi, N_K, offset, qk_scale,
            seed, bh, dropout_p, dropout_scale,
            mask_row, stride_mk,
            stage == 1, CAUSAL, EVEN_D, DROPOUT,
            SPARSE, SPARSE_BLOCK, BLOCK_N, PRECISION,
        )

    empty = l_i == 0.0
    acc = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("inf"), (m_i + tl.math.log2(tl.where(empty, 1.0, l_i))) * 0.6931471805599453)
    o_ptrs = Out + b * stride_ob + h * stride_oh + rows[:, None] * stride_om + offs_d[None, :] * stride_od
    tl.store(o_ptrs, acc.to(Out.dtype.element_ty), mask=row_mask[:, None] & d_mask[None, :])
    tl.store(LSE + bh.to(tl.int64) * N_Q + rows, lse, mask=row_mask)
# fmt: on


# --------------------------------------------------------------------------------------
# split-KV decoding (flash-decoding)
# --------------------------------------------------------------------------------------
# fmt: off
@triton.jit
def _decode_kernel(
    Q, K, V, O_PART, LSE_PART,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    H, GROUP, N_Q, N_K, HEAD_DIM,
    qk_scale, SPLIT_LEN, N_SPLITS,
    CAUSAL: tl.constexpr, EVEN_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (split, b*H + h): the queries of one head against keys
    [split * SPLIT_LEN, (split + 1) * SPLIT_LEN). Writes the normalised partial output
    (fp32) and its log2-sum-exp (-inf when the split sees no key)."""
    split = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    h_kv = h // GROUP
    rows = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = rows < N_Q
    q = tl.load(
        Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd,
        mask=row_mask[:, None] & d_mask[None, :],
        other=0.0,
    )
    k_base = K + b * stride_kb + h_kv * stride_kh
    v_base = V + b * stride_vb + h_kv * stride_vh
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    lo = split * SPLIT_LEN
    hi = tl.minimum(lo + SPLIT_LEN, N_K)
    # every tile masked: the key bound is the split's end, causality uses the true offset;
    # no dropout (seed 0, p 0, scale 1) and no block mask (Q stands in for the mask pointer)
    acc, l_i, m_i = _fwd_inner(
        acc, l_i, m_i, q,
        k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
        rows, offs_n, offs_d, d_mask,
        lo, hi, hi, N_K - N_Q, qk_scale,
        0, bh, 0.0, 1.0,
        Q, 0,
        True, CAUSAL, EVEN_D, False,
        False, 1, BLOCK_N, PRECISION,
    )
    empty = l_i == 0.0
    acc = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse2 = tl.where(empty, float("-inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
    part = bh.to(tl.int64) * N_SPLITS + split
    tl.store(
        O_PART + (part * N_Q + rows[:, None]) * HEAD_DIM + offs_d[None, :],
        acc,
        mask=row_mask[:, None] & d_mask[None, :],
    )
    tl.store(LSE_PART + part * N_Q + rows, lse2, mask=row_mask)
# fmt: on


# --------------------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------------------
# fmt: off
@triton.jit
def _dkdv_step(
    dk, dv, k, v,
    q_base, do_base, lse_base, delta_base,
    start_m, offs_m, offs_d, d_mask, cols,
    stride_qm, stride_qd, stride_dom, stride_dod,
    N_Q, offset, qk_scale,
    seed, bh, dropout_p, dropout_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    rows = start_m + offs_m
    q_ptrs = q_base + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd
    do_ptrs = do_base + rows[:, None] * stride_dom + offs_d[None, :] * stride_dod
    if MASKED:
        row_mask = rows < N_Q
        qd_mask = row_mask[:, None] & d_mask[None, :]
        q = tl.load(q_ptrs, mask=qd_mask, other=0.0)
        do = tl.load(do_ptrs, mask=qd_mask, other=0.0)
        lse = tl.load(lse_base + rows, mask=row_mask, other=float("inf"))
        delta = tl.load(delta_base + rows, mask=row_mask, other=0.0)
    elif EVEN_D:
        q = tl.load(q_ptrs)
        do = tl.load(do_ptrs)
        lse = tl.load(lse_base + rows)
        delta = tl.load(delta_base + rows)
    else:
        q = tl.load(q_ptrs, mask=d_mask[None, :], other=0.0)
        do = tl.load(do_ptrs, mask=d_mask[None, :], other=0.0)
        lse = tl.load(lse_base + rows)
        delta = tl.load(delta_base + rows)
    s_t = tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale  # S^T block (N, M)
    # rows past N_Q and rows that see no key have L = +inf, so their P is 0 unmasked
    p_t = tl.math.exp2(s_t - lse[None, :] * 1.4426950408889634)  # recomputed P^T
    if MASKED:
        if CAUSAL:
            p_t = tl.where(cols[:, None] <= rows[None, :] + offset, p_t, 0.0)
    dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
    if DROPOUT:
        keep = _keep(seed, bh, rows[None, :], cols[:, None], dropout_p)
        dv += tl.dot(tl.where(keep, p_t * dropout_scale, 0.0).to(do.dtype), do, input_precision=PRECISION)
        dp_t = tl.where(keep, dp_t * dropout_scale, 0.0)
    else:
        dv += tl.dot(p_t.to(do.dtype), do, input_precision=PRECISION)
    ds_t = p_t * (dp_t - delta[None, :])
    dk += tl.dot(ds_t.to(q.dtype), q, input_precision=PRECISION)
    return dk, dv


@triton.jit
def _dkdv_inner(
    dk, dv, k, v,
    q_base, do_base, lse_base, delta_base,
    lo, hi, offs_m, offs_d, d_mask, cols,
    stride_qm, stride_qd, stride_dom, stride_dod,
    N_Q, offset, qk_scale,
    seed, bh, dropout_p, dropout_scale,
    mask_col, stride_mq,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    SPARSE: tl.constexpr, SPARSE_BLOCK: tl.constexpr, BLOCK_M: tl.constexpr, PRECISION: tl.constexpr,
):
    for start_m in range(lo, hi, BLOCK_M):
        live = True
        if SPARSE:  # a tile in a zero block of the mask is neither loaded nor computed
            live = tl.load(mask_col + (start_m // SPARSE_BLOCK) * stride_mq) != 0
        if live:
            dk, dv = _dkdv_step(
                dk, dv, k, v,
                q_base, do_base, lse_base, delta_base,
                start_m, offs_m, offs_d, d_mask, cols,
                stride_qm, stride_qd, stride_dom, stride_dod,
                N_Q, offset, qk_scale,
                seed, bh, dropout_p, dropout_scale,
                MASKED, CAUSAL, EVEN_D, DROPOUT, PRECISION,
            )
    return dk, dv


@triton.jit(do_not_specialize=["seed"])  # a seed of 1 must not become a constant
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, BLOCK_MASK,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    stride_mb, stride_mh, stride_mq, stride_mk,
    H, GROUP, N_Q, N_K, HEAD_DIM,
    sm_scale, qk_scale, dropout_p, dropout_scale, seed,
    CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    SPARSE: tl.constexpr, SPARSE_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (key block, b*H + h): dK, dV of one key block for query head h, stored
    at head h of DK, DV (the key/value head itself when GROUP = 1, else a per-query-head
    fp32 buffer the launcher sums over the group)."""
    start_n = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    h_kv = h // GROUP
    cols = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    kv_mask = (cols < N_K)[:, None] & d_mask[None, :]

    k = tl.load(
        K + b * stride_kb + h_kv * stride_kh + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd,
        mask=kv_mask,
        other=0.0,
    )
    v = tl.load(
        V + b * stride_vb + h_kv * stride_vh + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
        mask=kv_mask,
        other=0.0,
    )
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_dob + h * stride_doh
    lse_base = LSE + bh.to(tl.int64) * N_Q
    delta_base = DELTA + bh.to(tl.int64) * N_Q
    mask_col = BLOCK_MASK + b * stride_mb + h * stride_mh + (start_n // SPARSE_BLOCK) * stride_mk

    offset = N_K - N_Q
    m_end = tl.cdiv(N_Q, BLOCK_M) * BLOCK_M
    if CAUSAL:
        lo = tl.maximum(start_n - offset, 0) // BLOCK_M * BLOCK_M  # first query block that sees key start_n
        # first query block whose every row sees every key of this block
        mid = tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - offset, 0), BLOCK_M) * BLOCK_M
        mid = tl.minimum(tl.maximum(mid, lo), m_end)
    else:
        lo = 0
        mid = 0
    full_end = tl.maximum(mid, N_Q // BLOCK_M * BLOCK_M)
    # stage 0: [lo, mid), tiles crossing the diagonal (masked); stage 1: [mid, full_end),
    # tiles every row of which sees every key (no mask); stage 2: [full_end, m_end), the
    # ragged last query tile (masked). Unrolled at compile time.
    for stage in tl.static_range(3):
        dk, dv = _dkdv_inner(
            dk, dv, k, v,
            q_base, do_base, lse_base, delta_base,
            lo if stage == 0 else mid if stage == 1 else full_end,
            mid if stage == 0 else full_end if stage == 1 else m_end,
            offs_m, offs_d, d_mask, cols,
            stride_qm, stride_qd, stride_dom, stride_dod,
            N_Q, offset, qk_scale,
            seed, bh, dropout_p, dropout_scale,
            mask_col, stride_mq,
            stage != 1, CAUSAL, EVEN_D, DROPOUT,
            SPARSE, SPARSE_BLOCK, BLOCK_M, PRECISION,
        )
    dk = dk * sm_scale
    tl.store(
        DK + b * stride_dkb + h * stride_dkh + cols[:, None] * stride_dkn + offs_d[None, :] * stride_dkd,
        dk.to(DK.dtype.element_ty),
        mask=kv_mask,
    )
    tl.store(
        DV + b * stride_dvb + h * stride_dvh + cols[:, None] * stride_dvn + offs_d[None, :] * stride_dvd,
        dv.to(DV.dtype.element_ty),
        mask=kv_mask,
    )


@triton.jit
def _dq_step(
    dq, q, do, lse, delta,
    k_base, v_base,
    rows, start_n, offs_n, offs_d, d_mask,
    stride_kn, stride_kd, stride_vn, stride_vd,
    N_K, offset, qk_scale,
    seed, bh, dropout_p, dropout_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    cols = start_n + offs_n
    k_ptrs = k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd
    v_ptrs = v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd
    if MASKED:
        kv_mask = (cols[:, None] < N_K) & d_mask[None, :]
        k = tl.load(k_ptrs, mask=kv_mask, other=0.0)
        v = tl.load(v_ptrs, mask=kv_mask, other=0.0)
    elif EVEN_D:
        k = tl.load(k_ptrs)
        v = tl.load(v_ptrs)
    else:
        k = tl.load(k_ptrs, mask=d_mask[None, :], other=0.0)
        v = tl.load(v_ptrs, mask=d_mask[None, :], other=0.0)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    p = tl.math.exp2(s - lse[:, None])
    if MASKED:
        valid = cols[None, :] < N_K
        if CAUSAL:
            valid = valid & (cols[None, :] <= rows[:, None] + offset)
        p = tl.where(valid, p, 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    if DROPOUT:
        keep = _keep(seed, bh, rows[:, None], cols[None, :], dropout_p)
        dp = tl.where(keep, dp * dropout_scale, 0.0)
    ds = p * (dp - delta[:, None])
    dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    return dq


@triton.jit
def _dq_inner(
    dq, q, do, lse, delta,
    k_base, v_base,
    rows, lo, hi, offs_n, offs_d, d_mask,
    stride_kn, stride_kd, stride_vn, stride_vd,
    N_K, offset, qk_scale,
    seed, bh, dropout_p, dropout_scale,
    mask_row, stride_mk,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    SPARSE: tl.constexpr, SPARSE_BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):
    for start_n in range(lo, hi, BLOCK_N):
        live = True
        if SPARSE:  # a tile in a zero block of the mask is neither loaded nor computed
            live = tl.load(mask_row + (start_n // SPARSE_BLOCK) * stride_mk) != 0
        if live:
            dq = _dq_step(
                dq, q, do, lse, delta,
                k_base, v_base,
                rows, start_n, offs_n, offs_d, d_mask,
                stride_kn, stride_kd, stride_vn, stride_vd,
                N_K, offset, qk_scale,
                seed, bh, dropout_p, dropout_scale,
                MASKED, CAUSAL, EVEN_D, DROPOUT, PRECISION,
            )
    return dq


@triton.jit(do_not_specialize=["seed"])  # a seed of 1 must not become a constant
def _bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, BLOCK_MASK,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dqb, stride_dqh, stride_dqm, stride_dqd,
    stride_mb, stride_mh, stride_mq, stride_mk,
    H, GROUP, N_Q, N_K, HEAD_DIM,
    sm_scale, qk_scale, dropout_p, dropout_scale, seed,
    CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, DROPOUT: tl.constexpr,
    SPARSE: tl.constexpr, SPARSE_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    h_kv = h // GROUP
    rows = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = rows < N_Q
    qd_mask = row_mask[:, None] & d_mask[None, :]

    q = tl.load(
        Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd,
        mask=qd_mask,
        other=0.0,
    )
    do = tl.load(
        DO + b * stride_dob + h * stride_doh + rows[:, None] * stride_dom + offs_d[None, :] * stride_dod,
        mask=qd_mask,
        other=0.0,
    )
    lse = tl.load(LSE + bh.to(tl.int64) * N_Q + rows, mask=row_mask, other=float("inf")) * 1.4426950408889634
    delta = tl.load(DELTA + bh.to(tl.int64) * N_Q + rows, mask=row_mask, other=0.0)
    k_base = K + b * stride_kb + h_kv * stride_kh
    v_base = V + b * stride_vb + h_kv * stride_vh
    mask_row = BLOCK_MASK + b * stride_mb + h * stride_mh + (start_m // SPARSE_BLOCK) * stride_mq
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    offset = N_K - N_Q
    n_even = (N_K // BLOCK_N) * BLOCK_N
    if CAUSAL:
        hi = tl.minimum(N_K, tl.maximum(start_m + BLOCK_M + offset, 0))
        full = tl.minimum(tl.maximum(start_m + offset + 1, 0) // BLOCK_N * BLOCK_N, n_even)
    else:
        hi = N_K
        full = n_even
    # stage 0: key blocks [0, full) with no mask; stage 1: [full, hi), masked (as the forward)
    for stage in tl.static_range(2):
        dq = _dq_inner(
            dq, q, do, lse, delta,
            k_base, v_base,
            rows, 0 if stage == 0 else full, full if stage == 0 else hi, offs_n, offs_d, d_mask,
            stride_kn, stride_kd, stride_vn, stride_vd,
            N_K, offset, qk_scale,
            seed, bh, dropout_p, dropout_scale,
            mask_row, stride_mk,
            stage == 1, CAUSAL, EVEN_D, DROPOUT,
            SPARSE, SPARSE_BLOCK, BLOCK_N, PRECISION,
        )
    dq = dq * sm_scale
    tl.store(
        DQ + b * stride_dqb + h * stride_dqh + rows[:, None] * stride_dqm + offs_d[None, :] * stride_dqd,
        dq.to(DQ.dtype.element_ty),
        mask=qd_mask,
    )
# fmt: on


# --------------------------------------------------------------------------------------
# tile configurations: a pruned space per architecture, autotuned or first-in-list
# --------------------------------------------------------------------------------------
def _cfg(bm, bn, warps, stages):
    return dict(BLOCK_M=bm, BLOCK_N=bn, num_warps=warps, num_stages=stages)


# Forward, fp16/bf16. Hopper: 8 warps only on 128-row tiles; Ampere: its 164 KiB of
# shared memory caps the stages. Every entry was compiled (repro.attention.compile_check)
# without a spill at the head dims it is listed for; the first is the fallback.
_FWD_SPACE = {
    90: {
        64: [_cfg(128, 128, 8, 3), _cfg(128, 64, 8, 3), _cfg(128, 64, 4, 3), _cfg(64, 64, 4, 4)],
        128: [_cfg(128, 128, 8, 3), _cfg(128, 64, 8, 3), _cfg(64, 64, 4, 3), _cfg(64, 64, 4, 4)],
        256: [_cfg(64, 32, 4, 2), _cfg(64, 64, 8, 2)],
    },
    80: {
        64: [_cfg(128, 64, 8, 3), _cfg(64, 64, 4, 3), _cfg(128, 32, 4, 3)],
        128: [_cfg(128, 64, 8, 3), _cfg(128, 32, 4, 3), _cfg(64, 64, 4, 3), _cfg(128, 128, 8, 2)],
        256: [_cfg(64, 32, 4, 2)],
    },
}
# Backward (both kernels), fp16/bf16. The dK/dV kernel keeps k, v, dk, dv of BLOCK_N keys
# on chip, so at d = 128 BLOCK_N stays at 32 (64 spills on sm_90: 255 registers + 280 B).
_BWD_SPACE = {
    90: {
        64: [_cfg(64, 64, 8, 2), _cfg(32, 128, 8, 2), _cfg(64, 32, 4, 2), _cfg(32, 64, 4, 2)],
        128: [_cfg(64, 32, 4, 2), _cfg(64, 32, 4, 3), _cfg(128, 32, 8, 2), _cfg(64, 32, 8, 2), _cfg(32, 32, 4, 2)],
        256: [_cfg(32, 32, 4, 1), _cfg(32, 64, 8, 1)],
    },
    80: {
        64: [_cfg(64, 32, 4, 2), _cfg(64, 64, 8, 2), _cfg(32, 32, 4, 2)],
        128: [_cfg(32, 32, 4, 2), _cfg(64, 32, 4, 2), _cfg(64, 64, 8, 2)],
        256: [_cfg(32, 32, 4, 1)],
    },
}
_FP32_FWD = [_cfg(64, 32, 4, 2), _cfg(32, 32, 4, 2)]
_FP32_BWD = [_cfg(32, 32, 4, 1), _cfg(16, 32, 4, 1)]
_INTERPRETER = [_cfg(16, 16, 4, 1)]  # the interpreter runs every program in numpy: small tiles


def _arch_key(arch: int) -> int:
    return 90 if arch >= 90 else 80


def config_space(
    kind: str, arch: int, block_d: int, dtype: torch.dtype, sparse_block: int = 0, dropout: bool = False
) -> list[dict]:
    """The pruned list of tile configurations for ``kind`` ("fwd" or "bwd"); the first is
    the deterministic fallback. A block-sparse launch keeps only tiles that divide the
    mask's block size; with dropout, the hash's registers push 128 x 128 forward tiles
    into spilling (sm_90a: 255 registers + 88 B of stack at d = 64, + 40 B at d = 128), so
    they are dropped."""
    if INTERPRETED:
        space = list(_INTERPRETER)
    elif dtype == torch.float32:
        space = list(_FP32_FWD if kind == "fwd" else _FP32_BWD)
        if block_d > 128:
            space = [_cfg(32, 32, 8, 1), _cfg(16, 32, 4, 1)]
    else:
        table = (_FWD_SPACE if kind == "fwd" else _BWD_SPACE)[_arch_key(arch)]
        space = list(table[64 if block_d <= 64 else 128 if block_d <= 128 else 256])
    if dropout and kind == "fwd":
        space = [c for c in space if c["BLOCK_M"] * c["BLOCK_N"] < 128 * 128] or space
    if sparse_block:
        fits = [c for c in space if sparse_block % c["BLOCK_M"] == 0 and sparse_block % c["BLOCK_N"] == 0]
        if not fits:
            t = min(16, sparse_block)
            fits = [_cfg(t, t, 4, 1)]
        space = fits
    return space


def _current_arch(device: torch.device) -> int:
    if device.type != "cuda":
        return 90
    major, minor = torch.cuda.get_device_capability(device)
    return major * 10 + minor


_TUNED: dict = {}


def _tuned(
    kernel, kind: str, arch: int, block_d: int, dtype: torch.dtype, sparse_block: int, dropout: bool, bucket: int
):
    """The kernel wrapped in triton.autotune over its pruned space: one wrapper per space
    and power-of-two length bucket (cached), so a new sequence length within a bucket
    (every prompt of a generation) reuses the tuned configuration instead of tuning again."""
    space = config_space("fwd" if kind == "fwd" else "bwd", arch, block_d, dtype, sparse_block, dropout)
    key = (id(kernel), kind, arch, block_d, dtype, sparse_block, dropout, bucket)
    if key not in _TUNED:
        configs = [
            triton.Config(
                {"BLOCK_M": c["BLOCK_M"], "BLOCK_N": c["BLOCK_N"]}, num_warps=c["num_warps"], num_stages=c["num_stages"]
            )
            for c in space
        ]
        reset = ["DQ"] if kind == "bwd_dq" else (["DK", "DV"] if kind == "bwd_dkdv" else [])
        _TUNED[key] = triton.autotune(configs=configs, key=["HEAD_DIM", "CAUSAL"], reset_to_zero=reset)(kernel)
    return _TUNED[key]


def _launch(
    kernel, kind: str, grid_of, args, consts: dict, device, block_d: int, dtype, sparse_block: int, length: int = 0
):
    """Launch with autotuning (per power-of-two bucket of ``length``), or with the first
    config of the pruned space."""
    arch = _current_arch(device)
    space_kind = "fwd" if kind == "fwd" else "bwd"
    dropout = bool(consts.get("DROPOUT"))
    if autotune_enabled():
        tuned = _tuned(
            kernel, kind, arch, block_d, dtype, sparse_block, dropout, triton.next_power_of_2(max(int(length), 1))
        )
        tuned[lambda meta: grid_of(meta["BLOCK_M"], meta["BLOCK_N"])](*args, **consts)
        return
    cfg = config_space(space_kind, arch, block_d, dtype, sparse_block, dropout)[0]
    kernel[grid_of(cfg["BLOCK_M"], cfg["BLOCK_N"])](*args, **consts, **cfg)


# --------------------------------------------------------------------------------------
# launchers
# --------------------------------------------------------------------------------------
def _new(shape, like: torch.Tensor, dtype=None) -> torch.Tensor:
    dtype = dtype or like.dtype
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=like.device)
    return torch.empty(shape, dtype=dtype, device=like.device)


def _block_d(head_dim: int) -> int:
    return max(16, triton.next_power_of_2(head_dim))


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


def supports(q: torch.Tensor) -> bool:
    """Whether the kernels take inputs like ``q`` (dtype and head dim)."""
    return q.dtype in SUPPORTED_DTYPES and 1 <= q.shape[-1] <= 256


def _check(q: torch.Tensor) -> None:
    if q.dtype not in SUPPORTED_DTYPES:
        raise PaperkbError(f"the triton kernel takes fp16, bf16 or fp32 inputs; got {q.dtype}")
    if not 1 <= q.shape[-1] <= 256:
        raise PaperkbError(f"the triton kernel takes head dims up to 256; got {q.shape[-1]}")
    if not (q.is_cuda or INTERPRETED):
        raise PaperkbError("the triton kernel needs CUDA tensors (or TRITON_INTERPRET=1 on the CPU)")


def _sparse_args(block_mask: torch.Tensor | None, block_size: int, like: torch.Tensor):
    """(mask tensor, its 4 strides, SPARSE, SPARSE_BLOCK) for the kernels."""
    if block_mask is None:
        return like, (0, 0, 0, 0), False, 1
    if block_size < 16 or block_size & (block_size - 1):
        raise PaperkbError(f"the triton kernel needs a power-of-two block_size >= 16; got {block_size}")
    m = block_mask.to(torch.int8).contiguous()
    return m, m.stride(), True, block_size


def _constexprs(causal: bool, dropout_p: float, sparse: bool, sparse_block: int, block_d: int, q) -> dict:
    """The constexpr flags the forward and both backward kernels share."""
    return dict(
        CAUSAL=causal,
        EVEN_D=block_d == q.shape[-1],
        DROPOUT=dropout_p > 0,
        SPARSE=sparse,
        SPARSE_BLOCK=sparse_block,
        BLOCK_D=block_d,
        PRECISION=_precision(q.dtype),
    )


def attention_forward(
    q, k, v, causal: bool, scale: float, dropout_p: float = 0.0, seed: int = 0, block_mask=None, block_size: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel. Returns O (B, H, Nq, d) and fp32 L (B, H, Nq)."""
    _check(q)
    B, H, n_q, d = q.shape
    h_kv, n_k = k.shape[1], k.shape[2]
    out = _new((B, H, n_q, d), q)
    lse = _new((B, H, n_q), q, torch.float32)
    block_d = _block_d(d)
    mask, mstrides, sparse, sparse_block = _sparse_args(block_mask, block_size, q)
    # fmt: off
    args = (
        q, k, v, out, lse, mask,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(), *mstrides,
        H, H // h_kv, n_q, n_k, d,
        scale * LOG2E, float(dropout_p), 1.0 / (1.0 - dropout_p), int(seed),
    )
    # fmt: on
    consts = _constexprs(causal, dropout_p, sparse, sparse_block, block_d, q)
    grid_of = lambda bm, bn: (triton.cdiv(n_q, bm), B * H)  # one program per query block
    sb = sparse_block if sparse else 0
    _launch(_fwd_kernel, "fwd", grid_of, args, consts, q.device, block_d, q.dtype, sb, max(n_q, n_k))
    return out, lse


def attention_backward(
    do,
    q,
    k,
    v,
    out,
    lse,
    causal: bool,
    scale: float,
    dropout_p: float = 0.0,
    seed: int = 0,
    block_mask=None,
    block_size: int = 128,
):
    """Launch the backward kernels. Returns dQ, dK, dV in the input dtype."""
    B, H, n_q, d = q.shape
    h_kv, n_k = k.shape[1], k.shape[2]
    group = H // h_kv
    do = do.contiguous()
    delta = (do.float() * out.float()).sum(dim=-1).contiguous()  # D = rowsum(dO * O), (B, H, Nq)
    dq = _new(q.shape, q)
    if group == 1:
        dk, dv = _new(k.shape, k), _new(v.shape, v)
    else:  # one slot per query head, summed over each group below
        dk, dv = _new((B, H, n_k, d), k, torch.float32), _new((B, H, n_k, d), v, torch.float32)
    block_d = _block_d(d)
    mask, mstrides, sparse, sparse_block = _sparse_args(block_mask, block_size, q)
    tail = (H, group, n_q, n_k, d, scale, scale * LOG2E, float(dropout_p), 1.0 / (1.0 - dropout_p), int(seed))
    consts = _constexprs(causal, dropout_p, sparse, sparse_block, block_d, q)
    sb = sparse_block if sparse else 0

    def launch_backward(kernel, kind: str, grid_of, grads: tuple) -> None:
        """One backward kernel: the inputs, the gradients it writes and the block mask,
        then the strides of q, k, v, dO and each gradient, the mask's, and the scalars."""
        strides = [s for t in (q, k, v, do, *grads) for s in t.stride()]
        args = (q, k, v, do, lse, delta, *grads, mask, *strides, *mstrides, *tail)
        _launch(kernel, kind, grid_of, args, consts, q.device, block_d, q.dtype, sb, max(n_q, n_k))

    launch_backward(_bwd_dkdv_kernel, "bwd_dkdv", lambda bm, bn: (triton.cdiv(n_k, bn), B * H), (dk, dv))
    launch_backward(_bwd_dq_kernel, "bwd_dq", lambda bm, bn: (triton.cdiv(n_q, bm), B * H), (dq,))
    if group > 1:
        dk = dk.view(B, h_kv, group, n_k, d).sum(dim=2).to(k.dtype)
        dv = dv.view(B, h_kv, group, n_k, d).sum(dim=2).to(v.dtype)
    return dq, dk, dv


class TritonAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, q, k, v, causal: bool, scale: float, dropout_p: float, seed: int, block_mask, block_size: int,
        backward_seed: int,
    ):  # fmt: skip
        # backward_seed != seed is a broken variant of repro.attention.controls (the public
        # triton_attention passes the seed itself, so the backward regenerates the forward's mask)
        out, lse = attention_forward(q, k, v, causal, scale, dropout_p, seed, block_mask, block_size)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale, ctx.block_mask, ctx.block_size = causal, scale, block_mask, block_size
        ctx.dropout_p, ctx.seed = dropout_p, backward_seed
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(
            grad_out, q, k, v, out, lse, ctx.causal, ctx.scale, ctx.dropout_p, ctx.seed, ctx.block_mask, ctx.block_size
        )
        return dq, dk, dv, None, None, None, None, None, None, None


def triton_attention(
    q,
    k,
    v,
    causal: bool = False,
    softmax_scale: float | None = None,
    *,
    dropout_p: float = 0.0,
    seed: int = 0,
    block_mask=None,
    block_size: int = 128,
):
    """Differentiable attention through the Triton kernels. ``block_mask``: bool (B, H,
    Nq/bs, Nk/bs) (see ``api.normalize_block_mask``)."""
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    return TritonAttention.apply(
        q, k, v, bool(causal), float(scale), float(dropout_p), int(seed), block_mask, int(block_size), int(seed)
    )


# --------------------------------------------------------------------------------------
# split-KV decoding
# --------------------------------------------------------------------------------------
def _decode_config(block_d: int, dtype: torch.dtype) -> dict:
    if INTERPRETED:
        return _cfg(16, 16, 4, 1)
    if dtype == torch.float32:
        return _cfg(16, 32, 4, 2)
    return _cfg(16, 64 if block_d <= 128 else 32, 4, 3)


def _num_splits(bh: int, n_k: int, block_n: int, device: torch.device) -> int:
    """Enough splits for about two programs per SM, each with at least two key tiles."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
    want = max(1, -(-2 * sms // bh))
    return max(1, min(want, -(-n_k // (2 * block_n))))


def split_kv_attention(
    q, k, v, causal: bool = False, softmax_scale: float | None = None, n_splits: int | None = None
) -> torch.Tensor:
    """Flash-decoding: attention for Nq <= 16 queries with the keys split across
    programs; each split's output and log-sum-exp are combined exactly:
    O = sum_s exp(L_s - L) O_s with L = logsumexp_s L_s. Forward only."""
    _check(q)
    B, H, n_q, d = q.shape
    if n_q > 16:
        raise PaperkbError(f"split-KV decoding takes at most 16 queries; got {n_q}")
    h_kv, n_k = k.shape[1], k.shape[2]
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    block_d = _block_d(d)
    cfg = _decode_config(block_d, q.dtype)
    splits = n_splits or _num_splits(B * H, n_k, cfg["BLOCK_N"], q.device)
    split_len = triton.cdiv(triton.cdiv(max(n_k, 1), splits), cfg["BLOCK_N"]) * cfg["BLOCK_N"]
    splits = max(1, triton.cdiv(n_k, split_len))
    o_part = _new((B * H, splits, n_q, d), q, torch.float32)
    lse_part = _new((B * H, splits, n_q), q, torch.float32)
    # fmt: off
    _decode_kernel[(splits, B * H)](
        q, k, v, o_part, lse_part,
        *q.stride(), *k.stride(), *v.stride(),
        H, H // h_kv, n_q, n_k, d,
        scale * LOG2E, split_len, splits,
        CAUSAL=causal, EVEN_D=block_d == d, BLOCK_D=block_d, PRECISION=_precision(q.dtype), **cfg,
    )
    # fmt: on
    lse = lse_part * LN2  # (BH, S, Nq), natural log
    total = torch.logsumexp(lse, dim=1, keepdim=True)  # -inf where no split saw a key
    weight = torch.where(torch.isinf(total), torch.zeros_like(lse), torch.exp(lse - total))
    out = (weight[..., None] * o_part).sum(dim=1)
    return out.view(B, H, n_q, d).to(q.dtype)
