"""A GPT-2 (Radford et al. 2019) in the manner of nanoGPT, for the FlashAttention paper's
end-to-end claim (Section 4.1, Table 2: GPT-2 small at sequence length 1024 trains 3.5x
faster than Hugging Face's implementation, at the same perplexity).

The attention layer calls ``repro.attention.flash_attention`` with a chosen ``impl``, so
the same weights and batches can be trained through the standard algorithm ("naive") and
through FlashAttention ("tiled" on a CPU, "triton" on a GPU), and their losses and
speeds compared. Tokens are the bytes of the bundled vault's notes (a 256-symbol
vocabulary padded to the model's vocabulary size).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from .api import flash_attention

NOTES = Path(__file__).resolve().parents[2] / "notes"


@dataclass
class GPTConfig:
    """GPT-2 small by default (124M parameters)."""

    block_size: int = 1024
    vocab_size: int = 50304  # 50257 rounded up to a multiple of 64, as nanoGPT does
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    attn_impl: str = "naive"


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.n_head = cfg.n_head
        self.cfg = cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, d)
        y = self.attend(q, k, v)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention (B, H, T, d) -> (B, H, T, d) through the configured implementation."""
        return flash_attention(q, k, v, causal=True, impl=self.cfg.attn_impl)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as GPT-2
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def set_attention(self, impl: str) -> None:
        self.cfg.attn_impl = impl

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """idx, targets (B, T) -> mean cross-entropy."""
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def vault_bytes() -> torch.Tensor:
    """The bundled notes as one long tensor of byte tokens."""
    data = b"\n\n".join(p.read_bytes() for p in sorted(NOTES.glob("*.md")))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def batches(tokens: torch.Tensor, steps: int, batch: int, seq: int, seed: int):
    """``steps`` random (inputs, targets) windows of ``seq`` tokens, fixed by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    if len(tokens) <= seq + 1:
        reps = (seq + 2) // len(tokens) + 1
        tokens = tokens.repeat(reps)
    out = []
    for _ in range(steps):
        starts = torch.randint(0, len(tokens) - seq - 1, (batch,), generator=gen)
        x = torch.stack([tokens[s : s + seq] for s in starts.tolist()])
        y = torch.stack([tokens[s + 1 : s + seq + 1] for s in starts.tolist()])
        out.append((x, y))
    return out


class LanguageModel(Protocol):
    """What ``train`` needs of a model: its parameters and ``model(idx, targets) -> loss``."""

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def __call__(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


def train(
    model: LanguageModel, data, lr: float = 3e-4, device: str = "cpu", dtype: torch.dtype | None = None, warmup: int = 0
) -> dict:
    """AdamW steps over ``data``; returns the losses and tokens per second (timed after
    ``warmup`` steps, which the losses include)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    losses = []
    tokens = 0
    t0 = None
    for step, (x, y) in enumerate(data):
        if step == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            tokens = 0
        x, y = x.to(device), y.to(device)
        with torch.autocast(
            device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype, enabled=dtype is not None
        ):
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        tokens += x.numel()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - (t0 if t0 is not None else time.perf_counter())
    return {"losses": losses, "tokens_per_s": tokens / elapsed if elapsed > 0 else float("nan")}
