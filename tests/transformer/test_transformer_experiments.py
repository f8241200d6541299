"""The transformer/* experiments, run small: each reaches its verdict and can fail."""

from __future__ import annotations


import subprocess
import sys

from repro.registry import get, run_inline

IDS = ["transformer/param-count", "transformer/sinusoid-linear", "transformer/scaled-dot-product",
       "transformer/attention-cost", "transformer/copy-task"]




def test_declarations_do_not_import_torch():
    code = "import sys, repro.transformer.experiments; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered():
    for exp_id in IDS:
        exp = get(exp_id)
        for preset in ("smoke", "full"):
            exp.resolve_params(preset)


def test_param_count():
    assert run_inline("transformer/param-count").verdict == "supported"
    # the count depends on the stated vocabulary: a small one misses 65M/213M
    assert run_inline("transformer/param-count", vocab_size=8000).verdict == "contradicted"


def test_sinusoid_linear(tmp_path):
    r = run_inline("transformer/sinusoid-linear", run_dir=tmp_path, d_model=64, n_positions=160, offsets=[1, 9, 50])
    assert r.verdict == "supported"
    control = [m.value for m in r.metrics if m.name == "residual_random_positions"]
    assert min(control) > 0.1


def test_scaled_dot_product(tmp_path):
    r = run_inline("transformer/scaled-dot-product", run_dir=tmp_path, n_queries=128)
    assert r.verdict == "supported"
    assert (tmp_path / "softmax_saturation.png").exists()
    # over a range of d_k too small to saturate, the claim is not supported
    assert run_inline("transformer/scaled-dot-product", run_dir=tmp_path, d_k=[2, 4, 8],
                      n_queries=128).verdict == "contradicted"


def test_attention_cost(tmp_path):
    r = run_inline("transformer/attention-cost", run_dir=tmp_path, ns=[16, 32, 64], ds=[16, 32, 64],
                   n_fixed=16, d_fixed=16, repeats=1)
    assert r.verdict == "supported"
    m = {x.name: x.value for x in r.metrics}
    assert abs(m["attention_flops_exponent_n"] - 2) < 0.05 and abs(m["recurrent_flops_exponent_d"] - 2) < 0.05


def test_copy_task_undertrained_fails(tmp_path):
    r = run_inline("transformer/copy-task", run_dir=tmp_path, steps=5, eval_size=20, seq_len=5)
    assert r.verdict == "contradicted"
    assert {c.name for c in r.checks} == {"token_accuracy", "seconds"}
