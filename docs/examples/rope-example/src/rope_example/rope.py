"""Rotary position embedding, after RoFormer (Su et al., 2021), section 3.4.

Each pair of channels (2i, 2i+1) of a query or key at position m is rotated by the angle
m * theta_i, with theta_i = base^(-2i/d). Because rotations compose, the dot product of a
rotated query at m and a rotated key at n depends on m - n only (section 3.4.2, eq. 16),
and a rotation keeps a vector's norm.

``sabotage`` names a broken variant, the negative controls of the experiments:

* ``"layout-mismatch"``: the query's pairs are (2i, 2i+1) but the key's are (i, i + d/2),
  the layout of another codebase (a real porting bug between checkpoints): each vector
  is still rotated, so norms are kept, but q_m . k_n no longer depends on m - n alone;
* ``"no-pairs"``: scales each channel by cos(m theta_i) instead of rotating the pair:
  positions are encoded, but neither norms nor relative positions survive.
"""

from __future__ import annotations

import torch


def frequencies(dim: int, base: float = 10000.0) -> torch.Tensor:
    """theta_i = base^(-2i/d) for i < d/2.  (d/2,)"""
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def rotate(
    x: torch.Tensor,
    positions: torch.Tensor,
    base: float = 10000.0,
    *,
    layout: str = "interleaved",
    sabotage: str | None = None,
) -> torch.Tensor:
    """Rotate ``x`` (N, d) at ``positions`` (N,); d even. ``layout``: which channels form a
    pair, ``interleaved`` (2i, 2i+1) or ``half`` (i, i + d/2)."""
    n, d = x.shape
    angles = positions[:, None].to(torch.float64) * frequencies(d, base)[None, :]  # (N, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    if layout == "interleaved":
        x1, x2 = x[:, 0::2], x[:, 1::2]  # (N, d/2) each
    else:
        x1, x2 = x[:, : d // 2], x[:, d // 2 :]
    if sabotage == "no-pairs":
        out1, out2 = x1 * cos, x2 * cos
    else:
        out1, out2 = x1 * cos - x2 * sin, x1 * sin + x2 * cos
    if layout == "interleaved":
        return torch.stack((out1, out2), dim=-1).reshape(n, d)
    return torch.cat((out1, out2), dim=-1)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, base: float = 10000.0, sabotage: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys (N, d) rotated at their positions (N,), as attention uses them."""
    key_layout = "half" if sabotage == "layout-mismatch" else "interleaved"
    return (
        rotate(q, positions, base, sabotage=sabotage),
        rotate(k, positions, base, layout=key_layout, sabotage=sabotage),
    )
