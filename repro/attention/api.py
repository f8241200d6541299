"""The one entry point: ``flash_attention(q, k, v, causal, softmax_scale, dropout_p,
generator, block_mask, block_size, impl)``."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class AttentionCall:
    """One checked call of ``flash_attention``: the inputs, the normalised options, the
    dropout seed drawn from the generator and the implementation chosen (never "auto")."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    causal: bool
    softmax_scale: float | None
    dropout_p: float
    seed: int
    block_mask: torch.Tensor | None
    block_size: int
    impl: str


def _check_options(softmax_scale, dropout_p) -> float:
    """The softmax scale and dropout probability checked; returns ``dropout_p`` as a float."""
    if softmax_scale is not None and not (math.isfinite(softmax_scale) and softmax_scale > 0):
        raise PaperkbError(f"softmax_scale must be a positive finite number; got {softmax_scale!r}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p < 1.0:
        raise PaperkbError(f"dropout_p must be a number in [0, 1); got {dropout_p!r}")
    return float(dropout_p)


def prepare_call(
    q, k, v, causal, softmax_scale, dropout_p, generator, block_mask, block_size: int, impl: str
) -> AttentionCall:
    """Check ``flash_attention``'s arguments, pick the implementation for "auto" and draw
    the dropout seed (only when dropout is on, so the generator is untouched otherwise)."""
    _check_inputs(q, k, v, impl)
    dropout_p = _check_options(softmax_scale, dropout_p)
    if block_mask is not None:
        block_mask = normalize_block_mask(block_mask, q, k, block_size)
    if impl == "auto":
        impl = _pick_impl(q, k, v, dropout_p, block_mask)
    seed = draw_seed(generator) if dropout_p > 0 else 0
    return AttentionCall(q, k, v, causal, softmax_scale, dropout_p, seed, block_mask, block_size, impl)


def _run_naive(c: AttentionCall) -> torch.Tensor:
    keep = None
    if c.dropout_p > 0:
        B, H, n_q, _ = c.q.shape
        keep = full_keep_mask(c.seed, B, H, n_q, c.k.shape[2], c.dropout_p, c.q.device)
    return naive_attention(
        c.q,
        c.k,
        c.v,
        c.causal,
        c.softmax_scale,
        keep=keep,
        dropout_p=c.dropout_p,
        block_mask=c.block_mask,
        block_size=c.block_size,
    )


def tiled_blocks(c: AttentionCall) -> dict:
    """The tile sizes of the tiled path: the mask's block size when there is a block mask."""
    return dict(block_q=c.block_size, block_k=c.block_size) if c.block_mask is not None else {}


def _run_tiled(c: AttentionCall) -> torch.Tensor:
    return tiled_attention(
        c.q,
        c.k,
        c.v,
        c.causal,
        c.softmax_scale,
        **tiled_blocks(c),
        dropout_p=c.dropout_p,
        seed=c.seed,
        block_mask=c.block_mask,
    )


def _run_sdpa(c: AttentionCall) -> torch.Tensor:
    if c.dropout_p > 0:
        raise PaperkbError("impl='sdpa' cannot apply the counter-based dropout; use tiled, triton or naive")
    if c.block_mask is None:
        return sdpa_attention(c.q, c.k, c.v, c.causal, c.softmax_scale)
    from .naive import expand_block_mask

    n_q, n_k = c.q.shape[2], c.k.shape[2]
    allowed = expand_block_mask(c.block_mask, n_q, n_k, c.block_size)
    if c.causal:
        allowed = allowed & causal_mask(n_q, n_k, device=c.q.device)
    gqa = c.q.shape[1] != c.k.shape[1]
    out = F.scaled_dot_product_attention(c.q, c.k, c.v, attn_mask=allowed, scale=c.softmax_scale, enable_gqa=gqa)
    return out.masked_fill(~allowed.any(-1, keepdim=True), 0.0)


def kernels_for(c: AttentionCall):
    """The Triton kernel module, once the inputs are known to be where it can run them."""
    kernels = load_triton_kernels()
    if not (c.q.is_cuda or kernels.INTERPRETED):
        raise PaperkbError(f"impl={c.impl!r} needs CUDA tensors (or TRITON_INTERPRET=1 for Triton's CPU interpreter)")
    return kernels


def _run_split_kv(c: AttentionCall) -> torch.Tensor:
    kernels = kernels_for(c)
    if c.dropout_p > 0 or c.block_mask is not None:
        raise PaperkbError("impl='split-kv' (decoding) takes neither dropout nor a block mask")
    return kernels.split_kv_attention(c.q, c.k, c.v, c.causal, c.softmax_scale)


def _run_triton(c: AttentionCall) -> torch.Tensor:
    return kernels_for(c).triton_attention(
        c.q,
        c.k,
        c.v,
        c.causal,
        c.softmax_scale,
        dropout_p=c.dropout_p,
        seed=c.seed,
        block_mask=c.block_mask,
        block_size=c.block_size,
    )


# impl -> the function that runs a checked call with it
RUNNERS = {
    "naive": _run_naive,
    "tiled": _run_tiled,
    "sdpa": _run_sdpa,
    "split-kv": _run_split_kv,
    "triton": _run_triton,
}


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
    dropout), auto (see ``_pick_impl``). The experiments' deliberately broken variants
    (negative controls) live in ``repro.attention.controls``, not here.

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 16, 32)
    >>> flash_attention(q, k, v, causal=True, impl="tiled").shape
    torch.Size([1, 2, 16, 32])
    """
    call = prepare_call(q, k, v, causal, softmax_scale, dropout_p, generator, block_mask, block_size, impl)
    return RUNNERS[call.impl](call)
