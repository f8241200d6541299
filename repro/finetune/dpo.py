"""Direct preference optimisation (Rafailov et al., 2023), the widely used successor to
RLHF with a reward model, trained on the same preference pairs (beyond the paper)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from repro.finetune.data import Pair
from repro.finetune.loop import Dist, OptimConfig, step_rng, train_steps
from repro.finetune.losses import IGNORE, dpo_loss, token_logprobs
from repro.finetune.packing import pad_right
from repro.finetune.reward import encode_answer


def completion_example(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """(ids, labels) with labels on the answer only."""
    p = tokenizer.encode(f"[INST] {prompt.strip()} [/INST]", bos=True)
    full = encode_answer(tokenizer, prompt, answer)
    return full, [IGNORE] * len(p) + full[len(p) :]


def sequence_logprobs(model, examples: Sequence[tuple[list[int], list[int]]]) -> torch.Tensor:
    """Summed log-probability of each example's labelled tokens: (B,)."""
    device = next(model.parameters()).device
    tokens = pad_right([e[0] for e in examples]).to(device)
    labels = pad_right([e[1] for e in examples], IGNORE).to(device)
    logits = model(tokens)
    return token_logprobs(logits[:, :-1], labels[:, 1:]).sum(-1)


@dataclass
class DPOConfig:
    steps: int = 100
    batch_size: int = 16
    beta: float = 0.1
    seed: int = 0


def pair_examples(pairs: Sequence[Pair], tokenizer) -> list[tuple]:
    return [
        (completion_example(tokenizer, p.prompt, p.chosen), completion_example(tokenizer, p.prompt, p.rejected))
        for p in pairs
    ]


def train_dpo(
    model,
    ref_model,
    data: Sequence[tuple],
    cfg: DPOConfig,
    optim: OptimConfig,
    d: Optional[Dist] = None,
    on_step=None,
    **loop_kwargs,
):
    d = d or Dist()
    ref_model.eval()

    def step_loss(m, step):
        rng = step_rng(cfg.seed, step)
        batch = d.shard([data[rng.randrange(len(data))] for _ in range(cfg.batch_size)])
        seqs = [b[0] for b in batch] + [b[1] for b in batch]
        lp = sequence_logprobs(m, seqs)
        with torch.no_grad():
            ref = sequence_logprobs(ref_model, seqs)
        n = len(batch)
        loss = dpo_loss(lp[:n], lp[n:], ref[:n], ref[n:], cfg.beta)
        margin = ((lp[:n] - ref[:n]) - (lp[n:] - ref[n:])).detach().mean()
        return loss, {
            "loss": float(d.all_sum(loss.detach()) / d.world),
            "implicit_margin": float(d.all_sum(margin) / d.world),
        }

    return train_steps(model, step_loss, optim, cfg.steps, d, on_step=on_step, **loop_kwargs)
