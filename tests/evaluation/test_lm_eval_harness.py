"""lm-evaluation-harness end to end at toy scale (issue 21): a Llama trained by our own
loop on a known rule, saved in HF layout with our tokenizer; a local multiple-choice task
(YAML + JSONL) whose gold answers follow that rule; the harness scores our model and
transformers' on the same checkpoint, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from repro.evaluation.toy import TASK_NAME, rule_items, write_toy_checkpoint, write_toy_task
from repro.registry import run_inline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("toy")
    try:
        checkpoint = write_toy_checkpoint(base / "checkpoint", steps=120)
    finally:
        torch.set_num_threads(threads)
    tasks = write_toy_task(base / "tasks")
    return {"eval-checkpoint": str(checkpoint), "lm-eval-tasks": str(tasks)}


def test_toy_task_follows_its_rule():
    items = rule_items()
    assert len(items) == 50  # 25 "after" + 25 "before" questions
    for it in items:
        word, letter, _ = it["question"].split()
        step = 1 if word == "after" else -1
        assert it["choices"][it["gold"]] == chr(ord(letter) + step) and len(set(it["choices"])) == 4


@pytest.mark.slow
def test_the_control_without_rotary_embeddings_is_contradicted(toy, tmp_path):
    broken = run_inline("llama/lm-eval", "smoke", inputs=toy, control="no-rope", run_dir=tmp_path / "ctl", limit=10)
    assert broken.verdict == "contradicted"
    assert {m.name: m.value for m in broken.metrics}["max_abs_loglikelihood_diff"] > 0.1


CLAIMS = """---
title: Toy benchmark
---
# Claims

> [!claim] The toy model answers the letter questions.
> experiment:: llama/lm-eval
> params:: task={task}, limit=20
> expect:: acc >= 0.9

^toy-letters
"""


@pytest.mark.slow
def test_claims_on_the_toy_task_are_decided_through_inputs_yaml(toy, tmp_path):
    vault = tmp_path / "vault"
    (vault / ".paperkb").mkdir(parents=True)
    (vault / "Toy.md").write_text(CLAIMS.format(task=TASK_NAME))
    (vault / ".paperkb" / "inputs.yaml").write_text(
        f"eval-checkpoint: {toy['eval-checkpoint']}\nlm-eval-tasks: {toy['lm-eval-tasks']}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(vault)]
    run = subprocess.run([*cmd, "run", "Toy"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    status = subprocess.run([*cmd, "status", "--format", "json"], env=env, capture_output=True, text=True, timeout=60)
    claims = {c["id"]: c for p in json.loads(status.stdout) for c in p["claims"]}
    assert claims["toy-letters"]["status"] == "supported at small scale"
    shown = subprocess.run(
        [*cmd, "runs", "show", claims["toy-letters"]["run_id"], "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    record = json.loads(shown.stdout)
    metrics = {m["name"]: m["value"] for m in record["metrics"]}
    # the model learned the rule: every question right, through ours and through transformers'
    assert metrics["acc"] == 1.0 and metrics["acc_reference"] == 1.0 and metrics["documents"] == 20
    assert metrics["max_abs_loglikelihood_diff"] < 1e-4
    recorded = record["environment"]["inputs"]["eval-checkpoint"]
    assert recorded["path"] == toy["eval-checkpoint"] and len(recorded["sha256"]) == 64 and recorded["bytes"] > 0
    listing = subprocess.run([*cmd, "inputs", "--format", "json"], env=env, capture_output=True, text=True, timeout=60)
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["eval-checkpoint"]["state"] == "valid" and "toy-letters" in rows["eval-checkpoint"]["claims"]


def test_a_broken_checkpoint_is_refused_before_anything_runs(tmp_path):
    broken = tmp_path / "broken"  # a config and a tokenizer, but no weights
    broken.mkdir()
    config = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 32}
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "tokenizer.json").write_text("{}")
    toy = {"lm-eval-tasks": str(write_toy_task(tmp_path / "tasks"))}
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Toy.md").write_text(CLAIMS.format(task=TASK_NAME))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.app",
            "--vault",
            str(vault),
            "run",
            "toy-letters",
            "--input",
            f"eval-checkpoint={broken}",
            "--input",
            f"lm-eval-tasks={toy['lm-eval-tasks']}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "has no model.safetensors or model.safetensors.index.json" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    status = subprocess.run(
        [sys.executable, "-m", "cli.app", "--vault", str(vault), "status", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    [claim] = [c for p in json.loads(status.stdout) for c in p["claims"]]
    assert claim["status"].startswith("needs a valid input eval-checkpoint")
