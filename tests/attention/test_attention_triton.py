"""The Triton kernels, forward and backward, by flash-attention's correctness rule.

Without CUDA the kernels run in Triton's CPU interpreter. It must be switched on
(TRITON_INTERPRET=1) before triton is first imported, and another test in this process
may already have imported it, so on the CPU the cases run in a child process started
with the variable set (this file is also that child's script). Shapes stay tiny: the
interpreter executes every program instance in numpy. Output buffers are NaN-filled
before each launch, so an element the kernels never write fails the comparison.
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
HAS_TRITON = importlib.util.find_spec("triton") is not None
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton (optional extra) is not installed")

HEADS = {"mha": (2, 2), "gqa": (4, 2), "mqa": (3, 1)}  # few heads: the interpreter runs each program


def _case(n_q, n_k, d, heads, causal, dtype, batch=1, **extra):
    return dict(n_q=n_q, n_k=n_k, d=d, heads=heads, causal=causal, dtype=dtype, batch=batch, **extra)


FP32_CASES = [
    _case(17, 33, 32, "mha", False, "float32", batch=2),
    _case(17, 33, 40, "gqa", True, "float32"),
    _case(33, 17, 64, "mqa", True, "float32"),
    _case(33, 17, 96, "mha", False, "float32"),
    _case(1, 40, 128, "gqa", True, "float32"),
    _case(40, 1, 32, "mqa", True, "float32"),  # most queries see no key
]
FP16_CASES = [
    _case(50, 83, 64, "mqa", True, "float16"),
    _case(20, 37, 40, "mqa", False, "float16"),
    _case(37, 20, 128, "mha", True, "float16"),
    _case(32, 32, 96, "gqa", True, "float16"),
]
# dropout (Algorithm 2) and block-sparse (Section 3.3), against the standard algorithm
# given the same masks; GQA so the parallel per-head dK/dV slots are summed
MASKED_CASES = [
    _case(20, 35, 32, "gqa", True, "float32", dropout_p=0.2),
    _case(33, 48, 32, "mha", False, "float32", block=16, density=0.5),
    _case(32, 32, 40, "gqa", True, "float16", dropout_p=0.3, block=16, density=0.6),
]
# split-KV decoding: a few queries against many keys, several splits
DECODE_CASES = [
    dict(n_q=1, n_k=100, d=32, heads="gqa", causal=True, dtype="float32", splits=3),
    dict(n_q=5, n_k=77, d=40, heads="mqa", causal=True, dtype="float32", splits=None),
    dict(n_q=3, n_k=130, d=64, heads="mha", causal=False, dtype="float16", splits=4),
    dict(n_q=4, n_k=2, d=32, heads="mha", causal=True, dtype="float32", splits=2),  # queries that see no key
]
BF16_CASES = [_case(113, 203, 64, "gqa", True, "bfloat16"), _case(128, 217, 128, "mqa", False, "bfloat16")]


def run_cases(cases: list[dict]) -> list[dict]:
    """Run each case through the kernels (in this process); one report per case."""
    import torch

    from repro.attention.api import load_triton_kernels
    from repro.attention.controls import broken_attention
    from repro.attention.dropout import draw_seed, full_keep_mask
    from repro.attention.exactness import compare, random_inputs
    from repro.attention.naive import naive_attention

    torch.set_num_threads(1)
    kernels = load_triton_kernels()
    kernels.POISON_OUTPUTS = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = []
    for n, c in enumerate(cases):
        if c.get("sabotage") == "grid":  # launch one program too few along the query axis
            kernels.triton.cdiv = lambda a, b: max(1, -(-a // b) - 1)
        h, h_kv = HEADS[c["heads"]]
        q, k, v, dout = random_inputs(c["batch"], h, h_kv, c["n_q"], c["n_k"], c["d"], getattr(torch, c["dtype"]),
                                      seed=1000 + n, device=device)
        drop, bs = c.get("dropout_p", 0.0), c.get("block", 128)
        keep = mask = None
        if drop:
            keep = full_keep_mask(draw_seed(torch.Generator().manual_seed(n)), c["batch"], h, c["n_q"], c["n_k"], drop)
            keep = keep.to(device)
        if "density" in c:
            gen = torch.Generator().manual_seed(n)
            mask = torch.rand(c["batch"], h, -(-c["n_q"] // bs), -(-c["n_k"] // bs), generator=gen) < c["density"]
            mask[:, :, 0, :] = False  # a query row whose blocks are all masked
            mask = mask.to(device)
        rep = compare(
            lambda a, b, cc, m: broken_attention(c.get("kernel_sabotage"))(
                a, b, cc, m, dropout_p=drop, generator=torch.Generator().manual_seed(n), block_mask=mask,
                block_size=bs, impl="triton"),
            q, k, v, dout, c["causal"],
            reference=lambda a, b, cc, m: naive_attention(a, b, cc, m, keep=keep, dropout_p=drop, block_mask=mask,
                                                          block_size=bs))
        if drop or mask is not None or c.get("kernel_sabotage"):
            results.append({"case": c, "failures": rep.failures(), "impl": rep.impl, "torch": rep.torch})
            continue
        # the saved log-sum-exp (+inf where a query sees no key)
        _, lse = kernels.attention_forward(q, k, v, c["causal"], c["d"] ** -0.5)
        kk = k.double().repeat_interleave(h // h_kv, dim=1)
        s = q.double() @ kk.transpose(-1, -2) * c["d"] ** -0.5
        if c["causal"]:
            i = torch.arange(c["n_q"], device=device)[:, None]
            j = torch.arange(c["n_k"], device=device)[None, :]
            s = s.masked_fill(j > i + c["n_k"] - c["n_q"], float("-inf"))
        want = torch.logsumexp(s, dim=-1)
        want = torch.where(torch.isinf(want), torch.full_like(want, float("inf")), want)
        finite = torch.isfinite(want)
        lse_ok = bool(torch.equal(torch.isinf(lse.double()), ~finite)) and (
            (lse.double() - want)[finite].abs().max().item() < 1e-3 if finite.any() else True
        )
        results.append({"case": c, "failures": rep.failures() + ([] if lse_ok else ["lse"]),
                        "impl": rep.impl, "torch": rep.torch})
    return results


def run_decode_cases(cases: list[dict]) -> list[dict]:
    """Split-KV decoding against the fp64 standard algorithm: max abs error per case."""
    import torch

    from repro.attention import flash_attention
    from repro.attention.api import load_triton_kernels

    torch.set_num_threads(1)
    kernels = load_triton_kernels()
    kernels.POISON_OUTPUTS = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator().manual_seed(0)
    out = []
    for c in cases:
        h, h_kv = HEADS[c["heads"]]
        dt = getattr(torch, c["dtype"])
        q = torch.randn(2, h, c["n_q"], c["d"], generator=gen).to(device, dt)
        k, v = (torch.randn(2, h_kv, c["n_k"], c["d"], generator=gen).to(device, dt) for _ in range(2))
        got = kernels.split_kv_attention(q, k, v, c["causal"], n_splits=c["splits"])
        want = flash_attention(q.double(), k.double(), v.double(), c["causal"], impl="naive")
        same = flash_attention(q, k, v, c["causal"], impl="naive")
        out.append({"case": c, "err": (got.double() - want).abs().max().item(),
                    "torch_err": (same.double() - want).abs().max().item()})
    return out


def run_errors() -> list[str]:
    import torch

    from kb.errors import PaperkbError
    from repro.attention import flash_attention

    messages = []
    for q in (torch.randn(1, 2, 8, 16, dtype=torch.float64), torch.randn(1, 2, 8, 320)):
        try:
            flash_attention(q, q, q, impl="triton")
            messages.append("no error")
        except PaperkbError as exc:
            messages.append(str(exc))
    return messages


def run_suite(cases: list[dict], errors: bool = False, sabotage: bool = False, decode: list | None = None) -> dict:
    """Everything one child process checks: the cases, then optionally the argument
    errors and the decoding cases, then optionally the sabotaged launch (last: it
    patches triton.cdiv)."""
    out = {"results": run_cases(cases)}
    if errors:
        out["errors"] = run_errors()
    if decode:
        out["decode"] = run_decode_cases(decode)
    if sabotage:
        out["sabotage"] = run_cases([dict(_case(40, 40, 32, "mha", False, "float32"), sabotage="grid")])[0]
    return out


def _in_child(*args) -> dict:
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    code = (f"import json, runpy, sys; m = runpy.run_path({str(Path(__file__))!r}); "
            f"print('RESULT' + json.dumps(m['run_suite'](*json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _assert_all_pass(results):
    bad = [f"{r['case']}: {r['failures']}" for r in results if r["failures"]]
    assert not bad, "\n".join(bad)


def _assert_errors(messages):
    assert "fp16, bf16 or fp32" in messages[0]
    assert "head dims up to 256" in messages[1]


@pytest.mark.slow
def test_triton_fp32_forward_backward_and_argument_errors():
    if _cuda():
        _assert_all_pass(run_cases(FP32_CASES))
        _assert_errors(run_errors())
        return
    suite = _in_child(FP32_CASES, True, False)
    _assert_all_pass(suite["results"])
    _assert_errors(suite["errors"])


@pytest.mark.slow
def test_triton_fp16_forward_backward_and_poisoned_outputs():
    """Also shows the harness can fail: with one query block never launched, the NaN
    poison in the output buffer breaks the rule."""
    if _cuda():  # the sabotage patches triton.cdiv: only done in a throwaway child
        _assert_all_pass(run_cases(FP16_CASES))
        return
    suite = _in_child(FP16_CASES, False, True)
    _assert_all_pass(suite["results"])
    assert any(f.startswith("out") for f in suite["sabotage"]["failures"]), suite["sabotage"]


def _assert_decode(rows):
    bad = [r for r in rows if not r["err"] <= max(2 * r["torch_err"], 1e-5)]
    assert not bad, bad


@pytest.mark.slow
def test_triton_dropout_block_sparse_and_split_kv_decoding():
    """Dropout and block masks against the standard algorithm with the same masks; a
    kernel with its causal mask off fails; split-KV decoding matches the reference."""
    sabotaged = [dict(_case(20, 20, 32, "mha", True, "float32"), kernel_sabotage="causal-off")]
    if _cuda():
        _assert_all_pass(run_cases(MASKED_CASES))
        _assert_decode(run_decode_cases(DECODE_CASES))
        assert run_cases(sabotaged)[0]["failures"]
        return
    suite = _in_child(MASKED_CASES + sabotaged, False, False, DECODE_CASES)
    _assert_all_pass(suite["results"][:-1])
    assert any(f.startswith("out") for f in suite["results"][-1]["failures"]), suite["results"][-1]
    _assert_decode(suite["decode"])


def test_triton_bf16_forward_backward():
    if not _cuda():
        pytest.skip("Triton's CPU interpreter mishandles bf16 (numpy has no bf16 type); checked on CUDA only")
    _assert_all_pass(run_cases(BF16_CASES))


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/attention/test_attention_triton.py
    print(json.dumps(run_cases(FP32_CASES + FP16_CASES), indent=1))
