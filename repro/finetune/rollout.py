"""Sampling answers from a policy and reading back per-token log-probabilities, shared by
rejection sampling and PPO."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from repro.finetune.packing import pad_right
from repro.llama.generation import generate


@dataclass
class Rollout:
    tokens: torch.Tensor  # (B, N) prompt + answer, right-padded with 0
    lengths: torch.Tensor  # (B,) real length of each row
    action_mask: torch.Tensor  # (B, N-1) 1 where position i predicts an answer token i+1
    answers: list  # answer token ids per row


def sample(
    policy,
    prompts: Sequence[Sequence[int]],
    max_gen_len: int,
    temperature: float,
    eos_id: int,
    generator: Optional[torch.Generator] = None,
    top_p: float = 1.0,
) -> Rollout:
    answers = generate(
        policy, prompts, max_gen_len, temperature=temperature, top_p=top_p, eos_id=eos_id, generator=generator
    )
    return make_rollout(prompts, answers)


def make_rollout(prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]]) -> Rollout:
    seqs = [list(p) + list(a) for p, a in zip(prompts, answers)]
    tokens = pad_right(seqs)
    n = tokens.shape[1]
    mask = torch.zeros(len(seqs), n - 1)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        mask[i, len(p) - 1 : len(p) - 1 + len(a)] = 1.0
    return Rollout(tokens, torch.tensor([len(s) for s in seqs]), mask, [list(a) for a in answers])


def rollout_logprobs(model, r: Rollout) -> torch.Tensor:
    """log π(token i+1 | tokens ≤ i) at every position (B, N-1); zero outside answers."""
    device = next(model.parameters()).device
    tokens = r.tokens.to(device)
    logits = model(tokens)[:, :-1].float()  # (B, N-1, V)
    lp = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    return lp * r.action_mask.to(device)
