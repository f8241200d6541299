"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Section 3: an encoder–decoder of N identical layers, each sub-layer wrapped as
LayerNorm(x + Dropout(Sublayer(x))) (post-norm, as in the paper); multi-head scaled
dot-product attention (3.2); position-wise feed-forward networks (3.3); one embedding
matrix shared by source, target and the pre-softmax projection, scaled by √d_model (3.4);
sinusoidal positional encodings (3.5). Section 5.3–5.4: Adam (β = 0.9, 0.98, ε = 1e-9)
with the warmup-4000 inverse-square-root schedule, label smoothing 0.1. Section 6.1:
beam search (beam 4, length penalty α = 0.6). ``CONFIGS`` holds Table 3's base and big.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from repro.modeling import count_parameters, on_meta  # noqa: F401  (count_parameters: re-exported)


@dataclass
class TransformerConfig:
    vocab_size: int = 37000  # shared source/target BPE vocabulary (WMT 2014 EN-DE, section 5.1)
    d_model: int = 512
    n_layers: int = 6  # N, for the encoder and the decoder alike
    n_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1  # P_drop
    label_smoothing: float = 0.1
    warmup_steps: int = 4000
    max_len: int = 512
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.d_model % 2:
            raise ValueError("d_model must be even for sinusoidal positions")


# Table 3: base (65M) and big (213M).
CONFIGS: dict[str, TransformerConfig] = {
    "base": TransformerConfig(d_model=512, n_layers=6, n_heads=8, d_ff=2048, dropout=0.1),
    "big": TransformerConfig(d_model=1024, n_layers=6, n_heads=16, d_ff=4096, dropout=0.3),
}


def config(name: str, **overrides) -> TransformerConfig:
    try:
        return replace(CONFIGS[name], **overrides)
    except KeyError:
        raise ValueError(f"unknown Transformer config {name!r} (known: {', '.join(CONFIGS)})") from None


def sinusoidal_positions(n_positions: int, d_model: int, dtype=torch.float32) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...): (n_positions, d_model)."""
    pos = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq)
    return pe.to(dtype)


def scaled_dot_product_attention(q, k, v, mask: Optional[torch.Tensor] = None, scale: bool = True):
    """softmax(QK^T / √d_k) V (equation 1). q (B, H, Nq, d); k, v (B, H, Nk, d);
    mask broadcastable to (B, H, Nq, Nk), True where attending is allowed."""
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class MultiHeadAttention(nn.Module):
    """h heads of size d_model / h, projected and concatenated (section 3.2.2). The paper
    drops out sub-layer outputs only (5.4), so attention-weight dropout defaults to 0."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads = n_heads
        self.d_k = d_model // n_heads
        self.w_q = nn.Linear(d_model, d_model)
        self.w_k = nn.Linear(d_model, d_model)
        self.w_v = nn.Linear(d_model, d_model)
        self.w_o = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x_q, x_kv, mask=None):
        bsz, nq, _ = x_q.shape
        nk = x_kv.shape[1]
        q = self.w_q(x_q).view(bsz, nq, self.n_heads, self.d_k).transpose(1, 2)  # (B, H, Nq, d_k)
        k = self.w_k(x_kv).view(bsz, nk, self.n_heads, self.d_k).transpose(1, 2)  # (B, H, Nk, d_k)
        v = self.w_v(x_kv).view(bsz, nk, self.n_heads, self.d_k).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.w_o(out.transpose(1, 2).reshape(bsz, nq, -1))


class FeedForward(nn.Module):
    """FFN(x) = max(0, xW1 + b1)W2 + b2 (equation 2)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, src_mask):
        x = self.norm1(x + self.dropout(self.self_attn(x, x, src_mask)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.norm3 = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, y, memory, tgt_mask, src_mask):
        y = self.norm1(y + self.dropout(self.self_attn(y, y, tgt_mask)))
        y = self.norm2(y + self.dropout(self.cross_attn(y, memory, src_mask)))
        return self.norm3(y + self.dropout(self.ffn(y)))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.register_buffer("pe", sinusoidal_positions(cfg.max_len, cfg.d_model), persistent=False)
        if not self.embed.weight.is_meta:
            nn.init.normal_(self.embed.weight, std=cfg.d_model**-0.5)
            with torch.no_grad():
                self.embed.weight[cfg.pad_id].zero_()

    def _embed(self, tokens):
        n = tokens.shape[1]
        if n > self.pe.shape[0]:
            raise ValueError(f"sequence of {n} tokens is longer than max_len {self.pe.shape[0]}")
        return self.dropout(self.embed(tokens) * math.sqrt(self.cfg.d_model) + self.pe[:n])

    def src_mask(self, src):
        return (src != self.cfg.pad_id)[:, None, None, :]  # (B, 1, 1, Ns)

    def encode(self, src):
        mask = self.src_mask(src)
        x = self._embed(src)
        for layer in self.encoder:
            x = layer(x, mask)
        return x, mask

    def decode(self, tgt_in, memory, src_mask):
        n = tgt_in.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=tgt_in.device).tril()
        y = self._embed(tgt_in)
        for layer in self.decoder:
            y = layer(y, memory, causal, src_mask)
        return y @ self.embed.weight.T  # shared pre-softmax projection: (B, Nt, V)

    def forward(self, src, tgt_in):
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)

    def loss(self, src, tgt_in, tgt_out):
        """Cross-entropy with label smoothing ε_ls (section 5.4), padding ignored."""
        logits = self(src, tgt_in)
        return label_smoothed_loss(logits, tgt_out, self.cfg.label_smoothing, self.cfg.pad_id)


def label_smoothed_loss(logits, target, eps: float, ignore_index: int = -100):
    """Cross-entropy against (1 - ε)·one_hot + ε/V (uniform over all V classes)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), label_smoothing=eps, ignore_index=ignore_index
    )


def build_on_meta(cfg: TransformerConfig) -> Transformer:
    """The model with shapes only (see :func:`repro.modeling.on_meta`)."""
    return on_meta(Transformer, cfg)


# ---------------------------------------------------------------------------------------
# Optimisation (section 5.3)
# ---------------------------------------------------------------------------------------
def noam_lr(step: int, d_model: int, warmup_steps: int = 4000) -> float:
    """lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) (equation 3): linear
    warmup, then decay with the inverse square root of the step."""
    step = max(step, 1)
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def make_optimizer(model: nn.Module, cfg: TransformerConfig, scale: float = 1.0):
    """Adam(β1 = 0.9, β2 = 0.98, ε = 1e-9) and the warmup schedule as a LambdaLR; call
    ``scheduler.step()`` after each optimiser step. ``scale`` multiplies the rate."""
    # fused: the same update in one kernel per step instead of ~8 small ops per tensor;
    # these models have ~40 small tensors, so the per-op overhead was ~15% of a CPU step
    opt = torch.optim.Adam(model.parameters(), lr=scale, betas=(0.9, 0.98), eps=1e-9, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: noam_lr(s + 1, cfg.d_model, cfg.warmup_steps))
    return opt, sched


# ---------------------------------------------------------------------------------------
# Decoding (section 6.1)
# ---------------------------------------------------------------------------------------
@torch.no_grad()
def greedy_decode(model: Transformer, src: torch.Tensor, max_len: int) -> torch.Tensor:
    """Most likely next token at each step; (B, ≤ max_len) without the leading BOS.
    Finished rows are padded after their EOS."""
    cfg = model.cfg
    memory, mask = model.encode(src)
    ys = torch.full((src.shape[0], 1), cfg.bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = model.decode(ys, memory, mask)[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, cfg.pad_id), nxt)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == cfg.eos_id
        if bool(done.all()):
            break
    return ys[:, 1:]


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al., 2016), used with α = 0.6."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(
    step_logprobs: Callable[[torch.Tensor], torch.Tensor],
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    alpha: float = 0.6,
) -> tuple[list[int], float]:
    """Beam search over one sequence. ``step_logprobs(prefixes (K, t)) -> (K, V)`` gives
    next-token log-probabilities. Returns the best hypothesis (without BOS, with EOS if it
    ended) and its length-normalised score log P / lp."""
    prefixes = torch.tensor([[bos_id]], dtype=torch.long)
    scores = torch.zeros(1)  # summed log-probabilities of the live beams
    finished: list[tuple[float, list[int]]] = []
    for _step in range(max_len):
        logp = step_logprobs(prefixes)  # (K, V)
        vocab = logp.shape[-1]
        cand = (scores[:, None] + logp).reshape(-1)  # (K·V,)
        top = torch.topk(cand, min(2 * beam_size, cand.numel()))
        new_prefixes, new_scores = [], []
        for score, idx in zip(top.values.tolist(), top.indices.tolist()):
            beam, tok = divmod(idx, vocab)
            seq = prefixes[beam].tolist() + [tok]
            if tok == eos_id:
                finished.append((score / length_penalty(len(seq) - 1, alpha), seq[1:]))
            else:
                new_prefixes.append(seq)
                new_scores.append(score)
            if len(new_prefixes) == beam_size:
                break
        best_done = max((s for s, _ in finished), default=-math.inf)
        # A live beam can only lose probability; with the largest penalty it could still
        # reach (length max_len), stop once no live beam can beat the best finished one.
        best_live = max(new_scores, default=-math.inf) / length_penalty(max_len, alpha)
        if not new_prefixes or best_done >= best_live:
            break
        prefixes = torch.tensor(new_prefixes, dtype=torch.long)
        scores = torch.tensor(new_scores)
    else:
        for seq, score in zip(prefixes.tolist(), scores.tolist()):
            finished.append((score / length_penalty(len(seq) - 1, alpha), seq[1:]))
    best_score, best_seq = max(finished, key=lambda f: f[0])
    return best_seq, best_score


@torch.no_grad()
def beam_decode(
    model: Transformer, src: torch.Tensor, max_len: int, beam_size: int = 4, alpha: float = 0.6
) -> list[list[int]]:
    """Beam search for each source row of ``src`` (B, Ns)."""
    out = []
    for row in src:
        memory, mask = model.encode(row[None])

        def step(prefixes, memory=memory, mask=mask):
            k = prefixes.shape[0]
            logits = model.decode(prefixes, memory.expand(k, -1, -1), mask.expand(k, -1, -1, -1))
            return torch.log_softmax(logits[:, -1].float(), dim=-1)

        seq, _ = beam_search(step, model.cfg.bos_id, model.cfg.eos_id, max_len, beam_size, alpha)
        out.append(seq)
    return out
