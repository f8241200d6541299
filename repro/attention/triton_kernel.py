"""FlashAttention forward and backward as Triton kernels (FlashAttention-2 work split:
Dao 2023, Algorithms 1 and 2, on top of the FlashAttention paper's Algorithms 1 and 4).

* forward: one program per (block of BLOCK_M queries, batch x head); it streams blocks
  of keys/values through on-chip memory with the online softmax and writes O and the
  log-sum-exp L (natural log; +inf for a query that sees no key, so exp(S - L) = 0).
* backward: D = rowsum(dO * O) in PyTorch, then two kernels, neither needing atomics:
  one program per key block computes dK, dV (looping over the G query heads that share
  the key/value head under GQA/MQA), one program per query block computes dQ.

Covers causal (bottom-right aligned when Nq != Nk) and not, MHA/GQA/MQA, head dims 16
to 256 (padded to a power of two with masked loads), fp16/bf16/fp32 (fp32 dot products
run in IEEE precision, not TF32, so fp32 stays exact to fp32 rounding), and lengths that
are not multiples of the block sizes. Blocks that need no mask run a mask-free loop.

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


# --------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------
@triton.jit
def _fwd_inner(
    acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
    rows, offs_n, offs_d, d_mask, lo, hi, N_K, offset, qk_scale,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, EVEN_D: tl.constexpr,
    BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):
    for start_n in range(lo, hi, BLOCK_N):
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
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _fwd_kernel(
    Q, K, V, O, LSE,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    H, GROUP, N_Q, N_K, HEAD_DIM, qk_scale,
    CAUSAL: tl.constexpr, EVEN_D: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
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
    acc, l_i, m_i = _fwd_inner(
        acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
        rows, offs_n, offs_d, d_mask, 0, full, N_K, offset, qk_scale,
        False, CAUSAL, EVEN_D, BLOCK_N, PRECISION,
    )
    acc, l_i, m_i = _fwd_inner(
        acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
        rows, offs_n, offs_d, d_mask, full, hi, N_K, offset, qk_scale,
        True, CAUSAL, EVEN_D, BLOCK_N, PRECISION,
    )

    empty = l_i == 0.0
    acc = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("inf"), (m_i + tl.math.log2(tl.where(empty, 1.0, l_i))) * 0.6931471805599453)
    o_ptrs = O + b * stride_ob + h * stride_oh + rows[:, None] * stride_om + offs_d[None, :] * stride_od
    tl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=row_mask[:, None] & d_mask[None, :])
    tl.store(LSE + bh * N_Q + rows, lse, mask=row_mask)


# --------------------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------------------
@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    H, H_KV, GROUP, N_Q, N_K, HEAD_DIM, sm_scale, qk_scale,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    start_n = tl.program_id(0) * BLOCK_N
    bhk = tl.program_id(1)
    b = bhk // H_KV
    h_kv = bhk % H_KV
    cols = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    col_mask = cols < N_K
    kv_mask = col_mask[:, None] & d_mask[None, :]

    k = tl.load(K + b * stride_kb + h_kv * stride_kh + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                mask=kv_mask, other=0.0)
    v = tl.load(V + b * stride_vb + h_kv * stride_vh + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)

    offset = N_K - N_Q
    lo = 0
    if CAUSAL:
        lo = tl.maximum(start_n - offset, 0) // BLOCK_M * BLOCK_M  # first query block that sees key start_n
    for g in range(0, GROUP):  # the query heads sharing this key/value head
        h = h_kv * GROUP + g
        q_base = Q + b * stride_qb + h * stride_qh
        do_base = DO + b * stride_dob + h * stride_doh
        for start_m in range(lo, N_Q, BLOCK_M):
            rows = start_m + offs_m
            row_mask = rows < N_Q
            qd_mask = row_mask[:, None] & d_mask[None, :]
            q = tl.load(q_base + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd, mask=qd_mask, other=0.0)
            do = tl.load(do_base + rows[:, None] * stride_dom + offs_d[None, :] * stride_dod, mask=qd_mask, other=0.0)
            lse = tl.load(LSE + (b * H + h) * N_Q + rows, mask=row_mask, other=float("inf")) * 1.4426950408889634
            delta = tl.load(DELTA + (b * H + h) * N_Q + rows, mask=row_mask, other=0.0)
            s_t = tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale  # S^T block (N, M)
            valid = col_mask[:, None] & row_mask[None, :]
            if CAUSAL:
                valid = valid & (cols[:, None] <= rows[None, :] + offset)
            p_t = tl.where(valid, tl.math.exp2(s_t - lse[None, :]), 0.0)  # recomputed P^T
            dv += tl.dot(p_t.to(do.dtype), do, input_precision=PRECISION)
            dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
            ds_t = p_t * (dp_t - delta[None, :])
            dk += tl.dot(ds_t.to(q.dtype), q, input_precision=PRECISION)
    dk = dk * sm_scale
    tl.store(DK + b * stride_dkb + h_kv * stride_dkh + cols[:, None] * stride_dkn + offs_d[None, :] * stride_dkd,
             dk.to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + b * stride_dvb + h_kv * stride_dvh + cols[:, None] * stride_dvn + offs_d[None, :] * stride_dvd,
             dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dqb, stride_dqh, stride_dqm, stride_dqd,
    H, GROUP, N_Q, N_K, HEAD_DIM, sm_scale, qk_scale,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr, PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    h_kv = h // GROUP
    rows = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    row_mask = rows < N_Q
    qd_mask = row_mask[:, None] & d_mask[None, :]

    q = tl.load(Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask=qd_mask, other=0.0)
    do = tl.load(DO + b * stride_dob + h * stride_doh + rows[:, None] * stride_dom + offs_d[None, :] * stride_dod,
                 mask=qd_mask, other=0.0)
    lse = tl.load(LSE + bh * N_Q + rows, mask=row_mask, other=float("inf")) * 1.4426950408889634
    delta = tl.load(DELTA + bh * N_Q + rows, mask=row_mask, other=0.0)
    k_base = K + b * stride_kb + h_kv * stride_kh
    v_base = V + b * stride_vb + h_kv * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    offset = N_K - N_Q
    hi = N_K
    if CAUSAL:
        hi = tl.minimum(N_K, tl.maximum(start_m + BLOCK_M + offset, 0))
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        kv_mask = (cols[:, None] < N_K) & d_mask[None, :]
        k = tl.load(k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd, mask=kv_mask, other=0.0)
        v = tl.load(v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd, mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        valid = row_mask[:, None] & (cols[None, :] < N_K)
        if CAUSAL:
            valid = valid & (cols[None, :] <= rows[:, None] + offset)
        p = tl.where(valid, tl.math.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    dq = dq * sm_scale
    tl.store(DQ + b * stride_dqb + h * stride_dqh + rows[:, None] * stride_dqm + offs_d[None, :] * stride_dqd,
             dq.to(DQ.dtype.element_ty), mask=qd_mask)


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


def _fwd_config(block_d: int, dtype: torch.dtype) -> dict:
    """Tile sizes. Chosen for H100-class GPUs (not autotuned: no GPU was available to
    tune them); the interpreter uses 16 x 16 tiles to stay fast."""
    if INTERPRETED:
        return dict(BLOCK_M=16, BLOCK_N=16, num_warps=4, num_stages=1)
    if dtype == torch.float32 and block_d > 128:
        return dict(BLOCK_M=32, BLOCK_N=32, num_warps=8, num_stages=1)
    if dtype == torch.float32 or block_d > 128:
        return dict(BLOCK_M=64, BLOCK_N=32, num_warps=4 if block_d <= 128 else 8, num_stages=2)
    if block_d <= 64:
        return dict(BLOCK_M=128, BLOCK_N=64, num_warps=4, num_stages=3)
    return dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3)


def _bwd_config(block_d: int, dtype: torch.dtype) -> dict:
    if INTERPRETED:
        return dict(BLOCK_M=16, BLOCK_N=16, num_warps=4, num_stages=1)
    if dtype == torch.float32 or block_d > 128:
        return dict(BLOCK_M=32, BLOCK_N=32, num_warps=4 if block_d <= 128 else 8, num_stages=1)
    if block_d <= 64:
        return dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=2)
    return dict(BLOCK_M=64, BLOCK_N=64, num_warps=8, num_stages=2)


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


def attention_forward(q, k, v, causal: bool, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel. Returns O (B, H, Nq, d) and fp32 L (B, H, Nq)."""
    _check(q)
    B, H, n_q, d = q.shape
    h_kv, n_k = k.shape[1], k.shape[2]
    out = _new((B, H, n_q, d), q)
    lse = _new((B, H, n_q), q, torch.float32)
    block_d = _block_d(d)
    cfg = _fwd_config(block_d, q.dtype)
    grid = (triton.cdiv(n_q, cfg["BLOCK_M"]), B * H)
    _fwd_kernel[grid](
        q, k, v, out, lse,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        H, H // h_kv, n_q, n_k, d, scale * LOG2E,
        CAUSAL=causal, EVEN_D=block_d == d, BLOCK_D=block_d, PRECISION=_precision(q.dtype), **cfg,
    )
    return out, lse


def attention_backward(do, q, k, v, out, lse, causal: bool, scale: float):
    """Launch the backward kernels. Returns dQ, dK, dV in the input dtype."""
    B, H, n_q, d = q.shape
    h_kv, n_k = k.shape[1], k.shape[2]
    delta = (do.float() * out.float()).sum(dim=-1).contiguous()  # D = rowsum(dO * O), (B, H, Nq)
    dq = _new(q.shape, q)
    dk = _new(k.shape, k)
    dv = _new(v.shape, v)
    block_d = _block_d(d)
    cfg = _bwd_config(block_d, q.dtype)
    common = dict(CAUSAL=causal, BLOCK_D=block_d, PRECISION=_precision(q.dtype), **cfg)
    _bwd_dkdv_kernel[(triton.cdiv(n_k, cfg["BLOCK_N"]), B * h_kv)](
        q, k, v, do, lse, delta, dk, dv,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dk.stride(), *dv.stride(),
        H, h_kv, H // h_kv, n_q, n_k, d, scale, scale * LOG2E, **common,
    )
    _bwd_dq_kernel[(triton.cdiv(n_q, cfg["BLOCK_M"]), B * H)](
        q, k, v, do, lse, delta, dq,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dq.stride(),
        H, H // h_kv, n_q, n_k, d, scale, scale * LOG2E, **common,
    )
    return dq, dk, dv


class TritonAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal: bool, scale: float):
        out, lse = attention_forward(q, k, v, causal, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale = causal, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(grad_out, q, k, v, out, lse, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None


def triton_attention(q, k, v, causal: bool = False, softmax_scale: float | None = None) -> torch.Tensor:
    """Differentiable attention through the Triton kernels."""
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    return TritonAttention.apply(q, k, v, bool(causal), float(scale))


# --------------------------------------------------------------------------------------
# ahead-of-time compilation (no GPU needed)
# --------------------------------------------------------------------------------------
def compile_kernels(arch: int = 90, dtype: torch.dtype = torch.bfloat16, head_dim: int = 128,
                    causal: bool = True) -> dict[str, int]:
    """Compile the three kernels for an NVIDIA GPU of compute capability ``arch`` (90:
    H100/H200) with the launch configuration the launchers would use, down to a cubin,
    without a GPU. Returns each kernel's shared memory in bytes. This checks what the
    CPU interpreter cannot: that the kernels type-check, lower and fit on the chip."""
    if INTERPRETED:
        raise PaperkbError("compile_kernels needs triton imported without TRITON_INTERPRET=1")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    ptr = {torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.float32: "*fp32"}[dtype]
    block_d = _block_d(head_dim)
    fwd, bwd = _fwd_config(block_d, dtype), _bwd_config(block_d, dtype)
    plans = {
        "forward": (_fwd_kernel, 5, fwd, dict(CAUSAL=causal, EVEN_D=block_d == head_dim, BLOCK_D=block_d)),
        "backward_dkdv": (_bwd_dkdv_kernel, 8, bwd, dict(CAUSAL=causal, BLOCK_D=block_d)),
        "backward_dq": (_bwd_dq_kernel, 7, bwd, dict(CAUSAL=causal, BLOCK_D=block_d)),
    }
    shared = {}
    for name, (fn, n_ptrs, cfg, consts) in plans.items():
        consts = dict(consts, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], PRECISION=_precision(dtype))
        signature = {}
        for i, arg in enumerate(fn.arg_names):
            if arg in consts:
                signature[arg] = "constexpr"
            elif i < n_ptrs:
                signature[arg] = "*fp32" if arg in ("LSE", "DELTA") else ptr
            else:
                signature[arg] = "fp32" if arg in ("qk_scale", "sm_scale") else "i32"
        src = ASTSource(fn=fn, signature=signature,
                        constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
        kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                options=dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"]))
        shared[name] = int(kernel.metadata.shared)
    return shared
