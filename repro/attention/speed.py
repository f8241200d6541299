"""Timing attention implementations (paper Section 4.1-4.2; FlashAttention-2 Section 4.1).

FLOPs follow flash-attention's benchmark convention: a forward pass does
4·B·H·Nq·Nk·d (two matmuls of 2·Nq·Nk·d each), halved when causal; the backward does
2.5 times the forward (five matmuls instead of two); forward+backward 3.5 times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from .api import flash_attention


def attention_flops(batch: int, heads: int, n_q: int, n_k: int, d: int, causal: bool, mode: str = "fwd") -> float:
    fwd = 4.0 * batch * heads * n_q * n_k * d * (0.5 if causal else 1.0)
    return fwd * {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}[mode]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(
    fn: Callable[[], object], device: str = "cpu", warmup: int = 1, reps: int = 3, min_time: float = 0.0
) -> float:
    """Median wall seconds of ``fn()`` over ``reps`` runs (more if ``min_time`` demands)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start_all < min_time:
        if device.startswith("cuda"):
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(begin.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if len(times) >= 1000:
            break
    return statistics.median(times)


@contextmanager
def sdpa_backend(name: str | None):
    """Pin torch's sdpa to one backend ("flash", "efficient", "math"); None: torch's choice."""
    if name is None:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    with sdpa_kernel(backend):
        yield


def time_attention(
    impl: str,
    batch: int,
    heads: int,
    n: int,
    d: int,
    causal: bool,
    dtype: torch.dtype,
    device: str,
    mode: str = "fwd",
    reps: int = 3,
    sdpa_with: str | None = None,
    seed: int = 0,
) -> float:
    """Median seconds of one forward ("fwd"), backward ("bwd") or both ("fwd_bwd")."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    q, k, v, dout = (torch.randn(batch, heads, n, d, generator=gen).to(device=device, dtype=dtype) for _ in range(4))
    with sdpa_backend(sdpa_with if impl == "sdpa" else None):
        if mode == "fwd":
            with torch.no_grad():
                return time_call(lambda: flash_attention(q, k, v, causal, impl=impl), device, reps=reps)
        for t in (q, k, v):
            t.requires_grad_(True)
        if mode == "fwd_bwd":

            def step():
                flash_attention(q, k, v, causal, impl=impl).backward(dout)

            return time_call(step, device, reps=reps)
        out = flash_attention(q, k, v, causal, impl=impl)
        return time_call(lambda: out.backward(dout, retain_graph=True), device, reps=reps)


def matmul_tflops(device: str = "cuda", dtype: torch.dtype = torch.bfloat16, size: int = 8192, reps: int = 10) -> float:
    """Measured dense matmul rate (TFLOP/s): the ceiling attention kernels are compared to."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = time_call(lambda: a @ b, device, warmup=3, reps=reps)
    return 2.0 * size**3 / seconds / 1e12


def speed_table(
    impls: list[str],
    ns: list[int],
    head_dims: list[int],
    causals: list[bool],
    batch_tokens: int,
    heads_for_d: Callable[[int], int],
    dtype: torch.dtype,
    device: str,
    modes=("fwd", "fwd_bwd", "bwd"),
    reps: int = 3,
    log=print,
) -> list[dict]:
    """Rows {impl, n, d, causal, mode, seconds, tflops}; batch = batch_tokens // n (at least 1).

    An implementation that runs out of memory at some size gets ``seconds = nan``.
    """
    rows = []
    for d in head_dims:
        heads = heads_for_d(d)
        for causal in causals:
            for n in ns:
                batch = max(1, batch_tokens // n)
                for impl in impls:
                    for mode in modes:
                        name, with_backend = (impl, None)
                        if impl.startswith("sdpa-"):
                            name, with_backend = "sdpa", impl.split("-", 1)[1]
                        try:
                            sec = time_attention(
                                name, batch, heads, n, d, causal, dtype, device, mode, reps, sdpa_with=with_backend
                            )
                        except torch.OutOfMemoryError:
                            sec = float("nan")
                        finally:
                            if device.startswith("cuda"):
                                torch.cuda.empty_cache()
                        flops = attention_flops(batch, heads, n, n, d, causal, mode)
                        row = dict(
                            impl=impl,
                            n=n,
                            d=d,
                            causal=causal,
                            mode=mode,
                            batch=batch,
                            heads=heads,
                            seconds=sec,
                            tflops=flops / sec / 1e12,
                        )
                        rows.append(row)
                        log(
                            f"{impl:>10} N={n:>6} d={d:>3} causal={int(causal)} {mode:>7}: "
                            f"{sec * 1e3:9.3f} ms {row['tflops']:8.2f} TFLOP/s"
                        )
    return rows


def markdown_table(rows: list[dict], matmul: float | None = None) -> str:
    """One line per (d, causal, N, mode): TFLOP/s of every implementation, and the
    first implementation's share of the matmul rate."""
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    head = "| d | causal | N | pass | " + " | ".join(f"{i} TFLOP/s" for i in impls)
    head += f" | {impls[0]} / {impls[1]} |" if len(impls) > 1 else " |"
    if matmul:
        head += f" {impls[0]} % of matmul ({matmul:.0f} TFLOP/s) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    keys = list(dict.fromkeys((r["d"], r["causal"], r["n"], r["mode"]) for r in rows))
    for key in keys:
        by = {r["impl"]: r for r in rows if (r["d"], r["causal"], r["n"], r["mode"]) == key}
        cells = [f"{by[i]['tflops']:.3g}" if i in by else "-" for i in impls]
        line = f"| {key[0]} | {'yes' if key[1] else 'no'} | {key[2]} | {key[3]} | " + " | ".join(cells)
        if len(impls) > 1:
            a, b = by.get(impls[0]), by.get(impls[1])
            line += f" | {a['tflops'] / b['tflops']:.2f}x" if a and b else " | -"
        line += " |"
        if matmul:
            line += f" {100 * by[impls[0]]['tflops'] / matmul:.0f}% |" if impls[0] in by else " - |"
        lines.append(line)
    return "\n".join(lines)
