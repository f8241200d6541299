"""Counter-based dropout for attention (FlashAttention paper, Algorithm 2 and Section 3.1).

The paper keeps only the RNG state (a seed) between the forward and backward passes and
regenerates the dropout mask Z block by block in the backward. Here the keep decision
for the probability P[b, h, i, j] is a pure function of (seed, b*H + h, i, j): an integer
hash of the counter, so any implementation (the tiled PyTorch loops, the Triton kernel,
the reference) gets the same mask from the same seed, whatever its tile sizes.

The hash is lowbias32 (Wellons' 32-bit integer mixer), applied three times: once to the
(seed, head) pair, once per row, once per element. The Triton kernel does the same
arithmetic on uint32; here it runs on int64 tensors kept below 2^32, with products split
so nothing overflows int64.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
_C1, _C2 = 0x7FEB352D, 0x846CA68B
GOLDEN = 0x9E3779B9  # spreads consecutive column indices before the last hash


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for 0 <= x < 2^32, without int64 overflow."""
    lo = x * (c & 0xFFFF)
    hi = ((x * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding uint32 values."""
    x = x ^ (x >> 16)
    x = _mul32(x, _C1)
    x = x ^ (x >> 15)
    x = _mul32(x, _C2)
    return x ^ (x >> 16)


def keep_mask(seed: int, bh: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, p: float) -> torch.Tensor:
    """True where the element is kept. ``bh``, ``rows`` and ``cols`` are integer tensors
    that broadcast against each other (e.g. (B*H, 1, 1), (Nq, 1), (1, Nk))."""
    key = hash32((int(seed) & MASK32) ^ hash32(bh.long() & MASK32))
    r = hash32((key + rows.long()) & MASK32)
    x = hash32((r + _mul32(cols.long() & MASK32, GOLDEN)) & MASK32)
    return (x >> 8).to(torch.float32) * (1.0 / 16777216.0) >= p


def full_keep_mask(seed: int, batch: int, heads: int, n_q: int, n_k: int, p: float, device=None) -> torch.Tensor:
    """The whole (B, H, Nq, Nk) mask, for the reference algorithm and tests."""
    bh = torch.arange(batch * heads, device=device).view(batch, heads, 1, 1)
    rows = torch.arange(n_q, device=device).view(n_q, 1)
    cols = torch.arange(n_k, device=device).view(1, n_k)
    return keep_mask(seed, bh, rows, cols, p)


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 31-bit seed from ``generator`` (torch's default generator when None)."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
