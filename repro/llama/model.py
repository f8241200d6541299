"""Llama 2 (Touvron et al., 2023), written after Meta's reference ``model.py``.

Section 2.2 of the paper: the Llama 1 architecture (pre-normalisation with RMSNorm,
SwiGLU feed-forward, rotary position embeddings) with a 4k context and, for the larger
models, grouped-query attention (GQA; Ainslie et al., 2023). Table 1 gives the shapes;
``PRESETS`` below reproduces them, and ``count_parameters`` on a meta-device model gives
the published totals exactly.

Parameter names follow Meta's checkpoints (``layers.0.attention.wq.weight`` ...), so a
``consolidated.00.pth`` loads without renaming; ``repro.llama.weights`` maps to and from
the Hugging Face layout. Rotary embeddings use Meta's convention: each head's feature
dimension is read as consecutive (real, imaginary) pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from repro.modeling import count_parameters, on_meta  # noqa: F401  (count_parameters: re-exported)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """GQA: (B, H_kv, N, d) -> (B, H_kv * n_rep, N, d), each key/value head repeated for the
    n_rep query heads of its group (Meta's ``repeat_kv``, on the head axis)."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def causal_mask(nq: int, nk: int, device=None) -> Optional[torch.Tensor]:
    """Causal rule aligned bottom-right: query i (of nq) sits at key position nk - nq + i,
    so a chunk after cached tokens sees them all. (nq, nk) bool, True = may attend; None for
    one query (decoding sees every cached key)."""
    if nq == 1:
        return None
    return torch.ones(nq, nk, dtype=torch.bool, device=device).tril(diagonal=nk - nq)


# Each backend: (q (B, H, Nq, d), k and v (B, H_kv, Nk, d), scale, mask) -> (B, H, Nq, d).
# ``mask`` (B, 1, Nq, Nk) bool, True = may attend, replaces the causal rule (packed
# sequences: causal within each example, nothing across examples); a backend that cannot
# apply it refuses it.
AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, Optional[torch.Tensor]], torch.Tensor]


def _sdpa_attention(q, k, v, scale: float, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """torch's fused scaled_dot_product_attention."""
    n_rep = q.shape[1] // k.shape[1]
    if mask is None and q.shape[2] == 1:
        # Decoding: fold each KV group's query heads into the query axis, so no key or
        # value is copied and no mask is needed.
        bsz, n_heads, _, hd = q.shape
        qg = q.reshape(bsz, k.shape[1], n_rep, hd)
        return F.scaled_dot_product_attention(qg, k, v, scale=scale).reshape(bsz, n_heads, 1, hd)
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    if mask is None and q.shape[2] == k.shape[2]:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    if mask is None:
        mask = causal_mask(q.shape[2], k.shape[2], q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _math_attention(q, k, v, scale: float, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Equation 1 of Vaswani et al. as written: softmax(QK^T · scale) V, scores in fp32."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    scores = (q @ k.transpose(-2, -1)).float() * scale  # (B, H, Nq, Nk)
    if mask is None:
        mask = causal_mask(q.shape[2], k.shape[2], q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).type_as(q) @ v


def _project_attention(impl: str) -> AttentionFn:
    """One of the project's own kernels (repro.attention), imported when the model runs, so
    the model works without them. They apply the causal rule only."""

    def attend(q, k, v, scale: float, mask: Optional[torch.Tensor]) -> torch.Tensor:
        if mask is not None:
            raise ValueError(
                f"attn_impl {impl!r} applies only the causal rule; a packed-sequence mask needs 'sdpa' or 'math'"
            )
        from repro.attention import flash_attention

        return flash_attention(q, k, v, causal=True, softmax_scale=scale, impl=impl)

    return attend


ATTENTION: dict[str, AttentionFn] = {
    "sdpa": _sdpa_attention,
    "math": _math_attention,
    **{impl: _project_attention(impl) for impl in ("auto", "naive", "tiled", "triton")},
}
ATTN_IMPLS = tuple(ATTENTION)


@dataclass
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 0  # 0 (or None, as a params.json may say): multi-head attention, set to n_heads
    vocab_size: int = 32000
    multiple_of: int = 256  # the SwiGLU width is rounded up to a multiple of this
    ffn_dim_multiplier: Optional[float] = None
    ffn_hidden_dim: Optional[int] = None  # explicit width (HF's intermediate_size); overrides the rule
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_batch_size: int = 32
    max_seq_len: int = 4096
    # "sdpa" (torch), "math" (plain softmax(QK^T)V), or a repro.attention impl name
    # ("auto", "naive", "tiled", "triton"), imported only when the model runs.
    attn_impl: str = "sdpa"

    def __post_init__(self) -> None:
        if not self.n_kv_heads:
            self.n_kv_heads = self.n_heads
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError("the head dimension must be even for rotary embeddings")
        if self.attn_impl not in ATTENTION:
            raise ValueError(f"attn_impl must be one of {', '.join(ATTN_IMPLS)}; got {self.attn_impl!r}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        """SwiGLU width: 2/3 of 4·dim (three matrices instead of two keep the FLOPs of a
        4·dim MLP), times ``ffn_dim_multiplier``, rounded up to ``multiple_of``."""
        if self.ffn_hidden_dim is not None:
            return self.ffn_hidden_dim
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelArgs:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Table 1 / Meta's params.json files. The 34B model was not released; its shape (8192
# wide, 48 layers, GQA with 8 KV heads) is the one Code Llama 34B later used.
PRESETS: dict[str, ModelArgs] = {
    "7B": ModelArgs(dim=4096, n_layers=32, n_heads=32),
    "13B": ModelArgs(dim=5120, n_layers=40, n_heads=40),
    "34B": ModelArgs(dim=8192, n_layers=48, n_heads=64, n_kv_heads=8, ffn_dim_multiplier=1.0),
    "70B": ModelArgs(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, ffn_dim_multiplier=1.3, multiple_of=4096),
}


def preset(name: str, **overrides) -> ModelArgs:
    """A copy of a published configuration, e.g. ``preset("70B", max_seq_len=128)``."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown Llama 2 preset {name!r} (known: {', '.join(PRESETS)})") from None
    return replace(base, **overrides)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich, 2019): no mean, no bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise in fp32 even for bf16 activations, as the reference does
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def precompute_freqs_cis(head_dim: int, end: int, theta: float = 10000.0, device=None) -> torch.Tensor:
    """e^(i·pos·θ^(-2j/d)) for positions < end and j < d/2: (end, d/2) complex64."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    t = torch.arange(end, device=device, dtype=torch.float32)
    angles = torch.outer(t, freqs)  # (end, d/2)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive feature pairs of x (B, H, N, d), read as complex numbers, by
    freqs_cis (N, d/2): one complex product, as in Meta's ``apply_rotary_emb``."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (B, H, N, d/2)
    return torch.view_as_real(xc * freqs_cis).flatten(-2).type_as(x)


class KVCache(nn.Module):
    """Preallocated keys and values of one layer: (B, H_kv, max_seq_len, head_dim).

    A static cache (as in Meta's reference): decoding writes in place and never
    reallocates, so the per-token cost is one slice, and shapes stay fixed for compile."""

    k: torch.Tensor  # buffers, registered in __init__
    v: torch.Tensor

    def __init__(
        self, max_batch_size: int, max_seq_len: int, n_kv_heads: int, head_dim: int, dtype=torch.float32, device=None
    ):
        super().__init__()
        shape = (max_batch_size, n_kv_heads, max_seq_len, head_dim)
        # Uninitialised: attention only ever reads positions already written.
        self.register_buffer("k", torch.empty(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.empty(shape, dtype=dtype, device=device), persistent=False)

    def update(self, start_pos: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H_kv, S, d) at positions start_pos.. and return all keys and
        values so far: (B, H_kv, start_pos + S, d)."""
        bsz, _, seqlen, _ = k.shape
        end = start_pos + seqlen
        if end > self.k.shape[2] or bsz > self.k.shape[0]:
            raise ValueError(
                f"KV cache holds {tuple(self.k.shape[:3:2])} (batch, positions); "
                f"asked for batch {bsz} up to position {end}"
            )
        self.k[:bsz, :, start_pos:end] = k
        self.v[:bsz, :, start_pos:end] = v
        return self.k[:bsz, :, :end], self.v[:bsz, :, :end]

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.n_kv_heads
        self.head_dim = args.head_dim
        self.attn_impl = args.attn_impl
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        start_pos: int = 0,
        cache: Optional[KVCache] = None,
        mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        bsz, seqlen, _ = x.shape
        q = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, N, d)
        k = self.wk(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, H_kv, N, d)
        v = self.wv(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        if cache is not None:
            k, v = cache.update(start_pos, k, v)  # (B, H_kv, start_pos + N, d)
        out = ATTENTION[self.attn_impl](q, k, v, 1.0 / math.sqrt(self.head_dim), mask)  # (B, H, N, d)
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


class FeedForward(nn.Module):
    """SwiGLU (Shazeer, 2020): w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.layer_id = layer_id
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.hidden_dim)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x, rope, start_pos=0, cache=None, mask=None):
        h = x + self.attention(self.attention_norm(x), rope, start_pos, cache, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """The Llama 2 decoder. ``forward(tokens, start_pos, cache)`` returns logits
    (B, N, vocab) in fp32; without a cache it attends causally over ``tokens`` alone."""

    def __init__(self, params: ModelArgs):
        super().__init__()
        self.params = params
        self.vocab_size = params.vocab_size
        self.n_layers = params.n_layers
        self.tok_embeddings = nn.Embedding(params.vocab_size, params.dim)
        self.layers = nn.ModuleList(TransformerBlock(i, params) for i in range(params.n_layers))
        self.norm = RMSNorm(params.dim, eps=params.norm_eps)
        self.output = nn.Linear(params.dim, params.vocab_size, bias=False)
        # A plain attribute, as in Meta's code, not a buffer: module.to(bfloat16) would
        # cast a complex buffer to real. Not saved; follows the activations' device.
        self.freqs_cis = precompute_freqs_cis(
            params.head_dim, params.max_seq_len * 2, params.rope_theta, device=self.output.weight.device
        )

    def reset_rope(self, device=None) -> None:
        """Recompute the rotary table (e.g. on the real device after loading from meta)."""
        device = device if device is not None else self.output.weight.device
        p = self.params
        self.freqs_cis = precompute_freqs_cis(p.head_dim, p.max_seq_len * 2, p.rope_theta, device=device)

    def _freqs(self, device) -> torch.Tensor:
        if self.freqs_cis.is_meta:
            self.reset_rope(device)
        elif self.freqs_cis.device != device:
            self.freqs_cis = self.freqs_cis.to(device)
        return self.freqs_cis

    def set_attn_impl(self, impl: str) -> None:
        self.params = replace(self.params, attn_impl=impl)  # validates
        for module in self.modules():
            if isinstance(module, Attention):
                module.attn_impl = impl

    def new_cache(self, batch_size: int, max_seq_len: Optional[int] = None, dtype=None, device=None) -> list[KVCache]:
        """One preallocated KVCache per layer."""
        p = self.params
        dtype = dtype or self.output.weight.dtype
        device = device or self.output.weight.device
        n = max_seq_len or p.max_seq_len
        return [KVCache(batch_size, n, p.n_kv_heads, p.head_dim, dtype=dtype, device=device) for _ in range(p.n_layers)]

    def forward(
        self,
        tokens: torch.Tensor,
        start_pos: int = 0,
        cache: Optional[list[KVCache]] = None,
        last_only: bool = False,
        *,
        positions: Optional[torch.Tensor] = None,
        mask: Optional[torch.Tensor] = None,
        hidden: bool = False,
    ) -> torch.Tensor:
        """``positions`` (B, N) and ``mask`` (B, 1, N, N) serve packed sequences (each
        example restarts at position 0 and sees only itself); ``hidden=True`` returns the
        final normalised hidden states (B, N, dim) for a reward or value head."""
        _, seqlen = tokens.shape
        h = self.tok_embeddings(tokens)  # (B, N, dim)
        freqs = self._freqs(h.device)
        if start_pos + seqlen > freqs.shape[0]:
            raise ValueError(f"position {start_pos + seqlen} is past the rotary table ({freqs.shape[0]})")
        if positions is not None:
            rope = freqs[positions].unsqueeze(1)  # (B, 1, N, d/2): broadcast over heads
        else:
            rope = freqs[start_pos : start_pos + seqlen]  # (N, d/2)
        for i, layer in enumerate(self.layers):
            h = layer(h, rope, start_pos, None if cache is None else cache[i], mask)
        if last_only:  # generation needs only the next-token distribution
            h = h[:, -1:]
        if hidden:
            return self.norm(h)
        return self.output(self.norm(h)).float()


def build_on_meta(args: ModelArgs) -> Transformer:
    """The model with shapes only: no memory, for counting or for assign-loading weights."""
    return on_meta(Transformer, args)
