"""Ghost Attention (Section 3.3): make a system instruction hold over many turns.

Data: sample dialogs with the instruction concatenated to every user turn (so the sampler
follows it throughout), then keep it in the first turn only and zero the loss on all turns
but the last ("set the loss to 0 for all the tokens from the previous turns, including
assistant messages"). Evaluation (Table 30): with the model's own earlier answers as
history, how often the answer at turn t still respects the first-turn instruction.
"""

from __future__ import annotations

import random

import torch

from repro.finetune.data import ATTRIBUTES, DEFAULT_MARKER, ToyWorld, gatt_dialog, instruction
from repro.finetune.sft import dialog_example
from repro.llama.generation import Message, chat_prompt_tokens, generate


def gatt_examples(
    world: ToyWorld,
    n: int,
    max_turns: int,
    rng: random.Random,
    *,
    ghost: bool = True,
    tokenizer=None,
) -> list[tuple[list[int], list[int]]]:
    """Training examples of 1..max_turns turns.

    Both sample the same dialogs, with the instruction concatenated to every user turn, so
    every sampled answer follows it (as in the paper); only the data construction differs.
    ``ghost=True``: Ghost Attention (the instruction kept in the first turn only, loss on
    the last turn only). ``ghost=False``: the baseline, ordinary multi-turn SFT on the
    dialogs as they were sampled (the instruction in every user turn), loss on every answer.
    (The negative controls that skip one step are built in ``repro.finetune.controls``.)"""
    out = []
    for _ in range(n):
        attr = rng.choice(list(ATTRIBUTES))
        turns = rng.randint(1, max_turns)
        dialog = gatt_dialog(world, turns, rng, attr, concat_instruction=True, keep_every_turn=not ghost)
        out.append(dialog_example(dialog, tokenizer, loss_on="last" if ghost else "all"))
    return out


@torch.no_grad()
def kept_rate_by_turn(
    model, tokenizer, world: ToyWorld, n_dialogs: int, n_turns: int, seed: int = 0, temperature: float = 0.0
) -> list[float]:
    """Fraction of dialogs whose answer at turn t (1..n_turns) starts with the marker of the
    system instruction, the model answering every turn itself."""
    rng = random.Random(seed)
    model.eval()
    attrs = [rng.choice(list(ATTRIBUTES)) for _ in range(n_dialogs)]
    dialogs: list[list[Message]] = [[{"role": "system", "content": instruction(a)}] for a in attrs]
    kept = [0] * n_turns
    gen = torch.Generator().manual_seed(seed)
    for t in range(n_turns):
        for d in dialogs:
            d.append({"role": "user", "content": rng.choice(world.words)})
        prompts = [chat_prompt_tokens(d, tokenizer) for d in dialogs]
        outs = generate(model, prompts, 3, temperature=temperature, top_p=1.0, eos_id=tokenizer.eos_id, generator=gen)
        for i, (d, o) in enumerate(zip(dialogs, outs)):
            text = tokenizer.decode([x for x in o if x != tokenizer.eos_id]).strip()
            first = text.split()[0] if text.split() else ""
            kept[t] += first == ATTRIBUTES[attrs[i]]
            # an empty answer would break the template; it counts as not keeping the instruction
            d.append({"role": "assistant", "content": text or DEFAULT_MARKER})
    model.train()
    return [k / n_dialogs for k in kept]
