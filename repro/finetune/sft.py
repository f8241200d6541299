"""Supervised fine-tuning (Section 3.1): prompt and answer concatenated, the loss only on
answer tokens, several examples packed into one sequence without seeing each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from repro.finetune.loop import Dist, OptimConfig, step_rng, train_steps
from repro.finetune.losses import IGNORE, answer_only_labels, lm_loss_sum
from repro.finetune.packing import document_mask, pack
from repro.llama.chat import check_no_tags
from repro.llama.generation import B_INST, B_SYS, E_INST, E_SYS


def dialog_example(
    dialog: Sequence[dict], tokenizer, loss_on: str = "all", check_tags: bool = True
) -> tuple[list[int], list[int]]:
    """A dialog ending with an assistant turn, in the Llama 2-Chat template, as (ids,
    labels). Labels keep assistant tokens only: of every turn (``loss_on="all"``) or of the
    last one (``"last"``, Ghost Attention). Each turn is encoded as "<s>[INST] u [/INST]"
    then " a </s>", as ``chat_prompt_tokens`` lays out the prompt at inference."""
    msgs = list(dialog)
    if msgs and msgs[0]["role"] == "system":
        system, msgs = msgs[0]["content"], msgs[1:]
    else:
        system = None
    if len(msgs) < 2 or len(msgs) % 2 or any(m["role"] != r for m, r in zip(msgs, ["user", "assistant"] * len(msgs))):
        raise ValueError("a training dialog alternates user and assistant turns and ends with the assistant")
    if check_tags:
        for m in dialog:
            check_no_tags(m["content"], m["role"])
    if loss_on not in ("all", "last"):
        raise ValueError(f"loss_on must be 'all' or 'last', not {loss_on!r}")
    ids: list[int] = []
    labels: list[int] = []
    n_turns = len(msgs) // 2
    for t in range(n_turns):
        user, answer = msgs[2 * t]["content"].strip(), msgs[2 * t + 1]["content"].strip()
        if t == 0 and system is not None:
            user = B_SYS + system + E_SYS + user
        p = tokenizer.encode(f"{B_INST} {user} {E_INST}", bos=True)
        a = tokenizer.encode(f" {answer} ", eos=True)
        turn_ids, turn_labels = answer_only_labels(p, a)
        if loss_on == "last" and t < n_turns - 1:
            turn_labels = [IGNORE] * len(turn_ids)
        ids += turn_ids
        labels += turn_labels
    return ids, labels


@dataclass
class SFTConfig:
    steps: int = 100
    batch_size: int = 16  # examples per step, over all processes
    seq_len: int = 256  # packed row length
    seed: int = 0
    packing: bool = True


def batch_loss(
    model, examples: Sequence[tuple[list[int], list[int]]], seq_len: int, d: Dist, packing: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss to backpropagate on this process, global summed loss, global token count).
    The loss is this process's summed token loss over the GLOBAL token count, times the
    world size: DDP's gradient average then equals the gradient of the global mean."""
    device = next(model.parameters()).device
    if packing:
        b = pack(examples, seq_len)
        logits = model(b.tokens.to(device), positions=b.positions.to(device), mask=document_mask(b.doc.to(device)))
        labels = b.labels.to(device)
    else:
        from repro.finetune.packing import pad_right

        tokens = pad_right([e[0] for e in examples], 0, seq_len)
        labels = pad_right([e[1] for e in examples], IGNORE, seq_len)
        logits = model(tokens.to(device))
        labels = labels.to(device)
    total, count = lm_loss_sum(logits, labels)
    g_total = d.all_sum(total.detach())
    g_count = d.all_sum(count.detach().float())
    loss = total / g_count.clamp(min=1) * d.world
    return loss, g_total, g_count


def train_sft(
    model,
    examples: Sequence[tuple[list[int], list[int]]],
    cfg: SFTConfig,
    optim: OptimConfig,
    d: Optional[Dist] = None,
    on_step=None,
    **loop_kwargs,
):
    """Train on (ids, labels) examples; each step draws ``batch_size`` of them (a function
    of the seed and step), this process taking its share."""
    d = d or Dist()

    def step_loss(m, step):
        rng = step_rng(cfg.seed, step)
        batch = [examples[rng.randrange(len(examples))] for _ in range(cfg.batch_size)]
        loss, g_total, g_count = batch_loss(m, d.shard(batch), cfg.seq_len, d, cfg.packing)
        return loss, {"loss": float(g_total / g_count.clamp(min=1)), "tokens": float(g_count)}

    return train_steps(model, step_loss, optim, cfg.steps, d, on_step=on_step, **loop_kwargs)
