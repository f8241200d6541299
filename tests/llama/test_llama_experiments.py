"""The llama/* experiments: each runs its smoke preset (or a shrunk one) and can fail."""

from __future__ import annotations

import subprocess
import sys


from repro.registry import RunContext, get, run_inline

LLAMA_IDS = ["llama/param-count", "llama/gqa-kv-cache", "llama/hf-parity", "llama/kv-cache-decode",
             "llama/train-small"]




def test_declarations_do_not_import_torch():
    code = "import sys, repro.llama.experiments; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_ids_registered_with_both_presets():
    for exp_id in LLAMA_IDS:
        exp = get(exp_id)
        assert {"smoke", "full"} <= set(exp.presets)
        for preset in ("smoke", "full"):
            exp.resolve_params(preset)


def test_param_count_supported():
    r = run_inline("llama/param-count")
    assert r.verdict == "supported"
    assert {c.name for c in r.checks} == {"params_7B", "params_13B", "params_70B"}


def test_param_count_can_fail():
    """A wrong FFN rule (no rounding to multiple_of) would be caught."""
    from repro.llama import experiments, model

    exp = get("llama/param-count")
    ctx = RunContext(exp.resolve_params("smoke", {"sizes": ["7B"]}))
    saved = model.PRESETS["7B"]
    try:
        model.PRESETS["7B"] = model.ModelArgs(dim=4096, n_layers=32, n_heads=32, multiple_of=1)
        assert experiments.param_count(ctx).verdict == "contradicted"
    finally:
        model.PRESETS["7B"] = saved


def test_gqa_kv_cache(tmp_path):
    r = run_inline("llama/gqa-kv-cache", run_dir=tmp_path, decode_tokens=8)
    assert r.verdict == "supported"
    m = {x.name: x.value for x in r.metrics}
    assert m["kv_bytes_70b_gqa"] == 2 * 80 * 8 * 128 * 4096 * 2
    assert m["kv_ratio_70b"] == 8.0 and m["kv_ratio_small"] == 8.0


def test_hf_parity(tmp_path):
    r = run_inline("llama/hf-parity", run_dir=tmp_path)
    assert r.verdict == "supported" and len(r.checks) == 4
    assert all(c.value <= 1e-4 for c in r.checks)


def test_kv_cache_decode(tmp_path):
    r = run_inline("llama/kv-cache-decode", run_dir=tmp_path, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                   prompt_len=32, new_tokens=8)
    passed = {c.name: c.passed for c in r.checks}
    # the speed check is timing on a shared machine: judged by the experiment, not here
    assert passed["max_abs_diff"] and passed["same_greedy_tokens"] and "speedup" in passed
    r = run_inline("llama/kv-cache-decode", run_dir=tmp_path, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                   prompt_len=32, new_tokens=8, min_speedup=1e6)
    assert r.verdict == "contradicted"


def test_train_small_core(tmp_path):
    vault = tmp_path / "vault"
    (vault / "sub").mkdir(parents=True)
    text = "Grouped-query attention shares keys and values across heads. " * 40
    (vault / "a.md").write_text(text)
    (vault / "sub" / "b.md").write_text(text[::-1])
    outside = tmp_path / "secret.md"
    outside.write_text("SECRET " * 500)
    (vault / "link.md").symlink_to(outside)
    from repro.llama.experiments import _corpus

    corpus, source = _corpus(str(vault))
    assert "SECRET" not in corpus and "2 notes" in source
    run_dir = tmp_path / "run"
    common = dict(vault=str(vault), steps=12, batch=4, seq_len=32, dim=32, n_layers=1, n_heads=2, n_kv_heads=1)
    r = run_inline("llama/train-small", run_dir=run_dir, target_loss=5.4, **common)
    assert (run_dir / "loss_curve.png").stat().st_size > 1000
    losses = [x.value for x in r.metrics if x.name == "val_loss"]
    assert losses[-1] < losses[0]
    r = run_inline("llama/train-small", run_dir=run_dir, target_loss=0.01, **common)
    assert r.verdict == "contradicted"
