"""Negative controls of repro/finetune/experiments.py: each builds the broken variant of a
fine-tuning step from outside the library (an edited config, swapped data, a wrong pick),
so the library itself carries no switch that only a control uses.

Each one must make its experiment end "contradicted"; ``paperkb run CLAIM --controls`` checks that.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from repro.finetune.data import ATTRIBUTES, ToyWorld, gatt_dialog
from repro.finetune.losses import MARGINS
from repro.finetune.ppo import PPOConfig
from repro.finetune.sft import dialog_example


def kl_bonus(cfg: PPOConfig) -> PPOConfig:
    """``kl-bonus``: a negative β, so R = R_c + |β|·KL rewards drifting from π₀ instead of penalising it."""
    return replace(cfg, beta=-cfg.beta)


def wrong_sign_margins(table: str) -> tuple[float, ...]:
    """``margin-wrong-sign``: m(r) negated, so the loss reads -log σ(Δr + m)."""
    return tuple(-m for m in MARGINS[table])


def swapped_pairs(data: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """``swapped-pairs``: (rejected, chosen) in place of (chosen, rejected)."""
    return [(rejected, chosen) for chosen, rejected in data]


def random_pick(
    answers: Sequence[Sequence[Sequence[int]]], rewards: torch.Tensor, generator: torch.Generator | None = None
) -> list[list[int]]:
    """``random-pick``: an arbitrary answer per prompt instead of the best-rewarded one."""
    idx = torch.randint(0, rewards.shape[1], (rewards.shape[0],), generator=generator).tolist()
    return [list(answers[i][j]) for i, j in enumerate(idx)]


def broken_gatt_examples(
    world: ToyWorld,
    n: int,
    max_turns: int,
    rng: random.Random,
    tokenizer: Any,
    *,
    concat_instruction: bool = True,
    keep_first_instruction: bool = True,
) -> list[tuple[list[int], list[int]]]:
    """Ghost Attention's data (``repro.finetune.gatt.gatt_examples`` with ``ghost=True``) with
    one step skipped: ``no-concat`` samples without the instruction in every user turn,
    ``no-system-prompt`` drops the first-turn instruction as well."""
    out = []
    for _ in range(n):
        attr = rng.choice(list(ATTRIBUTES))
        turns = rng.randint(1, max_turns)
        dialog = gatt_dialog(world, turns, rng, attr, concat_instruction=concat_instruction, keep_every_turn=False)
        if not keep_first_instruction:
            dialog = dialog[1:]  # no system prompt at all
        out.append(dialog_example(dialog, tokenizer, loss_on="last"))
    return out
