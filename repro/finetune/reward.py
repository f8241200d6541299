"""The reward model (Section 3.2.2): the chat model's backbone with a scalar head, trained
on annotated pairs with the binary ranking loss and a margin per rating level (Table 27),
and evaluated per rating level (Table 8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from repro.finetune.data import Pair
from repro.finetune.heads import ScalarHeadModel
from repro.finetune.loop import Dist, OptimConfig, step_rng, train_steps
from repro.finetune.losses import RATING_LEVELS, margins_for, ranking_loss
from repro.finetune.packing import pad_right


def encode_answer(tokenizer, prompt: str, answer: str) -> list[int]:
    """ "<s>[INST] prompt [/INST] answer </s>": the form a reward model scores."""
    return tokenizer.encode(f"[INST] {prompt.strip()} [/INST]", bos=True) + tokenizer.encode(
        f" {answer.strip()} ", eos=True
    )


def score(model: ScalarHeadModel, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
    """Scores (B,) of token sequences (right-padded, read at each sequence's last token)."""
    device = next(model.parameters()).device
    tokens = pad_right(seqs).to(device)
    lengths = torch.tensor([len(s) for s in seqs], device=device)
    return model(tokens, lengths)


@dataclass
class RewardConfig:
    steps: int = 200
    batch_size: int = 32  # pairs per step over all processes
    margin: str | tuple[float, ...] = "small"  # a Table 27 variant (none, small, large) or m(r) per level
    seed: int = 0


def pair_tokens(pairs: Sequence[Pair], tokenizer) -> list[tuple[list[int], list[int], int]]:
    return [
        (encode_answer(tokenizer, p.prompt, p.chosen), encode_answer(tokenizer, p.prompt, p.rejected), p.level)
        for p in pairs
    ]


def pair_loss(model, batch, cfg: RewardConfig, d: Dist) -> tuple[torch.Tensor, float]:
    chosen = [b[0] for b in batch]
    rejected = [b[1] for b in batch]
    levels = torch.tensor([b[2] for b in batch])
    r = score(model, chosen + rejected)
    rc, rr = r[: len(batch)], r[len(batch) :]
    m = margins_for(levels, cfg.margin).to(r.device)
    loss = ranking_loss(rc, rr, m)
    g = d.all_sum(loss.detach()) / d.world
    return loss, float(g)


def train_reward(
    model: ScalarHeadModel,
    data: Sequence[tuple[list[int], list[int], int]],
    cfg: RewardConfig,
    optim: OptimConfig,
    d: Optional[Dist] = None,
    on_step=None,
    **loop_kwargs,
):
    d = d or Dist()

    def step_loss(m, step):
        rng = step_rng(cfg.seed, step)
        batch = [data[rng.randrange(len(data))] for _ in range(cfg.batch_size)]
        loss, g = pair_loss(m, d.shard(batch), cfg, d)
        return loss, {"loss": g}

    return train_steps(model, step_loss, optim, cfg.steps, d, on_step=on_step, **loop_kwargs)


@torch.no_grad()
def accuracy_by_level(
    model: ScalarHeadModel, data: Sequence[tuple[list[int], list[int], int]], batch_size: int = 256
) -> dict:
    """Table 8's breakdown: accuracy (and mean score gap) per rating level, and overall."""
    model.eval()
    gaps: list[float] = []
    levels: list[int] = []
    for i in range(0, len(data), batch_size):
        chunk = data[i : i + batch_size]
        r = score(model, [c[0] for c in chunk] + [c[1] for c in chunk])
        gaps += (r[: len(chunk)] - r[len(chunk) :]).tolist()
        levels += [c[2] for c in chunk]
    model.train()
    out = {}
    for lv, name in enumerate(RATING_LEVELS):
        sel = [g for g, level in zip(gaps, levels) if level == lv]
        if sel:
            out[name] = {"accuracy": sum(g > 0 for g in sel) / len(sel), "mean_gap": sum(sel) / len(sel), "n": len(sel)}
    out["all"] = {
        "accuracy": sum(g > 0 for g in gaps) / max(1, len(gaps)),
        "mean_gap": sum(gaps) / max(1, len(gaps)),
        "n": len(gaps),
    }
    return out
