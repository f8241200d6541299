"""Benchmark of the attention implementations (issue 5).

CPU section (always): wall time and peak extra memory of tiled, naive and sdpa, forward,
d = 64, one sequence of one head, torch on one thread. Target: tiled needs >= 20x less
peak extra memory than naive at N = 16k.

GPU section (only when CUDA is present): forward, backward and forward+backward TFLOP/s
of the Triton kernel, torch's sdpa pinned to its flash backend and the naive algorithm,
N = 1k..16k, d = 64 and 128, causal and not, bf16, plus the bf16 matmul rate measured
in the same run. Targets on an H100: triton forward >= 0.9x the flash backend at
N = 4k-16k, d = 128 (aim >= 1.0x and >= 50% of the matmul rate), backward >= 0.7x.

    .venv/bin/python bench/attention.py            # CPU (+ GPU when present)
    .venv/bin/python bench/attention.py --quick    # N up to 4k on CPU, fewer GPU sizes
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--gpu-only", action="store_true")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (median)")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args(argv)

    import torch

    parts = [f"# Attention benchmark, {datetime.date.today().isoformat()}"]
    verdicts: list[str] = []
    if not args.gpu_only:
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
