"""Rejection sampling fine-tuning (Section 3.2.3): K answers per prompt, scored by the
reward model, the best kept as new SFT targets. Figure 7: the maximum reward among K
samples grows with K while the median stays put, so the gain is the widening gap; Figure 8:
the temperature sets how much diversity there is to select from."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Optional

import torch

from repro.finetune.heads import ScalarHeadModel
from repro.finetune.rollout import sample


@torch.no_grad()
def sample_and_score(
    policy,
    reward_model: ScalarHeadModel,
    prompts: Sequence[Sequence[int]],
    k: int,
    max_gen_len: int,
    temperature: float,
    eos_id: int,
    generator: Optional[torch.Generator] = None,
) -> tuple[list[list[list[int]]], torch.Tensor]:
    """K answers per prompt and their rewards: (answers[P][K], rewards (P, K))."""
    policy.eval()
    reward_model.eval()
    flat_prompts = [p for p in prompts for _ in range(k)]
    r = sample(policy, flat_prompts, max_gen_len, temperature, eos_id, generator)
    scores = reward_model(r.tokens, r.lengths).float()
    answers = [r.answers[i * k : (i + 1) * k] for i in range(len(prompts))]
    return answers, scores.view(len(prompts), k)


def reward_vs_k(rewards: torch.Tensor, ks: Sequence[int]) -> dict[int, dict[str, float]]:
    """Figure 7: for each K, the maximum and the median reward among the first K samples
    of each prompt, averaged over prompts."""
    out = {}
    for k in ks:
        first = rewards[:, :k]
        out[int(k)] = {
            "max": float(first.max(1).values.mean()),
            "median": float(statistics.fmean(statistics.median(row) for row in first.tolist())),
        }
    return out


def select(
    answers: Sequence[Sequence[Sequence[int]]],
    rewards: torch.Tensor,
    rule: str = "best",
    generator: Optional[torch.Generator] = None,
) -> list[list[int]]:
    """The kept answer per prompt: the highest reward (``best``), or (negative control)
    an arbitrary one (``random``)."""
    if rule == "best":
        idx = rewards.argmax(1).tolist()
    elif rule == "random":
        idx = torch.randint(0, rewards.shape[1], (rewards.shape[0],), generator=generator).tolist()
    else:
        raise ValueError(f"unknown selection rule {rule!r}")
    return [list(answers[i][j]) for i, j in enumerate(idx)]
