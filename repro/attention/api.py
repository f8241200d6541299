"""The one entry point: ``flash_attention(q, k, v, causal, softmax_scale, dropout_p,
generator, block_mask, block_size, impl)``."""

from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F

from paperkb.errors import PaperkbError

from .dropout import draw_seed, full_keep_mask
from .naive import block_grid, causal_mask, naive_attention
from .tiled import tiled_attention

IMPLS = ("auto", "naive", "tiled", "triton", "split-kv", "sdpa")
# impl="auto" decodes with split-KV (flash-decoding) on CUDA up to this many queries
DECODE_MAX_QUERIES = 16
_KERNEL_MODULE = "repro.attention.triton_kernel"


def triton_available() -> bool:
    """True when the optional triton package can be imported."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def load_triton_kernels():
    """Import the Triton kernel module (raises PaperkbError without triton).

    Whether its kernels compile for CUDA or run in Triton's CPU interpreter is fixed when
    triton is first imported, by ``TRITON_INTERPRET=1`` in the environment; the module
    says which in ``INTERPRETED``.
    """
    if not triton_available():
        raise PaperkbError("impl='triton' needs the optional triton package (pip install 'paperkb[gpu]')")
    return importlib.import_module(_KERNEL_MODULE)


def sdpa_attention(q, k, v, causal: bool = False, softmax_scale: float | None = None):
    """torch's scaled_dot_product_attention with flash-attention's bottom-right causal mask."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    gqa = q.shape[1] != k.shape[1]
    if causal and n_q != n_k:
        # is_causal aligns top-left; an explicit mask gives bottom-right (and 0 for empty rows)
        mask = causal_mask(n_q, n_k, device=q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=softmax_scale, enable_gqa=gqa)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=softmax_scale, enable_gqa=gqa)


def _check_inputs(q, k, v, impl: str) -> None:
    if impl not in IMPLS:
        raise PaperkbError(f"impl must be one of {', '.join(IMPLS)}; got {impl!r}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise PaperkbError(f"{name} must be a 4-d tensor (B, H, N, d); got {getattr(t, 'shape', type(t))}")
    if k.shape != v.shape:
        raise PaperkbError(f"k and v must have the same shape; got {tuple(k.shape)} and {tuple(v.shape)}")
    B, H, _, d = q.shape
    if k.shape[0] != B or k.shape[3] != d:
        raise PaperkbError(f"q {tuple(q.shape)} and k {tuple(k.shape)} disagree on batch or head dim")
    if k.shape[1] == 0 or H % k.shape[1]:
        raise PaperkbError(f"query heads ({H}) must be a multiple of key/value heads ({k.shape[1]})")
    if not (q.dtype == k.dtype == v.dtype):
        raise PaperkbError(f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.dtype.is_floating_point:
        raise PaperkbError(f"attention needs floating-point inputs; got {q.dtype}")


def normalize_block_mask(block_mask, q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
    """Check ``block_mask`` and broadcast it to a contiguous bool (B, H, Nq/bs, Nk/bs)."""
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise PaperkbError(f"block_size must be a positive integer; got {block_size!r}")
    if not isinstance(block_mask, torch.Tensor):
        raise PaperkbError(f"block_mask must be a boolean tensor; got {type(block_mask).__name__}")
    B, H, n_q, _ = q.shape
    grid = (block_grid(n_q, block_size), block_grid(k.shape[2], block_size))
    if block_mask.dim() < 2 or tuple(block_mask.shape[-2:]) != grid:
        raise PaperkbError(
            f"block_mask must end in (Nq/block_size, Nk/block_size) = {grid} blocks "
            f"(block_size {block_size}); got shape {tuple(block_mask.shape)}"
        )
    try:
        mask = torch.broadcast_to(block_mask.to(device=q.device, dtype=torch.bool), (B, H, *grid))
    except RuntimeError:
        raise PaperkbError(
            f"block_mask of shape {tuple(block_mask.shape)} does not broadcast over batch {B} and heads {H}"
        ) from None
    return mask.contiguous()


def _pick_impl(q, k, v, dropout_p: float, block_mask) -> str:
    """impl="auto": on CUDA with triton, split-KV for decoding (few queries, no grad),
    else the Triton kernel; elsewhere torch's sdpa, or the tiled loops when dropout or a
    block mask is asked for (sdpa's own dropout cannot share our counter-based mask)."""
    if q.is_cuda and triton_available() and load_triton_kernels().supports(q):
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        if q.shape[2] <= DECODE_MAX_QUERIES and not needs_grad and dropout_p == 0 and block_mask is None:
            return "split-kv"
        return "triton"
    return "tiled" if dropout_p > 0 or block_mask is not None else "sdpa"


def flash_attention(
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
    *,
    sabotage: str | None = None,
) -> torch.Tensor:
    """Exact softmax attention. q: (B, H, Nq, d); k, v: (B, H_kv, Nk, d) with H a multiple
    of H_kv (MHA, GQA, MQA). Returns (B, H, Nq, d), differentiable.

    ``causal`` masks key j for query i when j > i + Nk - Nq (bottom-right, as
    flash-attention); a query that sees no key gets 0. ``softmax_scale`` defaults to
    1/sqrt(d). ``dropout_p`` drops attention probabilities (Algorithm 2) with a
    counter-based mask seeded from ``generator`` (torch's default generator when None),
    which the backward regenerates. ``block_mask`` (bool, broadcastable to (B, H,
    ceil(Nq/block_size), ceil(Nk/block_size))) keeps only the True blocks of keys for each
    block of queries (block-sparse FlashAttention, Section 3.3); a query row whose blocks
    are all False gets zeros.

    ``impl``: naive (materialises N x N), tiled (Algorithms 1, 2, 4 in PyTorch), triton
    (fused kernels; needs triton and a CUDA tensor, or the interpreter), split-kv
    (flash-decoding for a few queries, forward only), sdpa (torch's fused kernel; no
    dropout), auto (see ``_pick_impl``). ``sabotage`` runs a deliberately broken variant,
    for negative controls only.

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 16, 32)
    >>> flash_attention(q, k, v, causal=True, impl="tiled").shape
    torch.Size([1, 2, 16, 32])
    """
    _check_inputs(q, k, v, impl)
    if softmax_scale is not None and not (math.isfinite(softmax_scale) and softmax_scale > 0):
        raise PaperkbError(f"softmax_scale must be a positive finite number; got {softmax_scale!r}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p < 1.0:
        raise PaperkbError(f"dropout_p must be a number in [0, 1); got {dropout_p!r}")
    dropout_p = float(dropout_p)
    if block_mask is not None:
        block_mask = normalize_block_mask(block_mask, q, k, block_size)
    if impl == "auto":
        impl = _pick_impl(q, k, v, dropout_p, block_mask)
    seed = draw_seed(generator) if dropout_p > 0 else 0
    if impl == "naive":
        keep = (
            full_keep_mask(seed, q.shape[0], q.shape[1], q.shape[2], k.shape[2], dropout_p, q.device)
            if dropout_p > 0
            else None
        )
        return naive_attention(
            q, k, v, causal, softmax_scale, keep=keep, dropout_p=dropout_p, block_mask=block_mask, block_size=block_size
        )
    if impl == "tiled":
        if block_mask is not None:
            return tiled_attention(
                q,
                k,
                v,
                causal,
                softmax_scale,
                block_size,
                block_size,
                dropout_p=dropout_p,
                seed=seed,
                block_mask=block_mask,
                sabotage=sabotage,
            )
        return tiled_attention(q, k, v, causal, softmax_scale, dropout_p=dropout_p, seed=seed, sabotage=sabotage)
    if impl == "sdpa":
        if dropout_p > 0:
            raise PaperkbError("impl='sdpa' cannot apply the counter-based dropout; use tiled, triton or naive")
        if block_mask is not None:
            from .naive import expand_block_mask

            allowed = expand_block_mask(block_mask, q.shape[2], k.shape[2], block_size)
            if causal:
                allowed = allowed & causal_mask(q.shape[2], k.shape[2], device=q.device)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, scale=softmax_scale, enable_gqa=q.shape[1] != k.shape[1]
            )
            return out.masked_fill(~allowed.any(-1, keepdim=True), 0.0)
        return sdpa_attention(q, k, v, causal, softmax_scale)
    kernels = load_triton_kernels()
    if not (q.is_cuda or kernels.INTERPRETED):
        raise PaperkbError(f"impl={impl!r} needs CUDA tensors (or TRITON_INTERPRET=1 for Triton's CPU interpreter)")
    if impl == "split-kv":
        if dropout_p > 0 or block_mask is not None:
            raise PaperkbError("impl='split-kv' (decoding) takes neither dropout nor a block mask")
        return kernels.split_kv_attention(q, k, v, causal, softmax_scale)
    return kernels.triton_attention(
        q,
        k,
        v,
        causal,
        softmax_scale,
        dropout_p=dropout_p,
        seed=seed,
        block_mask=block_mask,
        block_size=block_size,
        sabotage=sabotage,
    )
