"""The one entry point: ``flash_attention(q, k, v, causal, softmax_scale, impl)``."""

from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F

from paperkb.errors import PaperkbError

from .naive import causal_mask, naive_attention
from .tiled import tiled_attention

IMPLS = ("auto", "naive", "tiled", "triton", "sdpa")
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
        raise PaperkbError(
            "impl='triton' needs the optional triton package (pip install 'paperkb[gpu]')"
        )
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


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    softmax_scale: float | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Exact softmax attention. q: (B, H, Nq, d); k, v: (B, H_kv, Nk, d) with H a multiple
    of H_kv (MHA, GQA, MQA). Returns (B, H, Nq, d), differentiable.

    ``causal`` masks key j for query i when j > i + Nk - Nq (bottom-right, as
    flash-attention); a query that sees no key gets 0. ``softmax_scale`` defaults to
    1/sqrt(d). ``impl``: naive (materialises N x N), tiled (Algorithm 1/4 in PyTorch),
    triton (fused kernels; needs triton and a CUDA tensor, or the interpreter), sdpa
    (torch's fused kernel), auto (triton for CUDA inputs it supports when triton is
    installed, else sdpa: the fastest exact implementation available).

    >>> import torch
    >>> q = k = v = torch.randn(1, 2, 16, 32)
    >>> flash_attention(q, k, v, causal=True, impl="tiled").shape
    torch.Size([1, 2, 16, 32])
    """
    _check_inputs(q, k, v, impl)
    if softmax_scale is not None and not (math.isfinite(softmax_scale) and softmax_scale > 0):
        raise PaperkbError(f"softmax_scale must be a positive finite number; got {softmax_scale!r}")
    if impl == "auto":
        impl = "sdpa"
        if q.is_cuda and triton_available() and load_triton_kernels().supports(q):
            impl = "triton"
    if impl == "naive":
        return naive_attention(q, k, v, causal, softmax_scale)
    if impl == "tiled":
        return tiled_attention(q, k, v, causal, softmax_scale)
    if impl == "sdpa":
        return sdpa_attention(q, k, v, causal, softmax_scale)
    kernels = load_triton_kernels()
    if not (q.is_cuda or kernels.INTERPRETED):
        raise PaperkbError(
            "impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for Triton's CPU interpreter)"
        )
    return kernels.triton_attention(q, k, v, causal, softmax_scale)
