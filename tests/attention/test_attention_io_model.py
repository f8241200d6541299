"""The HBM-traffic model of Theorem 2: the counted loops compute attention, the counts
follow the closed forms, and the trends are N^2 d^2 / M versus Nd + N^2."""

from __future__ import annotations

import math

import pytest
import torch

from repro.attention.io_model import (
    block_sizes,
    flash_attention_io,
    flash_elements,
    standard_attention_io,
    standard_elements,
)
from repro.attention.naive import naive_attention


@pytest.mark.parametrize("n,d,m", [(70, 8, 64), (70, 8, 200), (96, 16, 1000), (33, 4, 16)])
def test_counted_algorithms_compute_attention_and_gradients(n, d, m):
    gen = torch.Generator().manual_seed(n * d + m)
    q, k, v, do = (torch.randn(n, d, generator=gen, dtype=torch.float64) for _ in range(4))
    qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = naive_attention(qq[None, None], kk[None, None], vv[None, None])[0, 0]
    want = dict(zip(("dQ", "dK", "dV"), torch.autograd.grad(out, (qq, kk, vv), do)), O=out.detach())
    for hbm, got in (flash_attention_io(n, d, m, q=q, k=k, v=v, do=do, backward=True),
                     standard_attention_io(n, d, q=q, k=k, v=v, do=do, backward=True)):
        for name, value in want.items():
            torch.testing.assert_close(got[name], value)
        assert hbm.total_bytes > 0


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("n,d,m", [(70, 8, 64), (256, 64, 4096), (1000, 32, 3000)])
def test_counts_match_closed_forms(n, d, m, backward):
    flash, _ = flash_attention_io(n, d, m, backward=backward, elem_bytes=1)
    std, _ = standard_attention_io(n, d, backward=backward, elem_bytes=1)
    assert flash.total_bytes == flash_elements(n, d, m, backward)
    assert std.total_bytes == standard_elements(n, d, backward)


def test_block_sizes_follow_algorithm_1():
    assert block_sizes(100 * 1024, 64) == (64, 400)
    assert block_sizes(1024, 64) == (4, 4)


def test_traffic_trends():
    # fewer bytes with more SRAM, roughly as 1/M; the standard algorithm ignores M
    ms = [4096, 8192, 16384]
    fl = [flash_elements(4096, 64, m, backward=True) for m in ms]
    assert fl[0] > fl[1] > fl[2]
    assert 1.7 < fl[0] / fl[1] < 2.05 and 1.7 < fl[1] / fl[2] < 2.05
    # doubling N quadruples both, doubling d quadruples FlashAttention's only
    assert 3.5 < flash_elements(8192, 64, 8192) / flash_elements(4096, 64, 8192) < 4.2
    assert 3.3 < flash_elements(4096, 128, 65536) / flash_elements(4096, 64, 65536) < 4.2
    assert standard_elements(4096, 128) / standard_elements(4096, 64) < 1.1
    # at a realistic SRAM FlashAttention moves far fewer bytes
    assert flash_elements(1024, 64, 98304, True) * 4 < standard_elements(1024, 64, True)
    assert math.isclose(flash_elements(1024, 64, 98304, True) * 2 * 1024 / 1e9, 4.60, rel_tol=0.01)  # paper, Figure 2 left: 4.4 GB
