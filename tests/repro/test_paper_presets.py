"""`--preset paper`, preset requirements and named inputs (issue 21): planning refuses or
skips with `needs …` before anything runs; inputs are validated and fingerprinted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paperkb.errors import PaperkbError, UsageError
from repro import inputs as inputs_mod
from repro import registry
from repro.paper import beyond_reach
from repro.registry import Control, Preset, Requirements
from repro.runner import RunOptions, Target, plan_runs, record_skipped
from repro.status import ClaimRef, claim_statuses
from repro.tracker import Tracker

ROOT = Path(__file__).resolve().parents[2]


class _NoCuda:
    cuda = {"available": False, "count": 0, "memory_gb": []}


class _SmallGpu:
    cuda = {"available": True, "count": 1, "memory_gb": [8.0]}


def _noop(ctx):  # never run by these tests: planning only
    raise AssertionError("planning must not run the experiment")


@pytest.fixture
def paper_exps():
    made = {
        "test-paper/gpu": {
            "smoke": Preset(),
            "full": Preset(),
            "paper": Preset(requires=Requirements(device="cuda", min_gpu_memory_gb=40, inputs=("llama-2-7b",))),
        },
        "test-paper/none": {"smoke": Preset(), "full": Preset()},
        "test-paper/cpu": {"smoke": Preset(), "full": Preset(), "paper": Preset()},
    }
    for exp_id, presets in made.items():
        registry.register(
            registry.Experiment(exp_id, "test", _noop, presets=presets, controls=(Control("break", "b"),))
        )
    beyond_reach("test-paper/none", "data nobody released")
    yield
    for exp_id in made:
        registry._REGISTRY.pop(exp_id, None)


def _hf_checkpoint(folder: Path, *, shard_missing: bool = False) -> Path:
    folder.mkdir(parents=True)
    config = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 16}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text("{}")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"x" * 100)
    if not shard_missing:
        (folder / "model-00002-of-00002.safetensors").write_bytes(b"y" * 50)
    return folder


def test_paper_preset_is_accepted_and_an_unknown_one_is_a_usage_error(paper_exps):
    planned, skipped = plan_runs([Target("test-paper/cpu")], RunOptions(preset="paper"), machine=_NoCuda())
    assert [p.scale for p in planned] == ["paper"] and not skipped
    with pytest.raises(UsageError, match="--preset must be one of smoke, full, paper"):
        plan_runs([Target("test-paper/cpu")], RunOptions(preset="huge"), machine=_NoCuda())


def test_every_missing_requirement_is_named_at_once(paper_exps):
    planned, [s] = plan_runs([Target("test-paper/gpu", ["c1"])], RunOptions(preset="paper"), machine=_NoCuda())
    assert not planned
    assert s.needs.startswith("a CUDA GPU with 40 GB of memory and the input llama-2-7b (Meta's Llama 2 7B")
    assert "--input llama-2-7b=PATH" in s.reason
    # with a GPU that is too small, the memory is what it lacks
    _, [s] = plan_runs([Target("test-paper/gpu")], RunOptions(preset="paper"), machine=_SmallGpu())
    assert s.needs.startswith("a GPU with 40 GB of memory and the input llama-2-7b")


def test_no_paper_preset_says_what_it_would_take(paper_exps):
    _, [s] = plan_runs([Target("test-paper/none")], RunOptions(preset="paper"), machine=_NoCuda())
    assert s.needs == "data nobody released"


def test_inputs_are_validated_before_anything_runs(paper_exps, tmp_path):
    good = _hf_checkpoint(tmp_path / "good")
    bad = _hf_checkpoint(tmp_path / "bad", shard_missing=True)
    gpu = type("Big", (), {"cuda": {"available": True, "count": 1, "memory_gb": [80.0]}})()
    [p], _ = plan_runs(
        [Target("test-paper/gpu")], RunOptions(preset="paper", inputs={"llama-2-7b": str(good)}), machine=gpu
    )
    assert p.inputs == {"llama-2-7b": str(good)} and p.device == "cuda"
    _, [s] = plan_runs(
        [Target("test-paper/gpu")], RunOptions(preset="paper", inputs={"llama-2-7b": str(bad)}), machine=gpu
    )
    assert "shard model-00002-of-00002.safetensors named by model.safetensors.index.json is missing" in s.needs
    assert "\n" not in s.reason


def test_inputs_yaml_and_overrides(tmp_path):
    vault = tmp_path / "v"
    (vault / ".paperkb").mkdir(parents=True)
    (vault / ".paperkb" / "inputs.yaml").write_text("llama-2-7b: models/7b\nlm-eval-tasks: ~/tasks\n")
    table = inputs_mod.load_inputs(vault, ["llama-2-70b=/x/70b"])
    assert table["llama-2-7b"] == str((vault / "models/7b").absolute())
    assert table["llama-2-70b"] == "/x/70b" and not table["lm-eval-tasks"].startswith("~")
    with pytest.raises(UsageError, match="no experiment declares that input"):
        inputs_mod.load_inputs(vault, ["nonsense=/x"])
    with pytest.raises(UsageError, match="NAME=PATH"):
        inputs_mod.load_inputs(vault, ["llama-2-7b"])
    (vault / ".paperkb" / "inputs.yaml").write_text("llama-2-7b: /a\nlm-eval-tasks: [1, 2\n")
    with pytest.raises(PaperkbError, match=r"inputs\.yaml:3: invalid YAML"):
        inputs_mod.load_inputs(vault)
    (vault / ".paperkb" / "inputs.yaml").write_text("llama-2-7b: /a\nlm-eval-tasks: 3\n")
    with pytest.raises(PaperkbError, match=r"inputs\.yaml:2: input 'lm-eval-tasks' must be a path"):
        inputs_mod.load_inputs(vault)


def test_fingerprint_is_cached_and_changes_with_the_content(tmp_path):
    ckpt = _hf_checkpoint(tmp_path / "ck")
    spec = inputs_mod.declared()["llama-2-7b"]
    files = inputs_mod.validate(spec, ckpt)
    first = inputs_mod.fingerprint(files, tmp_path / "cache")
    assert first["bytes"] == sum(f.stat().st_size for f in files) and first["files"] == 5
    cache = json.loads((tmp_path / "cache" / "fingerprints.json").read_text())
    assert len(cache) == 5
    assert inputs_mod.fingerprint(files, tmp_path / "cache") == first
    (ckpt / "model-00002-of-00002.safetensors").write_bytes(b"z" * 50)  # same size, other weights
    assert inputs_mod.fingerprint(files, tmp_path / "cache")["sha256"] != first["sha256"]


def test_skipped_paper_run_reads_needs(paper_exps, tmp_path):
    _, skipped = plan_runs([Target("test-paper/gpu", ["c1"])], RunOptions(preset="paper"), machine=_NoCuda())
    with Tracker(tmp_path) as tracker:
        record_skipped(tracker, skipped, "paper")
    claim = ClaimRef(id="c1", statement="t", experiments=["test-paper/gpu"], note="n.md", title="n")
    status = claim_statuses(tmp_path, [claim])["c1"]["status"]
    assert status.startswith("needs a CUDA GPU with 40 GB of memory and the input llama-2-7b")


@pytest.mark.slow
def test_cli_param_counts_reproduced_and_inputs_listing(tmp_path):
    """The acceptance: `run llama2-param-counts --preset paper` reads reproduced on a CPU."""
    import shutil

    vault = tmp_path / "notes"
    shutil.copytree(ROOT / "notes", vault, ignore=shutil.ignore_patterns(".paperkb"))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(vault)]
    run = subprocess.run(
        [*cmd, "run", "llama2-param-counts", "--preset", "paper"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    out = subprocess.run([*cmd, "status", "--format", "json"], env=env, capture_output=True, text=True, timeout=60)
    claims = {c["id"]: c for p in json.loads(out.stdout) for c in p["claims"]}
    assert claims["llama2-param-counts"]["status"] == "reproduced"
    listing = subprocess.run([*cmd, "inputs", "--format", "json"], env=env, capture_output=True, text=True, timeout=60)
    rows = {r["name"]: r for r in json.loads(listing.stdout)}
    assert rows["llama-2-7b"]["state"] == "missing" and "huggingface-cli" in rows["llama-2-7b"]["problem"]
