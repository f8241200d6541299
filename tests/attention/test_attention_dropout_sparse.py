"""Dropout (Algorithm 2) and block-sparse attention (Section 3.3) in the tiled path and
the one entry point, against the standard algorithm given the same masks; fp32 and bf16."""

from __future__ import annotations

import pytest
import torch

from paperkb.errors import PaperkbError
from repro.attention import flash_attention
from repro.attention.controls import broken_attention
from repro.attention.dropout import draw_seed, full_keep_mask, hash32, keep_mask
from repro.attention.exactness import compare, random_inputs
from repro.attention.naive import naive_attention

HEADS = {"mha": (2, 2), "gqa": (4, 2), "mqa": (3, 1)}


def _hash_reference(x: int) -> int:
    """lowbias32 in plain Python integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_matches_plain_integer_arithmetic():
    xs = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 123456789, 0xDEADBEEF]
    got = hash32(torch.tensor(xs, dtype=torch.int64)).tolist()
    assert got == [_hash_reference(x) for x in xs]


def test_keep_fraction_and_independence_of_tiling():
    keep = full_keep_mask(7, 2, 3, 128, 96, 0.25)
    assert abs(keep.float().mean().item() - 0.75) < 0.01
    # the decision for one element depends only on (seed, head, row, col)
    part = keep_mask(7, torch.tensor(4).view(1, 1), torch.arange(10, 20).view(-1, 1), torch.arange(5, 9).view(1, -1),
                     0.25)
    assert torch.equal(part, keep[1, 1, 10:20, 5:9])
    assert not torch.equal(full_keep_mask(8, 2, 3, 128, 96, 0.25), keep)


def _dropout_case(n_q, n_k, d, heads, causal, dtype, p, impl="tiled"):
    h, h_kv = HEADS[heads]
    q, k, v, dout = random_inputs(2, h, h_kv, n_q, n_k, d, dtype, seed=n_q * 31 + n_k)
    keep = full_keep_mask(draw_seed(torch.Generator().manual_seed(11)), 2, h, n_q, n_k, p)

    def mine(a, b, c, m):
        return flash_attention(a, b, c, m, dropout_p=p, generator=torch.Generator().manual_seed(11), impl=impl)

    def reference(a, b, c, m):
        return naive_attention(a, b, c, m, keep=keep, dropout_p=p)

    return compare(mine, q, k, v, dout, causal, reference=reference)


@pytest.mark.parametrize("n_q,n_k,d,heads,causal,dtype", [
    (150, 203, 40, "gqa", True, torch.float32),
    (203, 150, 64, "mqa", False, torch.bfloat16),
    (129, 129, 32, "mha", True, torch.bfloat16),
])
def test_tiled_dropout_equals_standard_algorithm_with_the_same_mask(n_q, n_k, d, heads, causal, dtype):
    report = _dropout_case(n_q, n_k, d, heads, causal, dtype, 0.2)
    assert report.passes(), report.failures()


def test_a_backward_that_draws_a_fresh_mask_is_caught():
    q, k, v, dout = random_inputs(1, 2, 2, 140, 140, 32, torch.float32, seed=3)
    keep = full_keep_mask(draw_seed(torch.Generator().manual_seed(11)), 1, 2, 140, 140, 0.3)
    report = compare(
        lambda a, b, c, m: broken_attention("fresh-backward-mask")(
            a, b, c, m, dropout_p=0.3, generator=torch.Generator().manual_seed(11), impl="tiled"),
        q, k, v, dout, True, reference=lambda a, b, c, m: naive_attention(a, b, c, m, keep=keep, dropout_p=0.3))
    failed = {f.split(":")[0] for f in report.failures()}
    assert "out" not in failed and {"dq", "dk", "dv"} & failed


def test_same_generator_state_same_mask_and_zero_dropout_is_exact():
    q, k, v, _ = random_inputs(1, 2, 2, 64, 64, 32, torch.float32, seed=5)
    a = flash_attention(q, k, v, dropout_p=0.5, generator=torch.Generator().manual_seed(1), impl="tiled")
    b = flash_attention(q, k, v, dropout_p=0.5, generator=torch.Generator().manual_seed(1), impl="tiled")
    c = flash_attention(q, k, v, dropout_p=0.5, generator=torch.Generator().manual_seed(2), impl="tiled")
    assert torch.equal(a, b) and not torch.allclose(a, c)
    plain = flash_attention(q, k, v, impl="tiled")
    assert torch.allclose(flash_attention(q, k, v, dropout_p=0.0, impl="tiled"), plain)


def _sparse_case(n_q, n_k, d, heads, causal, dtype, bs, density, seed):
    h, h_kv = HEADS[heads]
    q, k, v, dout = random_inputs(1, h, h_kv, n_q, n_k, d, dtype, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(1, h, -(-n_q // bs), -(-n_k // bs), generator=gen) < density
    mask[:, :, 1, :] = False  # a query row whose blocks are all masked
    return q, k, v, dout, mask


@pytest.mark.parametrize("n_q,n_k,d,heads,causal,dtype,bs", [
    (150, 203, 40, "gqa", False, torch.float32, 32),
    (203, 150, 64, "mqa", True, torch.bfloat16, 64),
    (96, 96, 32, "mha", True, torch.float32, 16),
])
def test_tiled_block_sparse_equals_masked_standard_algorithm(n_q, n_k, d, heads, causal, dtype, bs):
    q, k, v, dout, mask = _sparse_case(n_q, n_k, d, heads, causal, dtype, bs, 0.5, seed=n_q + bs)
    report = compare(
        lambda a, b, c, m: flash_attention(a, b, c, m, block_mask=mask, block_size=bs, impl="tiled"),
        q, k, v, dout, causal,
        reference=lambda a, b, c, m: naive_attention(a, b, c, m, block_mask=mask, block_size=bs))
    assert report.passes(), report.failures()
    out = flash_attention(q, k, v, causal, block_mask=mask, block_size=bs, impl="tiled")
    assert torch.count_nonzero(out[:, :, bs:2 * bs]) == 0  # the all-masked block row is zeros


def test_block_mask_broadcasts_and_sdpa_agrees():
    q, k, v, _ = random_inputs(2, 2, 2, 64, 64, 32, torch.float32, seed=9)
    mask2d = torch.tensor([[True, False], [False, True]])
    tiled = flash_attention(q, k, v, block_mask=mask2d, block_size=32, impl="tiled")
    sdpa = flash_attention(q, k, v, block_mask=mask2d, block_size=32, impl="sdpa")
    naive = flash_attention(q, k, v, block_mask=mask2d.expand(2, 2, 2, 2), block_size=32, impl="naive")
    assert torch.allclose(tiled, naive, atol=1e-5) and torch.allclose(sdpa, naive, atol=1e-5)
    # block-diagonal: the first 32 queries see only the first 32 keys
    assert torch.allclose(tiled[..., :32, :], flash_attention(q[..., :32, :], k[..., :32, :], v[..., :32, :],
                                                                impl="naive"), atol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(dropout_p=1.0), "dropout_p"),
    (dict(dropout_p=-0.1), "dropout_p"),
    (dict(block_mask=torch.ones(3, 3, dtype=torch.bool), block_size=32), "block_mask must end in"),
    (dict(block_mask=torch.ones(5, 2, 2, dtype=torch.bool), block_size=32), "does not broadcast"),
    (dict(block_mask=torch.ones(2, 2, dtype=torch.bool), block_size=0), "block_size"),
    (dict(dropout_p=0.1, impl="sdpa"), "counter-based dropout"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    q = torch.randn(1, 2, 64, 16)
    with pytest.raises(PaperkbError, match=message):
        flash_attention(q, q, q, **kwargs)


def test_auto_on_cpu_uses_tiled_for_dropout_and_block_masks():
    q, k, v, _ = random_inputs(1, 2, 2, 64, 64, 32, torch.float32, seed=1)
    mask = torch.tensor([[True, False], [True, True]])
    assert torch.equal(flash_attention(q, k, v, block_mask=mask, block_size=32),
                       flash_attention(q, k, v, block_mask=mask, block_size=32, impl="tiled"))


def test_tiled_without_rescale_is_not_exact():
    q, k, v, dout = random_inputs(1, 2, 2, 256, 256, 32, torch.float32, seed=4)
    report = compare(lambda a, b, c, m: broken_attention("no-rescale")(a, b, c, m, impl="tiled"),
                     q, k, v, dout, True)
    assert "out" in {f.split(":")[0] for f in report.failures()}
