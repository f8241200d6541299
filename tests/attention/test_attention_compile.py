"""The Triton kernels compiled for Hopper (sm_90a) and Ampere (sm_80) exactly as the JIT
specialises them (stride 1 constant, divisibility 16), on a CPU: no register spill, no
more than 255 registers, shared memory that fits, and no 32-bit product of a batch or
head stride (an offset that would wrap once a tensor has 2^31 elements).

On sm_90a the forward is built for every (d in {64, 128}, fp16/bf16, causal or not), the
backward and decode kernels for bf16 causal at both head dims (their fp16 code differs
only in conversions), and the training kernels with dropout and with a block mask; on
sm_80 a bf16 subset (``compile_check.matrix``).
``bench/attention.py --compile`` builds every kernel in every configuration for both
architectures and records registers, stack and shared memory in
bench/results/attention.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

SHARED_LIMIT_KIB = {90: 227, 80: 163}  # largest dynamic shared memory per block (H100, A100)


def _env():
    return dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1", PYTHONPATH=str(ROOT))


def _rows(proc) -> list[dict]:
    out, err = proc.communicate(timeout=1500)
    assert proc.returncode == 0, err[-3000:]
    return [json.loads(line[4:]) for line in out.splitlines() if line.startswith("ROW ")]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("arch,forwards", [(90, 8), (80, 4)])
def test_kernels_compile_without_spills_or_32bit_strides(arch, forwards):
    proc = subprocess.Popen([sys.executable, "-m", "repro.attention.compile_check", "--arch", str(arch),
                             "--scope", "test"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=ROOT)
    found = _rows(proc)
    kinds = {(r["kernel"], r["d"], r["dtype"], r["causal"]) for r in found if not r["variant"]}
    assert len([k for k in kinds if k[0] == "forward"]) == forwards, kinds
    if arch == 90:  # dropout's hash and the block mask's branches change the training kernels
        assert {r["variant"] for r in found} == {"", "dropout", "block-sparse"}
    assert {k[0] for k in kinds} == {"forward", "backward_dkdv", "backward_dq", "decode"}
    bad = [r for r in found if r["spills"] or r["registers"] > 255 or r["shared_kib"] > SHARED_LIMIT_KIB[arch]
           or r["i32_stride_products"]]
    assert not bad, json.dumps(bad, indent=1)


SABOTAGED = '''
import triton, triton.language as tl, torch
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

@triton.jit
def offsets_32bit(X, Y, stride_xb, N):
    b = tl.program_id(0)
    x = tl.load(X + b * stride_xb + tl.arange(0, 16))
    tl.store(Y + b * stride_xb + tl.arange(0, 16), x)

src = ASTSource(fn=offsets_32bit, signature={"X": "*fp16", "Y": "*fp16", "stride_xb": "i32", "N": "i32"})
k = triton.compile(src, target=GPUTarget("cuda", 90, 32))
from repro.attention.compile_check import CompiledKernel, i32_stride_products
ck = CompiledKernel("t", 90, "float16", 16, False, {}, 0, 0, None, None, 0, k.asm["ttgir"], k.asm["ptx"],
                    {"stride_xb": "%stride_xb"})
print("FOUND", len(i32_stride_products(ck)))
'''


def test_the_32bit_stride_detector_flags_a_32bit_batch_offset(tmp_path):
    """The detector can fail: a kernel that multiplies the batch index by its stride in
    32 bits is flagged."""
    script = tmp_path / "offsets_32bit.py"  # triton.jit needs its source in a file
    script.write_text(SABOTAGED)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = int([x for x in proc.stdout.splitlines() if x.startswith("FOUND")][-1].split()[1])
    assert found >= 1


def test_config_spaces_fallbacks_and_block_sparse_pruning(monkeypatch):
    import torch

    from repro.attention.api import load_triton_kernels

    tk = load_triton_kernels()
    if tk.INTERPRETED:
        pytest.skip("this process imported triton in interpreter mode")
    for arch in (90, 80):
        for d in (64, 128):
            for kind in ("fwd", "bwd"):
                space = tk.config_space(kind, arch, d, torch.bfloat16)
                assert len(space) >= 2 and len({tuple(sorted(c.items())) for c in space}) == len(space)
    # Hopper's forward at d = 128 falls back to 128 x 128 tiles on 8 warps; the backward keeps 32 keys a block
    assert tk.config_space("fwd", 90, 128, torch.bfloat16)[0] == dict(BLOCK_M=128, BLOCK_N=128, num_warps=8,
                                                                       num_stages=3)
    assert all(c["BLOCK_N"] == 32 for c in tk.config_space("bwd", 90, 128, torch.float16))
    # a block mask of 64 keeps only tiles that divide it
    assert all(64 % c["BLOCK_M"] == 0 and 64 % c["BLOCK_N"] == 0
               for c in tk.config_space("fwd", 90, 64, torch.bfloat16, sparse_block=64))
    monkeypatch.setenv("PAPERKB_TRITON_AUTOTUNE", "0")
    assert not tk.autotune_enabled()
    monkeypatch.setenv("PAPERKB_TRITON_AUTOTUNE", "1")
    assert tk.autotune_enabled()


def test_autotuners_are_built_per_space_and_length_bucket():
    """The autotuning wrappers (run only on a GPU) are built over the pruned space, once
    per (kernel, space, power-of-two length bucket)."""
    import torch

    from repro.attention.api import load_triton_kernels

    tk = load_triton_kernels()
    if tk.INTERPRETED:
        pytest.skip("this process imported triton in interpreter mode")
    a = tk._tuned(tk._fwd_kernel, "fwd", 90, 128, torch.bfloat16, 0, False, 1024)
    assert a is tk._tuned(tk._fwd_kernel, "fwd", 90, 128, torch.bfloat16, 0, False, 1024)
    assert a is not tk._tuned(tk._fwd_kernel, "fwd", 90, 128, torch.bfloat16, 0, False, 2048)
    assert len(a.configs) == len(tk.config_space("fwd", 90, 128, torch.bfloat16))
    dropout = tk._tuned(tk._fwd_kernel, "fwd", 90, 128, torch.bfloat16, 0, True, 1024)
    assert all(c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] < 128 * 128 for c in dropout.configs)
    dq = tk._tuned(tk._bwd_dq_kernel, "bwd_dq", 80, 64, torch.float16, 0, False, 1024)
    assert list(dq.keys) == ["HEAD_DIM", "CAUSAL"]
