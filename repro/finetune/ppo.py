"""Proximal policy optimisation as in Section 3.2.3: the reward is
R = whiten(logit(R_c)) - β·KL(π‖π₀), R_c the safety-gated reward-model score, with a value
head, generalised advantage estimation and the clipped objective (ε = 0.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from repro.finetune.heads import ScalarHeadModel
from repro.finetune.loop import OptimConfig, make_optimizer, make_scheduler, step_optimizer
from repro.finetune.losses import gae, gated_reward, ppo_policy_loss, ppo_rewards, value_loss
from repro.finetune.rollout import Rollout, rollout_logprobs, sample


@dataclass
class PPOConfig:
    iterations: int = 20
    batch_size: int = 32  # prompts per iteration
    epochs: int = 2  # optimisation passes over each batch of rollouts
    beta: float = 0.01  # KL penalty: 0.01 for 7B/13B, 0.005 for 34B/70B
    clip: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    temperature: float = 1.0
    max_gen_len: int = 8
    seed: int = 0


def _values(value_model: ScalarHeadModel, r: Rollout) -> torch.Tensor:
    """V(state before answer token i+1) at every position: (B, N-1)."""
    device = next(value_model.parameters()).device
    return value_model.token_values(r.tokens.to(device))[:, :-1] * r.action_mask.to(device)


def ppo_train(
    policy,
    ref_policy,
    value_model: ScalarHeadModel,
    reward_fn: Callable[[Rollout], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    prompts: Sequence[Sequence[int]],
    eos_id: int,
    cfg: PPOConfig,
    optim: OptimConfig,
    on_iteration=None,
) -> list[dict]:
    """Run ``cfg.iterations`` rounds of sample -> score -> GAE -> clipped updates.
    ``reward_fn(rollout)`` returns (helpfulness, safety, is_safety_prompt), scores in (0, 1)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt_p, opt_v = make_optimizer(policy, optim), make_optimizer(value_model, optim)
    sch_p, sch_v = make_scheduler(opt_p, optim), make_scheduler(opt_v, optim)
    ref_policy.eval()
    history = []
    for it in range(cfg.iterations):
        idx = torch.randint(0, len(prompts), (cfg.batch_size,), generator=gen).tolist()
        policy.eval()
        with torch.no_grad():
            r = sample(policy, [prompts[i] for i in idx], cfg.max_gen_len, cfg.temperature, eos_id, gen)
            old_logp = rollout_logprobs(policy, r)
            ref_logp = rollout_logprobs(ref_policy, r)
            old_values = _values(value_model, r)
            helpful, safety, is_safety = reward_fn(r)
            r_c = gated_reward(helpful, safety, is_safety)
            mask = r.action_mask
            rewards, kl = ppo_rewards(r_c, old_logp, ref_logp, mask, cfg.beta)
            adv, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            adv = (adv - adv[mask.bool()].mean()) / (adv[mask.bool()].std() + 1e-8) * mask
        policy.train()
        value_model.train()
        for _ in range(cfg.epochs):
            logp = rollout_logprobs(policy, r)
            loss_p = ppo_policy_loss(logp, old_logp, adv, mask, cfg.clip)
            loss_p.backward()
            step_optimizer(policy, opt_p, sch_p, optim.clip)
            loss_v = value_loss(_values(value_model, r), old_values, returns, mask, cfg.clip)
            loss_v.backward()
            step_optimizer(value_model, opt_v, sch_v, optim.clip)
        row = {
            "iteration": it,
            "reward": float(r_c.mean()),
            "kl": float(kl.mean()),
            "policy_loss": float(loss_p.detach()),
            "value_loss": float(loss_v.detach()),
        }
        history.append(row)
        if on_iteration is not None:
            on_iteration(it, row, r)
    return history
