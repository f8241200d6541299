"""Peak extra memory of one attention call (the linear-memory claim, paper Section 3.1).

On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
what was allocated before the call; this is the caching allocator's exact count of
bytes held by live tensors.

On the CPU torch keeps no such statistics, and the profiler's ``profile_memory`` reports
allocations per operator rather than a process-wide high-water mark. So the call runs
in a fresh Python process (one per implementation, sequence lengths in increasing
order) and we read the kernel's resident-set high-water mark
(``VmHWM`` in /proc/self/status), reset just before the call through
/proc/self/clear_refs, minus the resident set just before the call (inputs already
built, one warm-up call done so thread pools and lazy initialisation are not counted).
``MALLOC_MMAP_THRESHOLD_`` is fixed at 64 KiB in that process so glibc serves every
large buffer by mmap and gives it back on free: the resident set then follows the live
tensors instead of a heap that keeps freed pages, and the high-water mark is exact (not
sampled). What it cannot see is memory below 64 KiB kept by malloc, which is noise at
the megabyte scale measured here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _run_call(
    impl: str,
    n: int,
    d: int,
    batch: int,
    heads: int,
    causal: bool,
    backward: bool,
    device: str,
    dtype: str,
    block: int | None = None,
) -> None:
    import torch

    from .api import flash_attention
    from .tiled import tiled_attention

    attention: Callable[..., Any] = flash_attention
    if impl == "tiled" and block:  # the tiled algorithm with Br = Bc = block

        def tiled_blocks(q, k, v, causal, impl):
            return tiled_attention(q, k, v, causal, block_q=block, block_k=block)

        attention = tiled_blocks

    dt = getattr(torch, dtype)
    q, k, v, dout = (torch.randn(batch, heads, n, d, device=device, dtype=dt) for _ in range(4))
    if backward:
        for t in (q, k, v):
            t.requires_grad_(True)
        out = attention(q, k, v, causal, impl=impl)
        out.backward(dout)
    else:
        with torch.no_grad():
            attention(q, k, v, causal, impl=impl)


def _input_bytes(args: dict, elem: int) -> int:
    # the call allocates its own inputs (and their gradients): they are not "extra"
    one = args["batch"] * args["heads"] * args["n"] * args["d"] * elem
    return 4 * one + (3 * one if args["backward"] else 0)


def _child(args: dict, ns: list[int]) -> list[int]:
    """Body of the measuring process (CPU): peak extra bytes for each N in ``ns``."""
    import gc

    import torch

    torch.set_num_threads(1)
    _run_call(**dict(args, n=256))  # warm-up: thread pools, lazy imports, first-call allocations
    elem = torch.finfo(getattr(torch, args["dtype"])).bits // 8
    out = []
    for n in ns:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark to the current resident set
        before = _status_kib("VmRSS")
        _run_call(**dict(args, n=n))
        peak = _status_kib("VmHWM")
        out.append(max(0, (peak - before) * 1024 - _input_bytes(dict(args, n=n), elem)))
    return out


def peak_extra_memory_sweep(
    impl: str,
    ns: list[int],
    d: int = 64,
    *,
    batch: int = 1,
    heads: int = 1,
    causal: bool = False,
    backward: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    block: int | None = None,
    timeout: float = 900,
) -> list[int]:
    """Peak bytes one attention call needs beyond its inputs (and their gradients), for
    each sequence length in ``ns``. ``block`` sets the tiled algorithm's block sizes."""
    args: dict[str, Any] = dict(
        impl=impl,
        n=0,
        d=d,
        batch=batch,
        heads=heads,
        causal=causal,
        backward=backward,
        device=device,
        dtype=dtype,
        block=block,
    )
    if device.startswith("cuda"):
        import torch

        elem = torch.finfo(getattr(torch, dtype)).bits // 8
        out = []
        for n in ns:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            _run_call(**dict(args, n=n))
            torch.cuda.synchronize()
            out.append(max(0, torch.cuda.max_memory_allocated() - base - _input_bytes(dict(args, n=n), elem)))
        return out
    code = (
        "import json, sys; from repro.attention.memory import _child; "
        "print(json.dumps(_child(json.loads(sys.argv[1]), json.loads(sys.argv[2]))))"
    )
    env = dict(os.environ, **CHILD_ENV)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args), json.dumps(sorted(ns))],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"memory measurement of {impl} failed: {tail[0]}")
    by_n = dict(zip(sorted(ns), json.loads(proc.stdout.strip().splitlines()[-1])))
    return [by_n[n] for n in ns]


def peak_extra_memory(impl: str, n: int, d: int = 64, **kwargs) -> int:
    """Peak extra bytes of one call at sequence length ``n`` (see the module docstring)."""
    return peak_extra_memory_sweep(impl, [n], d, **kwargs)[0]
