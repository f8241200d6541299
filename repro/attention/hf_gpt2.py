"""Hugging Face's GPT-2 as the baseline of the end-to-end claim (FlashAttention, Section 4.1,
Table 2: GPT-2 small trains 3.5x faster than Hugging Face's implementation).

:class:`HFGPT2` wraps transformers' ``GPT2LMHeadModel`` with standard ("eager") attention,
loaded with the weights of one of our :class:`~repro.attention.gpt2.GPT` models (GPT-2's
``Conv1D`` layers store the transpose of a ``Linear`` weight), and speaks our model's
interface (``forward(idx, targets) -> loss``, ``cfg``), so ``gpt2.train`` times both on the
same weights and batches. Same weights, so the same losses: the tests check that first.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gpt2 import GPT

# Our Linear layers whose Hugging Face counterparts are Conv1D (weight transposed).
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class HFGPT2(nn.Module):
    """transformers' GPT-2 (eager attention) with the weights of ``ours``."""

    def __init__(self, ours: GPT):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        c = ours.cfg
        config = GPT2Config(
            vocab_size=c.vocab_size,
            n_positions=c.block_size,
            n_embd=c.n_embd,
            n_layer=c.n_layer,
            n_head=c.n_head,
            activation_function="gelu_new",  # the tanh approximation, as ours
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            layer_norm_epsilon=1e-5,
            tie_word_embeddings=True,
        )
        config._attn_implementation = "eager"  # the standard algorithm, as the paper's baseline
        self.model = GPT2LMHeadModel(config)
        self.cfg = copy.copy(c)
        self.cfg.attn_impl = "hf-eager"
        self.model.load_state_dict(hf_state_dict(ours), strict=False)
        self.model.tie_weights()
        self.to(next(ours.parameters()).device)

    def set_attention(self, impl: str) -> None:
        raise ValueError("the Hugging Face baseline always uses its own standard attention")

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """idx, targets (B, T) -> mean cross-entropy, as ``GPT.forward``."""
        logits = self.model(idx).logits  # (B, T, V)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def hf_state_dict(ours: GPT) -> dict[str, torch.Tensor]:
    """Our GPT's weights under GPT2LMHeadModel's names (Conv1D weights transposed)."""
    out = {}
    for name, t in ours.state_dict().items():
        if name == "lm_head.weight":
            out[name] = t.detach().clone()  # tied to wte
            continue
        value = t.detach().t().contiguous() if name.endswith(_CONV1D) else t.detach().clone()
        out[f"transformer.{name}"] = value
    return out
