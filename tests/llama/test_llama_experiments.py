"""The llama/* experiments: each runs its smoke preset (or a shrunk one) and can fail."""

from __future__ import annotations


import pytest

from repro.registry import RunContext, get, run_inline

LLAMA_IDS = ["llama/param-count", "llama/gqa-kv-cache", "llama/hf-parity", "llama/kv-cache-decode",
             "llama/train-small", "llama/flash-attention-parity"]


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
    # measured from the storages the caches hold: 2 layers x (k, v) x heads x 16 positions x 8 x fp32
    assert m["kv_bytes_gqa"] == 2 * 2 * 8 * 16 * 8 * 4 and m["kv_bytes_mha"] == 8 * m["kv_bytes_gqa"]
    assert m["kv_bytes_ratio"] == 8.0 and m["decode_tokens_per_s_gqa"] > 0
    assert m["kv_bytes_70b_gqa_fp16"] == 2 * 80 * 8 * 128 * 4096 * 2  # reference figure only
    assert "kv_bytes_70b_gqa_fp16" not in {c.name for c in r.checks}


def test_hf_parity(tmp_path):
    r = run_inline("llama/hf-parity", run_dir=tmp_path)
    assert r.verdict == "supported" and len(r.checks) == 4
    assert all(c.value <= 1e-4 for c in r.checks)


@pytest.mark.slow
def test_flash_attention_inside_the_model_matches_transformers(tmp_path):
    # our tiled FlashAttention runs inside the Llama model over several 128-wide blocks
    r = run_inline("llama/flash-attention-parity", run_dir=tmp_path, seq_len=256, n_layers=1)
    assert r.verdict == "supported"
    assert [c.name for c in r.checks] == ["max_abs_diff_tiled_vs_transformers"]
    assert r.checks[0].value <= 1e-4 and r.checks[0].evidence == "direct"


def test_kv_cache_decode(tmp_path):
    r = run_inline("llama/kv-cache-decode", run_dir=tmp_path, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                   prompt_len=32, new_tokens=8)
    passed = {c.name: c.passed for c in r.checks}
    # the speed check is timing on a shared machine: judged by the experiment, not here
    assert passed["max_abs_diff"] and passed["same_greedy_tokens"] and "speedup" in passed
    r = run_inline("llama/kv-cache-decode", run_dir=tmp_path, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                   prompt_len=32, new_tokens=8, min_speedup=1e6)
    assert r.verdict == "contradicted"


def test_split_lines_dedupes_and_shares_nothing():
    from repro.llama.workloads import shared_lines, split_lines

    text = "\n".join(["> [!claim] template line", "unique a", "unique b", "  > [!claim]   template line "] * 50
                     + [f"line {i}" for i in range(200)])
    train, held = split_lines(text, 0.3, seed=0)
    assert held and train and shared_lines(train, held) == 0
    assert len(train) + len(held) == 203  # every distinct line once
    assert split_lines(text, 0.3, seed=0) == (train, held)  # deterministic


def test_cosine_schedule_shape():
    from repro.llama.workloads import cosine_lr

    lrs = [cosine_lr(s, 1.0, 10, 100) for s in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # then decays
    assert abs(lrs[-1] - 0.1) < 1e-12  # to 10% of the peak


def test_train_small_core(tmp_path):
    vault = tmp_path / "vault"
    (vault / "sub").mkdir(parents=True)
    lines = [f"Grouped-query attention shares keys and values across heads, note {i}." for i in range(60)]
    (vault / "a.md").write_text("\n".join(lines))
    (vault / "sub" / "b.md").write_text("\n".join(x[::-1] for x in lines))
    outside = tmp_path / "secret.md"
    outside.write_text("SECRET " * 500)
    (vault / "link.md").symlink_to(outside)
    from repro.llama.workloads import _corpus

    corpus, source = _corpus(str(vault))
    assert "SECRET" not in corpus and "2 notes" in source
    run_dir = tmp_path / "run"
    common = dict(vault=str(vault), steps=12, batch=4, seq_len=32, dim=32, n_layers=1, n_heads=2, n_kv_heads=1,
                  warmup=2, held_out_fraction=0.3)
    r = run_inline("llama/train-small", run_dir=run_dir, **common)
    assert (run_dir / "loss_curve.png").stat().st_size > 1000
    losses = [x.value for x in r.metrics if x.name == "val_loss"]
    assert losses[-1] < losses[0]
    checks = {c.name: c for c in r.checks}
    assert checks["held_out_lines_in_training"].value == 0 and checks["final_lr_fraction_of_peak"].passed
    assert checks["beats_unigram"].evidence == "proxy"
    # constants the code set are re-read, not measured: recorded as reference, never evidence
    assert checks["adamw_betas"].evidence == "reference"
    assert checks["final_lr_fraction_of_peak"].evidence == "reference"


@pytest.mark.parametrize("exp_id, control, overrides", [
    ("llama/param-count", "swiglu-no-multiple-of", {}),
    ("llama/gqa-kv-cache", "drop-position", {}),
    ("llama/gqa-kv-cache", "expand-kv-heads", {}),
    ("llama/hf-parity", "swapped-swiglu", {}),
    ("llama/kv-cache-decode", "drop-position", {}),
    ("llama/train-small", "leaky-split", {}),
    ("llama/flash-attention-parity", "tiled-no-rescale", {"n_layers": 1}),
])
def test_every_control_ends_contradicted_at_smoke(exp_id, control, overrides, tmp_path):
    assert control in {c.name for c in get(exp_id).controls}
    assert run_inline(exp_id, "smoke", run_dir=tmp_path, control=control, **overrides).verdict == "contradicted"


def test_every_llama_experiment_declares_a_control():
    for exp_id in LLAMA_IDS:
        assert get(exp_id).controls, exp_id
