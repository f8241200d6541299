"""The example data files of the fine-tuning tour (``docs/examples/finetune/``).

They are drawn from the synthetic world of :mod:`repro.finetune.data` (``ToyWorld(seed=0)``)
with a fixed seed, so the same command always writes the same bytes:

    python -m repro.finetune.examples docs/examples/finetune

- ``sft.jsonl``: ``{"prompt", "completion"}`` demonstrations, plus ``{"messages": [...]}`` ones;
- ``prefs.jsonl``: ``{"prompt", "chosen", "rejected", "rating"}`` pairs labelled by the world's
  noisy annotator, the rating one of Table 8's levels;
- ``prompts.jsonl``: ``{"prompt"}`` lines for rejection sampling and PPO;
- ``dialogues.jsonl``: Ghost Attention dialogs, ``{"messages": [system, user, assistant, ...]}``,
  sampled with the system instruction joined to every user turn and kept in the first only;
- ``tokenizer.json``: the world's word-level tokenizer (its words and the template's tags), for
  ``--tokenizer``: a toy model learns these words in seconds where bytes take minutes.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from repro.finetune.data import ATTRIBUTES, ToyWorld, gatt_dialog
from repro.finetune.losses import RATING_LEVELS

SEED = 0
COUNTS = {"sft": 96, "prefs": 160, "prompts": 32, "dialogues": 48}


def example_rows(seed: int = SEED) -> dict[str, list[dict]]:
    """Every example file's rows (file stem -> JSON objects)."""
    world = ToyWorld(seed=seed)
    rng = random.Random(seed)
    sft: list[dict] = []
    for i, dialog in enumerate(world.sft_dialogs(COUNTS["sft"], rng)):
        user, answer = dialog[0]["content"], dialog[1]["content"]
        sft.append({"messages": dialog} if i % 4 == 3 else {"prompt": user, "completion": answer})
    prefs = [
        {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "rating": RATING_LEVELS[p.level]}
        for p in world.pairs(COUNTS["prefs"], rng)
    ]
    prompts = [{"prompt": world.prompt(rng)} for _ in range(COUNTS["prompts"])]
    dialogues = [
        {"messages": gatt_dialog(world, rng.randint(1, 3), rng, rng.choice(list(ATTRIBUTES)))}
        for _ in range(COUNTS["dialogues"])
    ]
    return {"sft": sft, "prefs": prefs, "prompts": prompts, "dialogues": dialogues}


def write_examples(folder: str | Path, seed: int = SEED) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, rows in example_rows(seed).items():
        path = folder / f"{stem}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        written.append(path)
    ToyWorld(seed=seed).tokenizer(folder)
    written.append(folder / "tokenizer.json")
    return written


if __name__ == "__main__":
    for p in write_examples(sys.argv[1] if len(sys.argv) > 1 else "docs/examples/finetune"):
        print(f"wrote {p}")
