"""Correctness of the naive, tiled and sdpa implementations by flash-attention's rule
(error <= 2x the same-dtype PyTorch error against a higher-precision reference, 3x for
gradients) over its test matrix, at the sizes a 2-core CPU allows."""

from __future__ import annotations

import itertools
import subprocess
import sys
import zlib

import pytest
import torch

from kb.errors import PaperkbError
from repro.attention import flash_attention
from repro.attention.exactness import compare, random_inputs
from repro.attention.naive import naive_attention
from repro.attention.tiled import tiled_attention, tiled_forward

HEAD_DIMS = (32, 40, 64, 96, 128)
HEADS = {"mha": (4, 4), "gqa": (4, 2), "mqa": (4, 1)}
SMALL_PAIRS = ((113, 203), (128, 217), (203, 113), (1, 67))


def _small_cases():
    cases = []
    for n, ((n_q, n_k), causal, d) in enumerate(itertools.product(SMALL_PAIRS, (False, True), HEAD_DIMS)):
        heads = list(HEADS)[n % 3]
        dtype = (torch.float32, torch.bfloat16)[n % 2]
        cases.append(pytest.param(n_q, n_k, d, heads, causal, dtype, id=f"{n_q}x{n_k}-d{d}-{heads}-{'causal' if causal else 'full'}-{str(dtype)[6:]}"))
    return cases


@pytest.mark.parametrize("n_q,n_k,d,heads,causal,dtype", _small_cases())
def test_tiled_matches_reference_small(n_q, n_k, d, heads, causal, dtype):
    h, h_kv = HEADS[heads]
    q, k, v, dout = random_inputs(2, h, h_kv, n_q, n_k, d, dtype, seed=zlib.crc32(repr((n_q, n_k, d, heads, causal)).encode()))
    # small blocks so every case has several blocks, ragged edges and diagonal blocks
    report = compare(lambda a, b, c, m: tiled_attention(a, b, c, m, block_q=32, block_k=48), q, k, v, dout, causal)
    assert report.passes(), report.failures()


@pytest.mark.parametrize("n_q,n_k", [(1023, 1024), (1024, 1023)])
@pytest.mark.parametrize("causal", [False, True])
def test_tiled_matches_reference_long(n_q, n_k, causal):
    q, k, v, dout = random_inputs(1, 2, 1, n_q, n_k, 64, torch.bfloat16, seed=n_q * 7 + causal)
    report = compare(lambda a, b, c, m: flash_attention(a, b, c, m, impl="tiled"), q, k, v, dout, causal)
    assert report.passes(), report.failures()


@pytest.mark.parametrize("impl", ["naive", "sdpa"])
@pytest.mark.parametrize("n_q,n_k,heads,causal", [(113, 203, "gqa", True), (203, 113, "mqa", True), (128, 217, "mha", False)])
def test_other_impls_match_reference(impl, n_q, n_k, heads, causal):
    h, h_kv = HEADS[heads]
    q, k, v, dout = random_inputs(1, h, h_kv, n_q, n_k, 40, torch.float32, seed=n_q + n_k)
    report = compare(lambda a, b, c, m: flash_attention(a, b, c, m, impl=impl), q, k, v, dout, causal)
    assert report.passes(), report.failures()


def test_causal_mask_is_bottom_right_aligned():
    # Nq < Nk: the last query sees every key; query 0 sees keys 0..Nk-Nq
    q, k, v, _ = random_inputs(1, 1, 1, 3, 5, 16, torch.float64, seed=1)
    out = tiled_attention(q, k, v, causal=True, block_q=2, block_k=2)
    for i in range(3):
        visible = i + 5 - 3 + 1
        expect = naive_attention(q[:, :, i : i + 1], k[:, :, :visible], v[:, :, :visible])
        torch.testing.assert_close(out[:, :, i : i + 1], expect)


def test_query_seeing_no_key_gets_zero_and_zero_grads():
    # Nq > Nk with causal: the first Nq - Nk queries see nothing
    q, k, v, dout = random_inputs(1, 2, 2, 7, 3, 16, torch.float32, seed=2)
    q.requires_grad_(True)
    for impl in ("naive", "tiled", "sdpa"):
        out = flash_attention(q, k, v, causal=True, impl=impl)
        assert torch.all(out[:, :, :4] == 0), impl
        assert torch.isfinite(out).all(), impl
        (dq,) = torch.autograd.grad(out, q, dout)
        assert torch.all(dq[:, :, :4] == 0) and torch.isfinite(dq).all(), impl


def test_log_sum_exp_is_saved_exactly():
    q, k, v, _ = random_inputs(2, 4, 2, 50, 70, 32, torch.float64, seed=3)
    scale = 0.3
    _, lse = tiled_forward(q, k, v, causal=True, scale=scale, block_q=16, block_k=16)
    scores = torch.matmul(q, k.repeat_interleave(2, dim=1).transpose(-1, -2)) * scale
    mask = torch.arange(70)[None, :] <= torch.arange(50)[:, None] + 20
    expect = torch.logsumexp(scores.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(lse, expect)


def test_softmax_scale_is_used():
    q, k, v, _ = random_inputs(1, 2, 2, 20, 20, 32, torch.float64, seed=4)
    for impl in ("naive", "tiled", "sdpa"):
        torch.testing.assert_close(
            flash_attention(q, k, v, softmax_scale=0.05, impl=impl),
            naive_attention(q, k, v, softmax_scale=0.05),
        )
    assert not torch.allclose(naive_attention(q, k, v, softmax_scale=0.05), naive_attention(q, k, v))


def test_tiled_backward_does_not_keep_probabilities():
    """The autograd graph holds only q, k, v, O and the log-sum-exp: nothing N x N."""
    q, k, v, _ = random_inputs(1, 2, 2, 256, 256, 32, torch.float32, seed=5)
    q.requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        flash_attention(q, k, v, impl="tiled")
    assert sorted(map(tuple, saved)) == sorted([(1, 2, 256, 32)] * 4 + [(1, 2, 256)])


def test_auto_is_exact():
    q, k, v, _ = random_inputs(1, 2, 1, 33, 45, 32, torch.float64, seed=6)
    torch.testing.assert_close(flash_attention(q, k, v, causal=True), naive_attention(q, k, v, causal=True))


@pytest.mark.parametrize(
    "shapes,kwargs,message",
    [
        (((1, 4, 8, 16), (1, 3, 8, 16), (1, 3, 8, 16)), {}, "multiple of key/value heads"),
        (((1, 4, 8, 16), (1, 4, 8, 32), (1, 4, 8, 32)), {}, "head dim"),
        (((1, 4, 8, 16), (1, 4, 8, 16), (1, 4, 9, 16)), {}, "same shape"),
        (((4, 8, 16),) * 3, {}, "4-d tensor"),
        (((1, 4, 8, 16),) * 3, {"impl": "cudnn"}, "impl must be one of"),
        (((1, 4, 8, 16),) * 3, {"softmax_scale": -1.0}, "softmax_scale"),
    ],
)
def test_bad_arguments_raise_one_line_errors(shapes, kwargs, message):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(PaperkbError, match=message):
        flash_attention(q, k, v, **kwargs)


def test_triton_impl_without_triton_or_gpu_is_a_clear_error():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\nfrom kb.errors import PaperkbError\nfrom repro.attention import flash_attention\n"
        "q = torch.randn(1, 1, 4, 16)\n"
        "try:\n    flash_attention(q, q, q, impl='triton')\nexcept PaperkbError as e:\n    print('ERR', e)\n"
        "print(flash_attention(q, q, q).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "ERR impl='triton' needs the optional triton package" in out.stdout, out.stderr
    assert "torch.Size([1, 1, 4, 16])" in out.stdout
