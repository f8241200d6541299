"""A toy benchmark with a known answer: a small Llama that learned a rule, and an
lm-evaluation-harness task asking it, both written to disk as a user's would be.

The rule: the letter after X is the next letter of the alphabet ("after c comes d") and the
letter before X the previous one. :func:`write_toy_checkpoint` trains our Llama on every
such sentence (our own training loop, AdamW) and saves it in Hugging Face layout with a
word-level ``tokenizer.json`` written by ``repro.llama.tokenizers_real``;
:func:`write_toy_task` writes a multiple-choice task (YAML + JSONL, ``dataset_path: json``
with local ``data_files``, so the harness runs offline) whose gold answer follows the rule.
A model that learned the rule scores 1.0; one that did not, about 1/4 (four choices).
Used by the tests and by docs/reproducing.md's dry run.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

LETTERS = string.ascii_lowercase
TASK_NAME = "paperkb_letters"


def rule_items() -> list[dict]:
    """Every question of the rule, with its gold answer (the index into ``choices``)."""
    rng = random.Random(0)
    items = []
    for i, letter in enumerate(LETTERS):
        for word, j in (("after", i + 1), ("before", i - 1)):
            if not 0 <= j < len(LETTERS):
                continue
            wrong = rng.sample([c for c in LETTERS if c != LETTERS[j]], 3)
            choices = [LETTERS[j], *wrong]
            rng.shuffle(choices)
            items.append({"question": f"{word} {letter} comes", "choices": choices, "gold": choices.index(LETTERS[j])})
    return items


def write_toy_checkpoint(directory: str | Path, *, steps: int = 300, seed: int = 0) -> Path:
    """Train a 2-layer Llama (dim 64) on the rule's sentences and save it in HF layout."""
    import torch
    import torch.nn.functional as F

    from repro.llama.model import ModelArgs, Transformer
    from repro.llama.tokenizers_real import train_wordlevel
    from repro.llama.weights import save_hf

    directory = Path(directory)
    tok = train_wordlevel(["after", "before", "comes", *LETTERS], directory)
    _add_bos_post_processor(directory / "tokenizer.json")
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": 64,
            }
        )
    )
    torch.manual_seed(seed)
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=tok.n_words, max_seq_len=64)
    model = Transformer(args)
    sentences = [f"{it['question']} {it['choices'][it['gold']]}" for it in rule_items()]
    data = torch.tensor([tok.encode(s, bos=True) for s in sentences])  # (S, 5): all the same length
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    for _ in range(steps):
        logits = model(data[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), data[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_hf(model.eval(), directory)
    return directory


def _add_bos_post_processor(path: Path) -> None:
    """Make the tokenizer put ``<s>`` first, as Llama's Hugging Face tokenizers do."""
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(path))
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    tok.save(str(path))


def write_toy_task(directory: str | Path, *, n_items: int | None = None) -> Path:
    """An lm-eval multiple-choice task over the rule: ``paperkb_letters.yaml`` and its JSONL."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    items = rule_items()[:n_items] if n_items else rule_items()
    with open(directory / f"{TASK_NAME}.jsonl", "w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps(it) + "\n")
    (directory / f"{TASK_NAME}.yaml").write_text(
        "\n".join(
            [
                f"task: {TASK_NAME}",
                "dataset_path: json",
                "dataset_kwargs:",
                "  data_files:",
                f"    test: {TASK_NAME}.jsonl",
                "test_split: test",
                "output_type: multiple_choice",
                'doc_to_text: "{{question}}"',
                'doc_to_choice: "{{choices}}"',
                "doc_to_target: gold",
                "metric_list:",
                "  - metric: acc",
                "    aggregation: mean",
                "    higher_is_better: true",
                "metadata:",
                "  version: 1.0",
                "",
            ]
        )
    )
    return directory
