"""The four FlashAttention experiments: registered under the ids the notes cite, each
runs its smoke preset on the CPU (at reduced sizes here) and can reach either verdict."""

from __future__ import annotations

import importlib.util

import pytest

from repro.registry import get, run_inline

IDS = ["flash-attention/exact", "flash-attention/linear-memory", "flash-attention/io-complexity",
       "flash-attention/speed"]


def test_experiments_are_registered_with_both_presets():
    for exp_id in IDS:
        exp = get(exp_id)
        assert set(exp.presets) >= {"smoke", "full"}
        assert exp.presets["smoke"].requires.device == "cpu"
    for exp_id in ("flash-attention/exact", "flash-attention/linear-memory", "flash-attention/speed"):
        assert get(exp_id).presets["full"].requires.device == "cuda"


@pytest.mark.slow
def test_exact_smoke_is_supported(tmp_path):
    impls = ["tiled", "triton"] if importlib.util.find_spec("triton") else ["tiled"]
    result = run_inline("flash-attention/exact", run_dir=tmp_path, impls=impls, pairs=["113x203"], head_dims=[40],
                        dtypes=["bfloat16"], triton_cpu_pairs=["17x33"], triton_cpu_dtypes=["float32"],
                        triton_cpu_head_dims=[40])
    assert result.verdict == "supported", [c.to_dict() for c in result.checks]
    names = {c.name for c in result.checks}
    assert "tiled_bfloat16_worst_error_over_bound" in names
    if "triton" in impls:
        assert "triton_float32_worst_error_over_bound" in names


@pytest.mark.slow
def test_linear_memory_smoke_is_supported_and_plots(tmp_path):
    result = run_inline("flash-attention/linear-memory", run_dir=tmp_path, ns=[1024, 2048, 4096])
    assert result.verdict == "supported", [c.to_dict() for c in result.checks]
    assert (tmp_path / "linear_memory.png").stat().st_size > 1000


@pytest.mark.slow
def test_linear_memory_contradicts_a_quadratic_tiled_run(tmp_path):
    """With one block as large as the sequence, 'tiled' holds an N x N block: the
    exponent check must fail."""
    result = run_inline("flash-attention/linear-memory", run_dir=tmp_path, ns=[256, 512, 1024],
                        impls=["tiled"], tiled_block=1024)
    assert result.verdict == "contradicted"
    (check,) = result.checks
    assert check.name == "tiled_memory_exponent" and check.value > 1.7


def test_io_complexity_smoke_is_supported_and_plots(tmp_path):
    result = run_inline("flash-attention/io-complexity", run_dir=tmp_path)
    assert result.verdict == "supported", [c.to_dict() for c in result.checks]
    assert (tmp_path / "io_complexity.png").stat().st_size > 1000
    values = {c.name: c.value for c in result.checks}
    assert 3.3 < values["gpt2_medium_flash_hbm_gb"] < 5.5


def test_io_complexity_can_be_contradicted(tmp_path):
    # sweeping M only where one block already holds every key, the traffic stops
    # falling as 1/M: the Theorem-2 trend check must fail
    result = run_inline("flash-attention/io-complexity", run_dir=tmp_path, n=256,
                        m_values=[65536, 131072, 262144], d_values=[32, 64], n_values=[256, 512])
    failed = {c.name for c in result.checks if not c.passed}
    assert result.verdict == "contradicted" and "flash_bytes_exponent_in_M" in failed


def test_speed_smoke_states_a_cpu_only_check(tmp_path):
    result = run_inline("flash-attention/speed", run_dir=tmp_path, impls=["sdpa", "naive"], ns=[2048])
    (check,) = result.checks
    assert check.name == "cpu_sdpa_over_naive"
    assert result.verdict == ("supported" if check.value >= 1.5 else "contradicted")
    assert "| 64 | no | 2048 | fwd |" in (tmp_path / "speed.md").read_text()
    assert (tmp_path / "speed.png").stat().st_size > 1000


def test_smoke_run_without_triton_skips_the_kernel(tmp_path, monkeypatch):
    import repro.attention.api as api

    monkeypatch.setattr(api, "triton_available", lambda: False)
    result = run_inline("flash-attention/exact", run_dir=tmp_path, impls=["tiled", "triton"], pairs=["40x50"],
                        head_dims=[32], dtypes=["float32"])
    assert result.verdict == "supported"
    assert "not installed" in result.summary
    assert all(c.name.startswith("tiled") for c in result.checks)


def _fake_rows(triton_fwd: float, triton_bwd: float):
    rows = []
    for n in (1024, 4096, 8192):
        for causal in (False, True):
            for impl, fwd, bwd in (("triton", triton_fwd, triton_bwd), ("sdpa-flash", 400.0, 300.0), ("naive", 50.0, 40.0)):
                for mode, value in (("fwd", fwd), ("bwd", bwd)):
                    rows.append(dict(impl=impl, n=n, d=128, causal=causal, mode=mode, tflops=value, seconds=1.0,
                                     batch=1, heads=16))
    return rows


@pytest.mark.parametrize("fwd,bwd,verdict", [(380.0, 250.0, "supported"), (300.0, 250.0, "contradicted"),
                                             (380.0, 150.0, "contradicted")])
def test_speed_gpu_targets_judged_from_the_table(fwd, bwd, verdict):
    """The GPU branch (not runnable here) judged on a synthetic table: 0.9x forward and
    0.7x backward of the flash backend at N >= 4k, d = 128."""
    from repro.attention.experiments import _speed_checks
    from repro.attention.speed import markdown_table
    from repro.registry import RunContext

    params = dict(get("flash-attention/speed").resolve_params("full"))
    params["modes"] = ["fwd", "bwd"]
    ctx = RunContext(params, preset="full", device="cuda")
    rows = _fake_rows(fwd, bwd)
    result = _speed_checks(ctx, rows, params, ["triton", "sdpa-flash", "naive"], "cuda", 800.0)
    assert result.verdict == verdict
    assert len(result.checks) == 4  # fwd and bwd, causal and not
    table = markdown_table(rows, 800.0)
    assert "| 128 | yes | 8192 | fwd |" in table and "% of matmul" in table
