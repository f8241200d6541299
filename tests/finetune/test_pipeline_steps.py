"""Every step of the fine-tuning pipeline from its one command, on the shipped example data:
sft -> reward -> rejection -> ppo -> dpo -> gatt, each starting from the previous checkpoint,
and the last one answers in chat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples" / "finetune"


def test_example_files_are_what_the_documented_rule_writes(tmp_path):
    from repro.finetune.data import read_preferences, read_prompts, read_sft
    from repro.finetune.examples import write_examples

    for path in write_examples(tmp_path):
        assert path.read_bytes() == (EXAMPLES / path.name).read_bytes(), path.name
    assert len(read_sft(EXAMPLES / "sft.jsonl")) > 50 and len(read_preferences(EXAMPLES / "prefs.jsonl")) > 100
    assert len(read_prompts(EXAMPLES / "prompts.jsonl")) == 32
    dialogs = read_sft(EXAMPLES / "dialogues.jsonl")
    assert all(d[0]["role"] == "system" and d[-1]["role"] == "assistant" for d in dialogs)


def test_whole_pipeline_one_command_per_step(tmp_path, capsys):
    from repro.finetune.train import main
    from repro.llama.chat import ChatSession, load_checkpoint

    tiny = ["--steps", "3", "--batch", "4", "--dim", "32", "--layers", "1", "--seq-len", "128"]
    out = {s: tmp_path / s for s in ("sft", "rm", "rs", "ppo", "dpo", "gatt")}
    steps = [
        ["sft", "--data", EXAMPLES / "sft.jsonl", "--tokenizer", EXAMPLES, "--out", out["sft"]],
        ["reward", "--data", EXAMPLES / "prefs.jsonl", "--init", out["sft"], "--out", out["rm"]],
        ["rejection", "--data", EXAMPLES / "prompts.jsonl", "--init", out["sft"], "--reward", out["rm"],
         "--k", "2", "--max-gen-len", "8", "--out", out["rs"]],
        ["ppo", "--data", EXAMPLES / "prompts.jsonl", "--init", out["rs"], "--reward", out["rm"],
         "--max-gen-len", "8", "--out", out["ppo"]],
        ["dpo", "--data", EXAMPLES / "prefs.jsonl", "--init", out["ppo"], "--out", out["dpo"]],
        ["gatt", "--data", EXAMPLES / "dialogues.jsonl", "--init", out["dpo"], "--out", out["gatt"]],
    ]
    for argv in steps:
        assert main([str(x) for x in [*argv, *tiny]]) == 0, argv
        printed = capsys.readouterr()
        assert f"wrote {argv[argv.index('--out') + 1]}" in printed.out, printed
        assert "step 3/3" in printed.out or "iteration 3/3" in printed.out
    for name, folder in out.items():
        assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file(), name
        assert len(json.loads((folder / "losses.json").read_text())) == 3
    assert (out["rm"] / "score_head.safetensors").is_file()
    model, tok = load_checkpoint(out["gatt"])
    answer = ChatSession(model, tok, system="speak as pirate", temperature=1.0, max_gen_len=8).reply("w01")
    assert isinstance(answer, str) and "[INST]" not in answer
    # the policy's weights changed at each step: every step trained what the previous wrote
    from safetensors.torch import load_file

    def weights(folder):
        return load_file(str(next(folder.glob("*.safetensors"))))

    for before, after in [("sft", "rs"), ("rs", "ppo"), ("ppo", "dpo"), ("dpo", "gatt")]:
        a, b = weights(out[before]), weights(out[after])
        assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a), (before, after)


def test_a_step_without_its_reward_model_is_one_line(tmp_path, capsys):
    from repro.finetune.train import main

    rc = main(["ppo", "--data", str(EXAMPLES / "prompts.jsonl"), "--out", str(tmp_path / "x"), "--steps", "1"])
    assert rc == 1 and capsys.readouterr().err == "error: ppo needs --reward DIR (the reward step's output)\n"
