"""bench/gpu_paper.py on a CPU: the plan is the one-GPU paper presets without inputs, and
it stops (recording them as skipped) where CUDA is needed."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_paper", ROOT / "bench" / "gpu_paper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_chooses_the_one_gpu_paper_presets_without_inputs():
    from repro import registry

    chosen = _script().gpu_paper_experiments()
    assert "flash-attention/speed" in chosen and "flash-attention/linear-memory" in chosen
    assert "llama/kv-cache-decode" not in chosen  # needs the 7B weights
    for exp_id in chosen:
        req = registry.get(exp_id).presets["paper"].requires
        assert req.device == "cuda" and req.nproc == 1 and not req.inputs


def test_results_section_is_replaced_between_its_markers():
    m = _script()
    text = "# Results\n\nbefore\n"
    once = m.replace_section(text, "first\n")
    assert once.startswith("# Results\n\nbefore\n") and "first" in once
    twice = m.replace_section(once + "after\n", "second\n")
    assert "first" not in twice and "second" in twice and twice.endswith("after\n")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="on a GPU machine the script would run the presets for real")
def test_on_a_cpu_it_records_the_presets_as_skipped_and_runs_nothing(tmp_path):
    vault = tmp_path / "notes"
    shutil.copytree(ROOT / "notes", vault, ignore=shutil.ignore_patterns(".paperkb"))
    out = tmp_path / "gpu_paper.md"
    cmd = [sys.executable, str(ROOT / "bench" / "gpu_paper.py"), "--vault", str(vault), "--out", str(out)]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 1 and "needs a CUDA GPU" in dry.stdout
    assert not (vault / ".paperkb" / "runs.db").exists()  # a dry run records nothing
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "recorded as skipped, nothing run" in run.stdout and not out.exists()
    status = subprocess.run(
        [sys.executable, "-m", "cli.app", "--vault", str(vault), "status", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    claims = {c["id"]: c["status"] for p in json.loads(status.stdout) for c in p["claims"]}
    assert claims["fa-speed"] == "needs a CUDA GPU with 40 GB of memory"
