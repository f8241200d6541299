"""flash-attention/split-kv-decoding (issue 21): its paper preset is Llama 2 7B's decoding
shape on one GPU, so on a CPU it reads `needs a CUDA GPU` and bench/gpu_paper.py lists it;
the smoke preset judges the kernel in Triton's interpreter, and its control (splits averaged
with equal weights instead of their log-sum-exp weights) is contradicted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from repro import registry
from repro.runner import RunOptions, Target, plan_runs

ROOT = Path(__file__).resolve().parents[2]


class _NoCuda:
    cuda = {"available": False, "count": 0, "memory_gb": []}


def test_the_paper_preset_is_llama_2_7b_decoding_on_one_gpu_and_needs_cuda_here():
    exp = registry.get("flash-attention/split-kv-decoding")
    paper = exp.presets["paper"]
    assert paper.requires.device == "cuda" and paper.requires.triton and not paper.requires.inputs
    assert paper.params["heads"] == paper.params["heads_kv"] == 32 and paper.params["head_dim"] == 128
    assert max(paper.params["kv_lens"]) == 4096 and exp.scale_of("paper") == "paper"
    planned, [skipped] = plan_runs(
        [Target("flash-attention/split-kv-decoding", ["fa-split-kv-decoding"])],
        RunOptions(preset="paper"),
        machine=_NoCuda(),
    )
    assert not planned and skipped.needs == "a CUDA GPU"
    spec = importlib.util.spec_from_file_location("gpu_paper", ROOT / "bench" / "gpu_paper.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert "flash-attention/split-kv-decoding" in script.gpu_paper_experiments()


@pytest.mark.slow  # two runs of the kernel in Triton's CPU interpreter: about 25 s of CPU
def test_smoke_is_supported_and_equal_split_weights_are_contradicted():
    pytest.importorskip("triton")
    result = registry.run_inline("flash-attention/split-kv-decoding", "smoke")
    assert result.verdict == "supported"
    worst = {c.name: c.value for c in result.checks}
    assert set(worst) == {"float32_worst_error_over_bound", "float16_worst_error_over_bound"}
    assert all(0.0 <= v <= 1.0 for v in worst.values())
    broken = registry.run_inline("flash-attention/split-kv-decoding", "smoke", control="equal-split-weights")
    assert broken.verdict == "contradicted"
    assert all(c.value > 10.0 for c in broken.checks)  # far outside rounding, not a borderline miss
