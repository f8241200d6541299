"""Benchmark of the attention implementations (issues 5 and 15).

CPU section (always): wall time and peak extra memory of tiled, naive and sdpa, forward,
d = 64, one sequence of one head, torch on one thread. Target: tiled needs >= 20x less
peak extra memory than naive at N = 16k.

GPU section (only when CUDA is present): forward, backward and forward+backward TFLOP/s
of the Triton kernel, torch's sdpa pinned to its flash backend and the naive algorithm,
N = 1k..16k, d = 64 and 128, causal and not, bf16, plus the bf16 matmul rate measured
in the same run. Targets on an H100: triton forward >= 0.9x the flash backend at
N = 4k-16k, d = 128 (aim >= 1.0x and >= 50% of the matmul rate), backward >= 0.7x. Also on
the GPU: block-sparse forward+backward time against the fraction of non-zero blocks
(target: exponent 1 +- 0.2), and decoding (one query against a long KV cache) through
split-KV flash-decoding, the Triton forward kernel and torch's sdpa.

Compile section (``--compile``, no GPU needed): every kernel built as the JIT specialises
it for sm_90a and sm_80 at d = 64/128, fp16/bf16, causal or not: registers, stack
(spill) bytes and shared memory. Target: no spill, <= 255 registers.

    .venv/bin/python bench/attention.py            # CPU (+ GPU when present)
    .venv/bin/python bench/attention.py --quick    # N up to 4k on CPU, fewer GPU sizes
    .venv/bin/python bench/attention.py --compile-only --out /tmp/compile.md
    .venv/bin/python bench/attention.py --gpu-only --out bench/results/attention_gpu.md

Prints markdown tables; ``--out`` also writes them to a file.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repro.environment import cpu_model  # noqa: E402



def cpu_section(ns: list[int], d: int, reps: int) -> tuple[str, list[str]]:
    import os

    import torch

    from repro.attention.memory import peak_extra_memory_sweep
    from repro.attention.speed import time_attention

    impls = ["tiled", "naive", "sdpa"]
    memory = {impl: peak_extra_memory_sweep(impl, ns, d) for impl in impls}
    torch.set_num_threads(1)
    lines = [f"CPU: {os.cpu_count()}-core {cpu_model()}, torch {torch.__version__}, one torch thread, fp32, "
             f"batch 1, 1 head, d = {d}, forward", "",
             "| N | impl | time (ms) | peak extra memory (MiB) | naive / impl memory |", "|---|---|---|---|---|"]
    verdicts = []
    for i, n in enumerate(ns):
        for impl in impls:
            sec = time_attention(impl, 1, 1, n, d, False, torch.float32, "cpu", "fwd", reps=reps)
            mem = memory[impl][i]
            ratio = memory["naive"][i] / max(mem, 1)
            lines.append(f"| {n} | {impl} | {sec * 1e3:.1f} | {mem / 2**20:.2f} | {ratio:.1f}x |")
            print(lines[-1], flush=True)
        if n == max(ns):
            ratio = memory["naive"][i] / max(memory["tiled"][i], 1)
            target = "met" if ratio >= 20 else "MISSED"
            verdicts.append(f"target tiled >= 20x less peak extra memory than naive at N = {n}: {ratio:.0f}x ({target})")
    return "\n".join(lines), verdicts


def gpu_section(ns: list[int], reps: int) -> tuple[str, list[str]]:
    import torch

    from repro.attention.api import triton_available
    from repro.attention.speed import markdown_table, matmul_tflops, speed_table

    name = torch.cuda.get_device_name()
    matmul = matmul_tflops("cuda", torch.bfloat16, size=8192)
    impls = (["triton"] if triton_available() else []) + ["sdpa-flash", "naive"]
    rows = speed_table(impls, ns, [64, 128], [False, True], 16384, lambda d: 2048 // d, torch.bfloat16, "cuda",
                       modes=("fwd", "bwd", "fwd_bwd"), reps=reps)
    text = (f"GPU: {name}, torch {torch.__version__}, bf16, batch = 16384 / N, heads = 2048 / d; "
            f"measured bf16 matmul rate {matmul:.0f} TFLOP/s (8192^3)\n\n" + markdown_table(rows, matmul))
    verdicts = []
    if "triton" in impls:
        def rate(impl, n, causal, mode):
            return next(r["tflops"] for r in rows
                        if (r["impl"], r["n"], r["d"], r["causal"], r["mode"]) == (impl, n, 128, causal, mode))

        big = [n for n in ns if n >= 4096]
        for causal in (False, True):
            for mode, target in (("fwd", 0.9), ("bwd", 0.7)):
                if not big:
                    continue
                ratio = min(rate("triton", n, causal, mode) / rate("sdpa-flash", n, causal, mode) for n in big)
                verdicts.append(f"target triton {mode} >= {target}x flash backend, d=128, causal={causal}, "
                                f"N=4k-16k: worst {ratio:.2f}x ({'met' if ratio >= target else 'MISSED'})")
            if big:
                share = max(rate("triton", n, causal, "fwd") for n in big) / matmul
                verdicts.append(f"aim triton fwd >= 50% of the matmul rate, causal={causal}: best {100 * share:.0f}%")
    else:
        verdicts.append("triton is not installed: kernel not timed")
    return text, verdicts


def block_sparse_section(n: int, reps: int) -> tuple[str, list[str]]:
    import torch

    from repro.attention import flash_attention
    from repro.attention.io_model import random_block_mask
    from repro.attention.speed import time_call

    dens = [0.125, 0.25, 0.5, 1.0]
    gen = torch.Generator().manual_seed(0)
    q, k, v, do = (torch.randn(4, 16, n, 64, generator=gen).to("cuda", torch.bfloat16).requires_grad_()
                   for _ in range(4))
    lines = [f"Block-sparse Triton kernel, bf16, batch 4, 16 heads, N = {n}, d = 64, block 128, fwd + bwd", "",
             "| density | ms | dense / sparse |", "|---|---|---|"]
    times = []
    for s_ in dens:
        mask = random_block_mask(n // 128, n // 128, s_, 0).cuda()

        def step():
            flash_attention(q, k, v, block_mask=mask, block_size=128, impl="triton").backward(do)

        times.append(time_call(step, "cuda", warmup=2, reps=reps))
    for s_, t in zip(dens, times):
        lines.append(f"| {s_} | {t * 1e3:.2f} | {times[-1] / t:.2f}x |")
    import math

    lx = [math.log(x) for x in dens]
    ly = [math.log(t) for t in times]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)
    verdict = "met" if 0.8 <= slope <= 1.2 else "MISSED"
    return "\n".join(lines), [f"target block-sparse time exponent in density 1 +- 0.2: {slope:.2f} ({verdict})"]


def decode_section(reps: int) -> tuple[str, list[str]]:
    import torch

    from repro.attention import flash_attention
    from repro.attention.speed import time_call

    lines = ["Decoding: 1 query per head against a KV cache, bf16, d = 128, 32 query heads / 8 KV heads", "",
             "| batch | KV length | split-kv (us) | triton (us) | sdpa (us) | sdpa / split-kv |", "|---|---|---|---|---|---|"]
    verdicts = []
    for batch, n_k in ((1, 4096), (1, 16384), (8, 4096), (1, 65536)):
        q = torch.randn(batch, 32, 1, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(batch, 8, n_k, 128, device="cuda", dtype=torch.bfloat16)
        with torch.no_grad():
            t = {impl: time_call(lambda: flash_attention(q, k, k, causal=True, impl=impl), "cuda", warmup=3,
                                 reps=reps) for impl in ("split-kv", "triton", "sdpa")}
        lines.append(f"| {batch} | {n_k} | {t['split-kv'] * 1e6:.1f} | {t['triton'] * 1e6:.1f} | "
                     f"{t['sdpa'] * 1e6:.1f} | {t['sdpa'] / t['split-kv']:.2f}x |")
        if batch == 1 and n_k == 16384:
            verdicts.append(f"split-kv decoding at batch 1, 16k keys: {t['triton'] / t['split-kv']:.1f}x the "
                            f"one-program-per-head Triton forward, {t['sdpa'] / t['split-kv']:.2f}x sdpa")
    return "\n".join(lines), verdicts


def compile_section() -> tuple[str, list[str]]:
    """Every kernel compiled for sm_90a and sm_80 in a child process (triton must not be
    in interpreter mode)."""
    import json
    import os
    import subprocess

    from repro.attention.compile_check import markdown_table

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1", PYTHONPATH=str(root))
    rows = []
    for arch in (90, 80):
        out = subprocess.run([sys.executable, "-m", "repro.attention.compile_check", "--arch", str(arch)],
                             capture_output=True, text=True, env=env, cwd=root, check=True).stdout
        rows += [json.loads(x[4:]) for x in out.splitlines() if x.startswith("ROW ")]
    import triton

    bad = [r for r in rows if r["spills"] or r["registers"] > 255]
    wide = [r for r in rows if r["i32_stride_products"]]
    text = (f"Triton {triton.__version__}, bundled ptxas; kernels bound by Triton's own JIT binder (stride 1 constant, "
            "divisibility 16), fallback tile configuration (first of the pruned autotuning space); registers per "
            "thread and stack frame from the cubin's .nv.info, shared memory from the compiled metadata.\n\n"
            + markdown_table(rows))
    verdicts = [f"compile: {len(rows)} kernels, {len(bad)} with a spill or > 255 registers "
                f"({'met' if not bad else 'MISSED'}); {len(wide)} with a 32-bit batch/head stride product"]
    return text, verdicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--gpu-only", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also compile every kernel for sm_90a/sm_80 (no GPU)")
    ap.add_argument("--compile-only", action="store_true", help="only the compile section")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (median)")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args(argv)

    import torch

    parts = [f"# Attention benchmark, {datetime.date.today().isoformat()}"]
    verdicts: list[str] = []
    if args.compile_only:
        args.compile = args.cpu_only = True
    if args.compile:
        text, v = compile_section()
        parts += ["## Compiled for sm_90a and sm_80 (no GPU)", text]
        verdicts += v
    if not args.gpu_only and not args.compile_only:
        ns = [1024, 4096] if args.quick else [1024, 2048, 4096, 8192, 16384]
        text, v = cpu_section(ns, 64, args.reps or (2 if args.quick else 3))
        parts += ["## CPU", text]
        verdicts += v
    if not args.cpu_only:
        if torch.cuda.is_available():
            ns = [1024, 4096] if args.quick else [1024, 2048, 4096, 8192, 16384]
            text, v = gpu_section(ns, args.reps or 10)
            parts += ["## GPU", text]
            verdicts += v
            text, v = block_sparse_section(4096 if args.quick else 16384, args.reps or 10)
            parts += ["## GPU: block-sparse", text]
            verdicts += v
            text, v = decode_section(args.reps or 20)
            parts += ["## GPU: decoding", text]
            verdicts += v
        else:
            parts += ["## GPU", "No CUDA device: GPU section not run."]
    parts += ["## Targets", "\n".join(f"- {v}" for v in verdicts) or "- none evaluated"]
    report = "\n\n".join(parts) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
