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


def select(answers: Sequence[Sequence[Sequence[int]]], rewards: torch.Tensor) -> list[list[int]]:
    """The kept answer per prompt: the one with the highest reward. answers [P][K], rewards (P, K)."""
    return [list(answers[i][j]) for i, j in enumerate(rewards.argmax(1).tolist())]


def shuffle_within_prompts(rewards: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """An uninformative reward model with the real one's scores: each prompt's K scores
    permuted at random among its answers. Its best-of-K curves (Figure 7) look the same;
    what it picks is no better than an arbitrary sample."""
    perm = torch.argsort(torch.rand(rewards.shape, generator=generator), dim=1)
    return torch.gather(rewards, 1, perm)


def gold_of_best(rewards: torch.Tensor, gold: torch.Tensor, ks: Sequence[int]) -> dict[int, torch.Tensor]:
    """For each K, per prompt: the true (gold) reward of the answer the reward model ranks
    best among the first K samples. rewards, gold (P, K_max) -> {K: (P,)}."""
    out = {}
    for k in ks:
        idx = rewards[:, :k].argmax(1, keepdim=True)
        out[int(k)] = gold[:, :k].gather(1, idx).squeeze(1)
    return out


def gain_over_uninformative(rewards: torch.Tensor, gold: torch.Tensor, k: int) -> tuple[float, float]:
    """How much better than an uninformative (shuffled) reward model best-of-K picks, in
    gold reward: per prompt, the gold reward of the reward model's pick among the first K
    minus the mean gold reward of those K (what a shuffled model picks, in expectation).
    Returns (mean gain over prompts, its z-score: mean / standard error). A reward model
    unrelated to the gold reward gives z ~ N(0, 1)."""
    picked = gold_of_best(rewards, gold, [k])[k]
    gain = picked - gold[:, :k].mean(1)
    n = gain.numel()
    sd = float(gain.std(unbiased=True)) if n > 1 else 0.0
    mean = float(gain.mean())
    if sd == 0.0:
        return mean, (0.0 if mean == 0.0 else float("inf") if mean > 0 else float("-inf"))
    return mean, mean / (sd / n**0.5)
