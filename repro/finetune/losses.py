"""The fine-tuning objectives of Llama 2-Chat (Section 3) as small pure functions.

Shapes: B batch, N positions, V vocabulary. Labels use -100 for "no loss here", as
PyTorch's cross entropy and Hugging Face do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

IGNORE = -100

# Table 27: the margin m(r) added to the ranking loss for each rating level, for the
# "small" and "large" variants. Index = rating level, from "significantly better" (0) to
# "negligibly better / unsure" (3).
RATING_LEVELS = ("significantly better", "better", "slightly better", "negligibly better")
MARGINS = {
    "none": (0.0, 0.0, 0.0, 0.0),
    "small": (1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0),
    "large": (3.0, 2.0, 1.0, 0.0),
}

SAFETY_GATE = 0.15  # Section 3.2.3: below this safety score, the safety reward is used
KL_BETA = {"small": 0.01, "large": 0.005}  # 7B/13B vs 34B/70B


# ---------------------------------------------------------------------------------------
# SFT (3.1)
# ---------------------------------------------------------------------------------------
def answer_only_labels(prompt_ids: list[int], answer_ids: list[int]) -> tuple[list[int], list[int]]:
    """Prompt and answer concatenated; labels keep only the answer ("we zero-out the loss on
    tokens from the user prompt")."""
    ids = list(prompt_ids) + list(answer_ids)
    return ids, [IGNORE] * len(prompt_ids) + list(answer_ids)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position: logits (B, N, V), targets (B, N) -> (B, N). Targets
    equal to IGNORE get 0."""
    safe = targets.clamp(min=0)
    lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return lp.masked_fill(targets == IGNORE, 0.0)


def lm_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross entropy over labelled positions and their count. Position i
    predicts labels[i + 1]. logits (B, N, V), labels (B, N)."""
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[:, 1:].reshape(-1)
    total = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum")
    return total, (shift_labels != IGNORE).sum()


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    total, count = lm_loss_sum(logits, labels)
    return total / count.clamp(min=1)


# ---------------------------------------------------------------------------------------
# Reward model (3.2.2)
# ---------------------------------------------------------------------------------------
def margins_for(levels: torch.Tensor, table: str | Sequence[float] = "small") -> torch.Tensor:
    """m(r) for each pair's rating level (B,) -> (B,) float; ``table`` names a Table 27
    variant or gives m(r) for each level."""
    if not isinstance(table, str):
        values = tuple(float(m) for m in table)
    else:
        try:
            values = MARGINS[table]
        except KeyError:
            raise ValueError(f"unknown margin table {table!r} (known: {', '.join(MARGINS)})") from None
    return torch.tensor(values, dtype=torch.float32, device=levels.device)[levels.long()]


def ranking_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Equation 2: -log σ(r(x, y_c) - r(x, y_r) - m(r)), averaged over pairs."""
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()


# ---------------------------------------------------------------------------------------
# DPO (Rafailov et al., 2023; beyond the paper)
# ---------------------------------------------------------------------------------------
def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """The sigmoid DPO loss on summed completion log-probabilities (B,) each:
    -log σ(β[(log π(y_c) - log π₀(y_c)) - (log π(y_r) - log π₀(y_r))])."""
    delta = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * delta).mean()


# ---------------------------------------------------------------------------------------
# PPO (3.2.3)
# ---------------------------------------------------------------------------------------
def gated_reward(
    r_helpful: torch.Tensor, r_safety: torch.Tensor, is_safety_prompt: torch.Tensor, gate: float = SAFETY_GATE
) -> torch.Tensor:
    """R_c: the safety score for prompts tagged unsafe or whose safety score is below the
    gate, else the helpfulness score. Scores are probabilities in (0, 1)."""
    use_safety = is_safety_prompt.bool() | (r_safety < gate)
    return torch.where(use_safety, r_safety, r_helpful)


def whiten(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return (x - x.mean()) / (x.std(unbiased=False) + eps)


def logit(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The inverse of the sigmoid, which the paper applies to R_c before whitening."""
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def ppo_rewards(
    r_c: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards for a batch of sampled answers (B, T): the KL penalty -β(log π -
    log π₀) at every answer token, plus whiten(logit(R_c)) at each answer's last token.
    Returns (rewards (B, T), sequence KL estimate (B,))."""
    kl = (logp - ref_logp) * mask  # (B, T): the sampled-token estimate of KL(π‖π₀)
    rewards = -beta * kl
    last = mask.long().cumsum(-1).argmax(-1)  # index of each row's last answer token
    score = whiten(logit(r_c))
    rewards = rewards.clone()
    rewards[torch.arange(rewards.shape[0]), last] += score
    return rewards, kl.sum(-1)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016) over (B, T) answer tokens;
    positions where mask is 0 (after the answer) contribute nothing. Returns (advantages,
    returns)."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    T = rewards.shape[1]
    for t in reversed(range(T)):
        next_v = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, adv + values


def ppo_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    """The clipped surrogate objective (Schulman et al., 2017), as a loss, over (B, T)."""
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    return -(surrogate * mask).sum() / mask.sum().clamp(min=1)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    err = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * (err * mask).sum() / mask.sum().clamp(min=1)
