"""Experiments behind the FlashAttention note's claims (Dao et al. 2022).

* ``flash-attention/exact``: the tiled and Triton implementations are exact attention,
  by flash-attention's own rule (errors within 2x / 3x of same-dtype PyTorch's).
* ``flash-attention/linear-memory``: their extra memory grows linearly in N, the standard
  algorithm's quadratically (Section 3.1, Figure 3 right).
* ``flash-attention/io-complexity``: the HBM traffic of Algorithm 1 is Θ(N²d²/M) against
  the standard Θ(Nd + N²) (Theorem 2, Figure 2 left).
* ``flash-attention/speed``: the fused kernel against torch's flash backend and the
  standard algorithm (Section 4; the full preset needs CUDA).

This module must stay importable without torch (``paperkb experiments`` lists ids).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from repro.registry import Param, Preset, Requirements, experiment
from repro.threads import torch_threads

_HEAD_CYCLE = ((4, 4), (4, 2), (4, 1))  # MHA, GQA, MQA


def _slope(xs, ys) -> float:
    """Least-squares slope of log(y) against log(x)."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(max(y, 1e-30)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def _pairs(items) -> list[tuple[int, int]]:
    out = []
    for item in items:
        a, _, b = str(item).partition("x")
        out.append((int(a), int(b or a)))
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------
# exactness
# --------------------------------------------------------------------------------------
def _exactness_json(spec: dict) -> list[dict]:
    """Run the correctness rule on every case of ``spec``; JSON-ready reports. Runs in
    this process, or in a child with TRITON_INTERPRET=1 for the kernel on the CPU."""
    kernels = None
    if spec["impl"] == "triton":
        from .api import load_triton_kernels

        kernels = load_triton_kernels()
        kernels.POISON_OUTPUTS = True  # an unwritten element becomes NaN and fails
    try:
        with torch_threads(1 if spec["device"] == "cpu" else 0):
            return _exactness_cases(spec)
    finally:
        if kernels is not None:
            kernels.POISON_OUTPUTS = False


def _exactness_cases(spec: dict) -> list[dict]:
    import torch

    from .api import flash_attention
    from .exactness import compare, random_inputs

    dtype = getattr(torch, spec["dtype"])
    reports = []
    n_case = 0
    for n_q, n_k in _pairs(spec["pairs"]):
        for d in spec["head_dims"]:
            for causal in (False, True):
                heads, heads_kv = _HEAD_CYCLE[n_case % 3]
                n_case += 1
                seed = spec["seed"] * 100003 + n_case
                q, k, v, dout = random_inputs(spec["batch"], heads, heads_kv, n_q, n_k, d, dtype, seed,
                                              device=spec["device"])
                rep = compare(lambda a, b, c, m: flash_attention(a, b, c, m, impl=spec["impl"]), q, k, v, dout, causal)
                reports.append({
                    "case": f"{n_q}x{n_k} d={d} H={heads}/{heads_kv} causal={int(causal)}",
                    "impl": rep.impl, "torch": rep.torch, "bound": {n: rep.bound(n) for n in rep.impl},
                    "relative": {n: rep.relative(n) for n in rep.impl},
                })
    return reports


def _exactness_reports(spec: dict, interpret: bool) -> list[dict]:
    if not interpret:
        return _exactness_json(spec)
    code = ("import json, sys; from repro.attention.experiments import _exactness_json; "
            "print(json.dumps(_exactness_json(json.loads(sys.argv[1]))))")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                          env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError("triton exactness run failed: " + proc.stderr.strip()[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


@experiment(
    "flash-attention/exact",
    "tiled (Algorithms 1/4) and Triton attention match an fp32 reference as closely as same-dtype PyTorch does",
    params=[
        Param("impls", list, ["tiled", "triton"], "implementations to judge"),
        Param("dtypes", list, ["float32", "bfloat16"], "input dtypes"),
        Param("pairs", list, ["113x203", "203x113", "1023x1024"], "NqxNk sequence pairs"),
        Param("head_dims", list, [40, 128], "head dimensions"),
        Param("triton_cpu_pairs", list, ["17x33", "33x17"], "pairs for the kernel in Triton's CPU interpreter"),
        Param("triton_cpu_dtypes", list, ["float32", "float16"], "dtypes for the interpreter (it cannot do bf16)"),
        Param("triton_cpu_head_dims", list, [32, 40], "head dims for the interpreter"),
        Param("batch", int, 1, "batch size"),
    ],
    presets={
        "smoke": Preset(description="CPU; the Triton kernel runs in the interpreter at tiny shapes"),
        "full": Preset(
            params={"dtypes": ["bfloat16", "float16"], "head_dims": [32, 40, 64, 96, 128], "batch": 2,
                    "pairs": ["113x203", "128x217", "203x113", "1023x1024", "1024x1023", "2048x2048"]},
            requires=Requirements(device="cuda", triton=True),
            description="H100-class GPU, flash-attention's test matrix in bf16 and fp16",
            timeout_s=1800,
        ),
    },
)
def exact(ctx):
    import torch

    from .api import triton_available

    p = ctx.params
    device = "cuda" if ctx.device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    notes = []
    for impl in p["impls"]:
        interpret = impl == "triton" and device == "cpu"
        if impl == "triton" and not triton_available():
            notes.append("triton is not installed: the kernel was not judged")
            ctx.log("triton is not installed; skipping the kernel")
            continue
        dtypes = p["triton_cpu_dtypes"] if interpret else p["dtypes"]
        pairs = p["triton_cpu_pairs"] if interpret else p["pairs"]
        head_dims = p["triton_cpu_head_dims"] if interpret else p["head_dims"]
        for dtype in dtypes:
            spec = dict(impl=impl, dtype=str(dtype), pairs=[str(x) for x in pairs], head_dims=[int(x) for x in head_dims],
                        batch=p["batch"], device=device, seed=ctx.seed)
            reports = _exactness_reports(spec, interpret)
            tag = f"{impl}_{dtype}"
            worst = 0.0
            for name in ("out", "dq", "dk", "dv"):
                errs = [r["impl"][name] for r in reports]
                rel = [r["relative"][name] for r in reports]
                frac = [r["impl"][name] / r["bound"][name] if r["bound"][name] > 0 else float("inf") for r in reports]
                frac = [f if f == f else float("inf") for f in frac]  # NaN (unwritten output) fails
                ctx.log_metric(f"{tag}_{name}_max_abs_err", max(errs))
                ctx.log_metric(f"{tag}_{name}_max_rel_err", max(rel))
                ctx.log_metric(f"{tag}_{name}_torch_max_abs_err", max(r["torch"][name] for r in reports))
                worst = max(worst, max(frac))
            ctx.log(f"{tag}: {len(reports)} cases, worst error / allowed = {worst:.3f}"
                    + (" (Triton CPU interpreter)" if interpret else ""))
            ctx.check(f"{tag}_worst_error_over_bound", worst, "<=", 1.0,
                      f"{impl} in {dtype} over {len(reports)} cases: error <= 2x (output) / 3x (gradients) "
                      "the same-dtype PyTorch error against a higher-precision reference")
    return ctx.result("; ".join(notes))


# --------------------------------------------------------------------------------------
# linear memory
# --------------------------------------------------------------------------------------
@experiment(
    "flash-attention/linear-memory",
    "peak extra memory of tiled attention grows ~N, the standard algorithm's ~N^2",
    params=[
        Param("ns", list, [1024, 2048, 4096, 8192],
              "sequence lengths (on the CPU keep N >= 1k: below, the extra memory is under 0.5 MiB and "
              "malloc's granularity blurs the fit)"),
        Param("d", int, 64, "head dimension"),
        Param("impls", list, ["tiled", "naive"], "implementations; naive is the quadratic baseline"),
        Param("batch", int, 1, "batch size"),
        Param("heads", int, 1, "heads"),
        Param("backward", bool, False, "measure forward + backward instead of forward"),
        Param("dtype", str, "float32", "input dtype", choices=("float32", "float16", "bfloat16")),
        Param("tiled_block", int, 128, "block sizes Br = Bc of the tiled algorithm"),
    ],
    presets={
        "smoke": Preset(description="CPU, forward, N = 1k to 8k (a fresh process per implementation)"),
        "full": Preset(
            params={"ns": [1024, 2048, 4096, 8192, 16384], "impls": ["tiled", "triton", "naive"], "heads": 8,
                    "backward": True, "dtype": "bfloat16"},
            requires=Requirements(device="cuda", triton=True, min_gpu_memory_gb=40),
            description="GPU, forward + backward, N = 1k to 16k",
        ),
    },
)
def linear_memory(ctx):
    import torch

    from .memory import peak_extra_memory_sweep

    p = ctx.params
    device = "cuda" if ctx.device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    ns = [int(n) for n in p["ns"]]
    impls = [str(i) for i in p["impls"]]
    measured: dict[str, list[int]] = {}
    for impl in impls:
        measured[impl] = peak_extra_memory_sweep(impl, ns, p["d"], batch=p["batch"], heads=p["heads"],
                                                 backward=p["backward"], device=device, dtype=p["dtype"],
                                                 block=p["tiled_block"])
        for n, extra in zip(ns, measured[impl]):
            ctx.log_metric(f"{impl}_peak_extra_mib", extra / 2**20, step=n)
            ctx.log(f"{impl:>6} N={n:>6}: {extra / 2**20:10.2f} MiB extra")

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for impl in impls:
        slope = _slope(ns, measured[impl])
        ax.loglog(ns, [m / 2**20 for m in measured[impl]], "o-", label=f"{impl} (exponent {slope:.2f})")
    ax.set_xlabel("sequence length N")
    ax.set_ylabel("peak extra memory (MiB)")
    ax.set_title(f"Attention memory, d={p['d']}, {'fwd+bwd' if p['backward'] else 'fwd'}, {device}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ctx.artifact_path("linear_memory.png"), dpi=120)
    plt.close(fig)

    for impl in impls:
        slope = _slope(ns, measured[impl])
        ctx.log_metric(f"{impl}_memory_exponent", slope)
        if impl == "naive":
            ctx.check("naive_memory_exponent", slope, ">", 1.7,
                      "the standard algorithm materialises N x N matrices: exponent about 2")
        else:
            ctx.check(f"{impl}_memory_exponent", slope, "<", 1.3, f"{impl} needs memory linear in N: exponent about 1")
    if "naive" in impls:
        for impl in impls:
            if impl != "naive":
                ratio = measured["naive"][-1] / max(measured[impl][-1], 1)
                ctx.log_metric(f"naive_over_{impl}_at_max_n", ratio)
                ctx.check(f"naive_over_{impl}_at_N{ns[-1]}", ratio, ">=", 20.0,
                          f"{impl} needs at least 20x less extra memory than naive at the largest N")
    return ctx.result()


# --------------------------------------------------------------------------------------
# IO complexity
# --------------------------------------------------------------------------------------
@experiment(
    "flash-attention/io-complexity",
    "HBM bytes of Algorithm 1 fall as N^2 d^2 / M, the standard algorithm's are Θ(Nd + N^2) (Theorem 2)",
    params=[
        Param("n", int, 1024, "sequence length of the SRAM-size and head-dim sweeps"),
        Param("d", int, 64, "head dimension of the SRAM-size and N sweeps"),
        Param("m_values", list, [2048, 4096, 8192, 16384, 32768], "SRAM sizes M (elements) to sweep"),
        Param("d_values", list, [32, 64, 128], "head dims to sweep at M = max(m_values)"),
        Param("n_values", list, [256, 512, 1024, 2048], "sequence lengths to sweep at M = 4096"),
        Param("sram_kib", int, 192, "SRAM of one A100 SM for the GPT-2 medium point (KiB)"),
    ],
    presets={
        "smoke": Preset(description="counted by running the instrumented loops (CPU, seconds)"),
        "full": Preset(params={"n": 4096, "m_values": [4096, 8192, 16384, 32768, 65536, 131072],
                               "n_values": [512, 1024, 2048, 4096, 8192]},
                       description="larger N, CPU"),
    },
)
def io_complexity(ctx):
    import torch

    from .io_model import flash_attention_io, standard_attention_io
    from .naive import naive_attention

    p = ctx.params
    n, d = p["n"], p["d"]
    # 1. the counted loops really compute attention and its gradients
    gen = torch.Generator().manual_seed(ctx.seed)
    q, k, v, do = (torch.randn(150, 32, generator=gen, dtype=torch.float64) for _ in range(4))
    qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = naive_attention(qq[None, None], kk[None, None], vv[None, None])[0, 0]
    grads = dict(zip(("dQ", "dK", "dV"), torch.autograd.grad(out, (qq, kk, vv), do)), O=out.detach())
    err = 0.0
    for run in (flash_attention_io(150, 32, 512, q=q, k=k, v=v, do=do, backward=True)[1],
                standard_attention_io(150, 32, q=q, k=k, v=v, do=do, backward=True)[1]):
        err = max(err, max((run[name] - grads[name]).abs().max().item() for name in grads))
    ctx.log_metric("counted_algorithms_max_abs_err", err)
    ctx.check("counted_algorithms_max_abs_err", err, "<", 1e-9,
              "the loops whose traffic is counted compute attention and its gradients exactly (fp64)")

    def flash_bytes(n_, d_, m_):
        return flash_attention_io(n_, d_, m_, backward=True)[0].total_bytes

    def standard_bytes(n_, d_):
        return standard_attention_io(n_, d_, backward=True)[0].total_bytes

    # 2. the sweep over SRAM size M
    ms = [int(m) for m in p["m_values"]]
    fl = [flash_bytes(n, d, m) for m in ms]
    std = standard_bytes(n, d)
    for m, b in zip(ms, fl):
        ctx.log_metric("flash_hbm_mib_vs_M", b / 2**20, step=m)
    ctx.log_metric("standard_hbm_mib", std / 2**20)
    slope_m = _slope(ms, fl)
    ctx.log_metric("flash_bytes_exponent_in_M", slope_m)
    ctx.check("flash_bytes_exponent_in_M", slope_m, "between", (-1.1, -0.85), "HBM traffic falls as 1/M")
    # 3. head dim and sequence length
    ds = [int(x) for x in p["d_values"]]
    slope_d = _slope(ds, [flash_bytes(n, x, ms[-1]) for x in ds])
    slope_d_std = _slope(ds, [standard_bytes(n, x) for x in ds])
    ctx.log_metric("flash_bytes_exponent_in_d", slope_d)
    ctx.log_metric("standard_bytes_exponent_in_d", slope_d_std)
    ctx.check("flash_bytes_exponent_in_d", slope_d, "between", (1.7, 2.2), "HBM traffic grows as d^2")
    ns = [int(x) for x in p["n_values"]]
    slope_n = _slope(ns, [flash_bytes(x, d, 4096) for x in ns])
    ctx.log_metric("flash_bytes_exponent_in_N", slope_n)
    ctx.check("flash_bytes_exponent_in_N", slope_n, "between", (1.8, 2.2), "HBM traffic grows as N^2")
    # 4. the paper's Figure 2 (left): GPT-2 medium, N = 1024, d = 64, 16 heads, batch 64, fp16
    heads_total = 16 * 64
    m_paper = p["sram_kib"] * 1024 // 2  # fp16 elements
    flash_gb = flash_attention_io(1024, 64, m_paper, backward=True)[0].total_bytes * heads_total / 1e9
    std_gb = standard_attention_io(1024, 64, backward=True)[0].total_bytes * heads_total / 1e9
    ctx.log_metric("gpt2_medium_flash_hbm_gb", flash_gb)
    ctx.log_metric("gpt2_medium_standard_hbm_gb", std_gb)
    ctx.check("gpt2_medium_flash_hbm_gb", flash_gb, "between", (3.3, 5.5),
              "within 25% of the paper's 4.4 GB (Figure 2 left, forward + backward)")
    ctx.check("gpt2_medium_standard_over_flash", std_gb / flash_gb, ">=", 4.0,
              "FlashAttention moves several times fewer bytes (paper: 40.3 / 4.4 = 9.2x, with dropout and masking)")

    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bars = left.bar(["Standard", "FlashAttention"], [std_gb, flash_gb], color=["tab:gray", "tab:orange"])
    left.bar_label(bars, fmt="%.1f GB")
    left.set_ylim(0, 1.2 * max(std_gb, flash_gb))
    left.set_ylabel("HBM reads + writes (GB)")
    left.set_title("GPT-2 medium attention, fwd + bwd\n(paper, measured on A100: 40.3 vs 4.4 GB)")
    right.loglog(ms, [b / 2**20 for b in fl], "o-", color="tab:orange", label="FlashAttention (counted)")
    ref = [fl[0] * ms[0] / m / 2**20 for m in ms]
    right.loglog(ms, ref, "--", color="black", label="∝ N²d²/M")
    right.axhline(std / 2**20, color="tab:gray", label="standard Θ(Nd + N²)")
    right.set_xticks(ms, [f"{m // 1024}k" for m in ms])
    right.minorticks_off()
    right.set_xlabel("SRAM size M (elements)")
    right.set_ylabel("HBM reads + writes (MiB)")
    right.set_title(f"one head, N={n}, d={d}, fwd + bwd")
    right.legend()
    fig.tight_layout()
    fig.savefig(ctx.artifact_path("io_complexity.png"), dpi=120)
    plt.close(fig)
    return ctx.result()


# --------------------------------------------------------------------------------------
# speed
# --------------------------------------------------------------------------------------
def _plot_speed(ctx, rows: list[dict], device: str) -> None:
    """TFLOP/s against N, one panel per (head dim, causal), forward pass (or the first
    pass timed), one line per implementation."""
    plt = _plt()
    panels = list(dict.fromkeys((r["d"], r["causal"]) for r in rows))
    mode = "fwd" if any(r["mode"] == "fwd" for r in rows) else rows[0]["mode"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (d, causal) in zip(axes[0], panels):
        for impl in dict.fromkeys(r["impl"] for r in rows):
            pts = [(r["n"], r["tflops"]) for r in rows
                   if (r["impl"], r["d"], r["causal"], r["mode"]) == (impl, d, causal, mode)]
            ax.plot([n for n, _ in pts], [t for _, t in pts], "o-", label=impl)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length N")
        ax.set_ylabel(f"{mode} TFLOP/s")
        ax.set_title(f"d={d}, {'causal' if causal else 'not causal'}, {device}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(ctx.artifact_path("speed.png"), dpi=120)
    plt.close(fig)


@experiment(
    "flash-attention/speed",
    "the fused kernel against torch's flash backend and the standard algorithm (TFLOP/s)",
    params=[
        Param("impls", list, ["sdpa", "naive", "tiled"], "implementations (sdpa-flash pins torch's flash backend)"),
        Param("ns", list, [512, 1024, 2048], "sequence lengths"),
        Param("head_dims", list, [64], "head dimensions"),
        Param("causal", list, [0], "causal settings to time (0, 1)"),
        Param("dtype", str, "float32", "input dtype", choices=("float32", "float16", "bfloat16")),
        Param("batch_tokens", int, 2048, "batch = batch_tokens / N"),
        Param("model_dim", int, 128, "heads = model_dim / d"),
        Param("modes", list, ["fwd"], "passes to time: fwd, bwd, fwd_bwd"),
        Param("reps", int, 3, "timed repetitions (median)"),
    ],
    presets={
        "smoke": Preset(description="CPU, one thread: checks only that torch's fused sdpa kernel beats the "
                                    "standard algorithm; says nothing about GPUs"),
        "full": Preset(
            params={"impls": ["triton", "sdpa-flash", "naive"], "ns": [1024, 2048, 4096, 8192, 16384],
                    "head_dims": [64, 128], "causal": [0, 1], "dtype": "bfloat16", "batch_tokens": 16384,
                    "model_dim": 2048, "modes": ["fwd", "bwd", "fwd_bwd"], "reps": 10},
            requires=Requirements(device="cuda", triton=True, min_gpu_memory_gb=40),
            description="H100/H200, bf16; targets: triton fwd >= 0.9x and bwd >= 0.7x torch's flash backend "
                        "at N = 4k-16k, d = 128",
            timeout_s=1800,
        ),
    },
)
def speed(ctx):
    import torch

    from .speed import markdown_table, matmul_tflops, speed_table

    p = ctx.params
    device = "cuda" if ctx.device.startswith("cuda") and torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, p["dtype"])
    impls = [str(i) for i in p["impls"]]
    with torch_threads(1 if device == "cpu" else 0):
        rows = speed_table(impls, [int(n) for n in p["ns"]], [int(d) for d in p["head_dims"]],
                           [bool(int(c)) for c in p["causal"]], p["batch_tokens"], lambda d: max(1, p["model_dim"] // d),
                           dtype, device, modes=tuple(p["modes"]), reps=p["reps"], log=ctx.log)
        mm = matmul_tflops(device, dtype, size=8192) if device == "cuda" else None
    for r in rows:
        ctx.log_metric(f"{r['impl']}_{r['mode']}_d{r['d']}_causal{int(r['causal'])}_tflops", r["tflops"], step=r["n"])
    table = markdown_table(rows, mm)
    ctx.artifact_path("speed.md").write_text(table + "\n")
    ctx.log(table)
    _plot_speed(ctx, rows, device)

    return _speed_checks(ctx, rows, p, impls, device, mm)


def _speed_checks(ctx, rows: list[dict], p: dict, impls: list[str], device: str, mm: float | None):
    """GPU with the kernel: the issue's targets against torch's flash backend. Otherwise
    (CPU, or no kernel timed): torch's fused sdpa against the standard algorithm."""

    def rate(impl, n, d, causal, mode):
        for r in rows:
            if (r["impl"], r["n"], r["d"], r["causal"], r["mode"]) == (impl, n, d, causal, mode):
                return r["tflops"]
        return float("nan")

    big = [int(n) for n in p["ns"] if int(n) >= 4096]
    base = "sdpa-flash" if "sdpa-flash" in impls else "sdpa"
    if device == "cuda" and "triton" in impls and base in impls and big and 128 in [int(d) for d in p["head_dims"]]:
        ctx.log_metric("matmul_bf16_tflops", mm)
        for causal in [bool(int(c)) for c in p["causal"]]:
            for mode, target in (("fwd", 0.9), ("bwd", 0.7)):
                if mode not in p["modes"]:
                    continue
                ratio = min(rate("triton", n, 128, causal, mode) / rate(base, n, 128, causal, mode) for n in big)
                ctx.log_metric(f"triton_over_flash_{mode}_causal{int(causal)}", ratio)
                ctx.check(f"triton_over_flash_{mode}_d128_causal{int(causal)}", ratio, ">=", target,
                          f"triton {mode} >= {target}x torch's flash backend at N = 4k-16k, d = 128")
            share = max(rate("triton", n, 128, causal, "fwd") for n in big) / mm
            ctx.log_metric(f"triton_fwd_share_of_matmul_causal{int(causal)}", share)
        if ctx.checks:
            return ctx.result(f"{device}: triton against torch's {base} backend")
    fused = base if base in impls else "sdpa"
    n = max(int(x) for x in p["ns"])
    d = int(p["head_dims"][0])
    causal = bool(int(p["causal"][0]))
    mode = p["modes"][0]
    speedup = rate(fused, n, d, causal, mode) / rate("naive", n, d, causal, mode)
    ctx.log_metric(f"{device}_sdpa_over_naive", speedup)
    ctx.check(f"{device}_sdpa_over_naive", speedup, ">=", 1.5,
              f"on the {device} at N={n}, torch's fused attention kernel is >= 1.5x faster than the standard one "
              "(says nothing about the Triton kernel)")
    return ctx.result(f"{device} run without the kernel's targets: the GPU speed claims need the full preset on CUDA")
