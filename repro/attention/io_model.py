"""Counting the HBM traffic of attention (FlashAttention paper, Section 3.2, Theorem 2).

A two-level memory model: a slow memory (HBM) holding Q, K, V, O and the statistics, and
a fast memory (SRAM) of ``M`` elements. The algorithms below are the paper's Algorithm 0
(standard attention) and Algorithm 3 (its backward), and Algorithm 1 (FlashAttention)
and Algorithm 4 (its backward, without dropout), written as loops whose every transfer
between the two memories goes through :class:`Hbm`, which counts bytes. With
``compute=True`` the loops also do the arithmetic (fp64), so a test can check that the
algorithm whose traffic is counted really computes attention and its gradients.

Theorem 2: standard attention moves Θ(Nd + N²) elements, FlashAttention Θ(N²d²/M) for
d <= M <= Nd. Block sizes follow Algorithm 1: Bc = ceil(M / 4d), Br = min(Bc, d).

Block-sparse FlashAttention (Section 3.3) takes a block mask over the (Br x Bc) tiles and
skips the tiles it zeroes: Proposition 4 gives Θ(Nd + N²d²s/M) for a fraction s of
non-zero blocks.

The paper's measured GPT-2 medium figure (Figure 2 left: 40.3 GB standard against 4.4 GB
FlashAttention) comes from a standard implementation that also masks (causal) and drops
out, each an extra pass over an N x N matrix in HBM; ``standard_attention_io(...,
masking=True, dropout=True)`` counts those passes as an unfused PyTorch implementation
makes them (the dropout mask stored as one byte per element). FlashAttention fuses both,
so its count does not change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Hbm:
    """Slow memory: named arrays, with every read and write counted in bytes.

    Arrays are torch tensors when computing, and ``None`` (shape-only) when counting.
    """

    elem_bytes: int = 2
    arrays: dict = field(default_factory=dict)
    read_bytes: int = 0
    write_bytes: int = 0

    def read(self, name: str, rows: slice, width: int):
        n = rows.stop - rows.start
        self.read_bytes += n * width * self.elem_bytes
        a = self.arrays.get(name)
        return None if a is None else a[rows].clone()

    def write(self, name: str, rows: slice, width: int, value) -> None:
        n = rows.stop - rows.start
        self.write_bytes += n * width * self.elem_bytes
        if value is not None:
            self.arrays[name][rows] = value

    @property
    def total_bytes(self) -> int:
        return self.read_bytes + self.write_bytes


def block_sizes(m: int, d: int) -> tuple[int, int]:
    """(Br, Bc) of Algorithm 1 for an SRAM of ``m`` elements."""
    bc = math.ceil(m / (4 * d))
    return min(bc, d), bc


def _blocks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _setup(n: int, d: int, q, k, v, do, elem_bytes: int):
    import torch

    hbm = Hbm(elem_bytes)
    compute = q is not None
    if compute:
        hbm.arrays.update(Q=q.double(), K=k.double(), V=v.double(), dO=do.double() if do is not None else None)
        hbm.arrays["O"] = torch.zeros(n, d, dtype=torch.float64)
    return hbm, compute


def standard_attention_io(
    n: int,
    d: int,
    *,
    q=None,
    k=None,
    v=None,
    do=None,
    backward: bool = False,
    elem_bytes: int = 2,
    row_block: int = 64,
    masking: bool = False,
    dropout: bool = False,
) -> tuple[Hbm, dict]:
    """Algorithm 0 (and Algorithm 3 when ``backward``): S, P (and dP, dS) go through HBM.

    Q, K, V (N x d) as tensors make it compute; otherwise it only counts. Returns the
    counter and the results (O, and dQ, dK, dV when computed). ``masking`` and
    ``dropout`` add the extra N x N passes of an unfused implementation that masks and
    drops out (counted only).
    """
    import torch

    hbm, compute = _setup(n, d, q, k, v, do, elem_bytes)
    if compute and (masking or dropout):
        raise ValueError("masking and dropout passes are counted only, not computed")
    if masking or dropout:
        return _standard_with_passes(hbm, n, d, backward, masking, dropout), {}
    if compute:
        for name in ("S", "P", "dP", "dS"):
            hbm.arrays[name] = torch.zeros(n, n, dtype=torch.float64)
        for name in ("dQ", "dK", "dV"):
            hbm.arrays[name] = torch.zeros(n, d, dtype=torch.float64)
    every = slice(0, n)
    scale = 1.0 / math.sqrt(d)
    # Algorithm 0 as the paper counts it: each input matrix is read once, and each N x N
    # intermediate is written once and read once.
    # 1. S = Q K^T, written to HBM
    k_all = hbm.read("K", every, d)
    for r in _blocks(n, row_block):
        q_r = hbm.read("Q", r, d)
        hbm.write("S", r, n, q_r @ k_all.T * scale if compute else None)
    # 2. P = softmax(S), written to HBM
    for r in _blocks(n, row_block):
        s = hbm.read("S", r, n)
        hbm.write("P", r, n, torch.softmax(s, dim=-1) if compute else None)
    # 3. O = P V, written to HBM
    v_all = hbm.read("V", every, d)
    for r in _blocks(n, row_block):
        p = hbm.read("P", r, n)
        hbm.write("O", r, d, p @ v_all if compute else None)
    results = {"O": hbm.arrays.get("O")}
    if backward:  # Algorithm 3
        full = hbm.read("P", every, n), hbm.read("dO", every, d)  # dV = P^T dO
        hbm.write("dV", every, d, full[0].T @ full[1] if compute else None)
        do_all, v_all = hbm.read("dO", every, d), hbm.read("V", every, d)  # dP = dO V^T
        hbm.write("dP", every, n, do_all @ v_all.T if compute else None)
        p_all, dp_all = hbm.read("P", every, n), hbm.read("dP", every, n)  # dS = P * (dP - rowsum(dP * P))
        ds = p_all * (dp_all - (dp_all * p_all).sum(-1, keepdim=True)) if compute else None
        hbm.write("dS", every, n, ds)
        ds_all, k_all = hbm.read("dS", every, n), hbm.read("K", every, d)  # dQ = dS K
        hbm.write("dQ", every, d, ds_all @ k_all * scale if compute else None)
        ds_all, q_all = hbm.read("dS", every, n), hbm.read("Q", every, d)  # dK = dS^T Q
        hbm.write("dK", every, d, ds_all.T @ q_all * scale if compute else None)
        results.update(dQ=hbm.arrays.get("dQ"), dK=hbm.arrays.get("dK"), dV=hbm.arrays.get("dV"))
    return hbm, results


def _standard_with_passes(hbm: Hbm, n: int, d: int, backward: bool, masking: bool, dropout: bool) -> Hbm:
    """Count an unfused standard attention with a causal mask and dropout: every step
    reads its inputs from HBM and writes its output back."""
    every = slice(0, n)
    nn = [("K", d), ("Q", d)]
    for name, width in nn:  # S = Q K^T
        hbm.read(name, every, width)
    hbm.write("S", every, n, None)
    if masking:  # S' = mask(S)
        hbm.read("S", every, n)
        hbm.write("S", every, n, None)
    hbm.read("S", every, n)  # P = softmax(S)
    hbm.write("P", every, n, None)
    z_bytes = Hbm(1)
    if dropout:  # Pd = P * Z / (1 - p), Z kept for the backward
        hbm.read("P", every, n)
        hbm.write("Pd", every, n, None)
        z_bytes.write("Z", every, n, None)
    hbm.read("Pd" if dropout else "P", every, n)  # O = Pd V
    hbm.read("V", every, d)
    hbm.write("O", every, d, None)
    if backward:
        hbm.read("Pd" if dropout else "P", every, n)  # dV = Pd^T dO
        hbm.read("dO", every, d)
        hbm.write("dV", every, d, None)
        hbm.read("dO", every, d)  # dPd = dO V^T
        hbm.read("V", every, d)
        hbm.write("dP", every, n, None)
        if dropout:  # dP = dPd * Z / (1 - p)
            hbm.read("dP", every, n)
            z_bytes.read("Z", every, n)
            hbm.write("dP", every, n, None)
        hbm.read("P", every, n)  # dS = P * (dP - rowsum(dP * P))
        hbm.read("dP", every, n)
        hbm.write("dS", every, n, None)
        if masking:  # the mask's backward zeroes dS where S was masked
            hbm.read("dS", every, n)
            hbm.write("dS", every, n, None)
        for other in ("K", "Q"):  # dQ = dS K, dK = dS^T Q
            hbm.read("dS", every, n)
            hbm.read(other, every, d)
            hbm.write("d" + other, every, d, None)
    hbm.read_bytes += z_bytes.read_bytes
    hbm.write_bytes += z_bytes.write_bytes
    return hbm


def random_block_mask(t_r: int, t_c: int, density: float, seed: int = 0):
    """A (Tr, Tc) boolean mask with round(density * Tr * Tc) True blocks, at random."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    total = t_r * t_c
    live = max(1, round(density * total))
    flat = torch.zeros(total, dtype=torch.bool)
    flat[torch.randperm(total, generator=gen)[:live]] = True
    return flat.view(t_r, t_c)


def flash_attention_io(
    n: int,
    d: int,
    m: int,
    *,
    q=None,
    k=None,
    v=None,
    do=None,
    backward: bool = False,
    elem_bytes: int = 2,
    block_mask=None,
    skip_zero_blocks: bool = True,
) -> tuple[Hbm, dict]:
    """Algorithm 1 (and Algorithm 4 without dropout when ``backward``) with an SRAM of
    ``m`` elements. Same conventions as :func:`standard_attention_io`. ``block_mask``
    ((Tr, Tc) booleans over the Br x Bc tiles) makes it block-sparse FlashAttention:
    zero tiles are neither read nor computed, and a key block with no non-zero tile is
    not read at all. ``skip_zero_blocks=False`` is a broken kernel (a negative control):
    it still computes only the non-zero tiles, exactly, but loads and stores every tile."""
    import torch

    hbm, compute = _setup(n, d, q, k, v, do, elem_bytes)
    br, bc = block_sizes(m, d)

    def tile_live(r: slice, c: slice) -> bool:
        return block_mask is None or bool(block_mask[r.start // br, c.start // bc])

    def live(r: slice, c: slice) -> bool:
        return tile_live(r, c) or not skip_zero_blocks

    def column_live(c: slice) -> bool:
        return block_mask is None or not skip_zero_blocks or bool(block_mask[:, c.start // bc].any())

    scale = 1.0 / math.sqrt(d)
    every = slice(0, n)
    # 2. O = 0, l = 0, m = -inf in HBM
    if compute:
        hbm.arrays["l"] = torch.zeros(n, dtype=torch.float64)
        hbm.arrays["m"] = torch.full((n,), float("-inf"), dtype=torch.float64)
    hbm.write("O", every, d, None)
    hbm.write("l", every, 1, None)
    hbm.write("m", every, 1, None)
    for c in _blocks(n, bc):  # 5
        if not column_live(c):
            continue
        k_j, v_j = hbm.read("K", c, d), hbm.read("V", c, d)  # 6
        for r in _blocks(n, br):  # 7
            if not live(r, c):
                continue
            q_i, o_i = hbm.read("Q", r, d), hbm.read("O", r, d)  # 8
            l_i, m_i = hbm.read("l", r, 1), hbm.read("m", r, 1)
            if compute and not tile_live(r, c):  # loaded for nothing (the broken kernel)
                o_new, l_new, m_new = o_i, l_i, m_i
            elif compute:
                s = q_i @ k_j.T * scale  # 9
                m_ij = s.amax(-1)  # 10
                p = torch.exp(s - m_ij[:, None])
                l_ij = p.sum(-1)
                m_new = torch.maximum(m_i, m_ij)  # 11
                l_new = torch.exp(m_i - m_new) * l_i + torch.exp(m_ij - m_new) * l_ij
                o_new = (
                    (l_i * torch.exp(m_i - m_new))[:, None] * o_i + torch.exp(m_ij - m_new)[:, None] * (p @ v_j)
                ) / l_new[:, None]
            else:
                o_new = l_new = m_new = None
            hbm.write("O", r, d, o_new)  # 12
            hbm.write("l", r, 1, l_new)  # 13
            hbm.write("m", r, 1, m_new)
    results = {"O": hbm.arrays.get("O")}
    if not backward:
        return hbm, results
    # Algorithm 4 (the forward's l and m are kept as L = m + log l, one number per row)
    if compute:
        hbm.arrays["L"] = hbm.arrays["m"] + torch.log(hbm.arrays["l"])
        for name in ("dQ", "dK", "dV"):
            hbm.arrays[name] = torch.zeros(n, d, dtype=torch.float64)
    for name in ("dQ", "dK", "dV"):  # line 5: dQ, dK, dV = 0 in HBM
        hbm.write(name, every, d, None)
    for c in _blocks(n, bc):
        if not column_live(c):
            continue
        k_j, v_j = hbm.read("K", c, d), hbm.read("V", c, d)
        dk_j = dv_j = None
        if compute:
            dk_j = torch.zeros(c.stop - c.start, d, dtype=torch.float64)
            dv_j = torch.zeros_like(dk_j)
        for r in _blocks(n, br):
            if not live(r, c):
                continue
            q_i, o_i, do_i, dq_i = (hbm.read(x, r, d) for x in ("Q", "O", "dO", "dQ"))
            lse_i = hbm.read("L", r, 1)
            if compute and tile_live(r, c):
                s = q_i @ k_j.T * scale
                p = torch.exp(s - lse_i[:, None])
                dv_j += p.T @ do_i
                dp = do_i @ v_j.T
                ds = p * (dp - (do_i * o_i).sum(-1, keepdim=True))
                dq_i = dq_i + ds @ k_j * scale
                dk_j += ds.T @ q_i * scale
            hbm.write("dQ", r, d, dq_i)
        hbm.write("dK", c, d, dk_j)
        hbm.write("dV", c, d, dv_j)
    results.update(dQ=hbm.arrays.get("dQ"), dK=hbm.arrays.get("dK"), dV=hbm.arrays.get("dV"))
    return hbm, results


def standard_elements(n: int, d: int, backward: bool = False) -> int:
    """Closed form of :func:`standard_attention_io`'s count, in elements: Θ(Nd + N²)."""
    fwd = 4 * n * d + 4 * n * n
    return fwd + (7 * n * n + 8 * n * d if backward else 0)


def flash_elements(n: int, d: int, m: int, backward: bool = False) -> int:
    """Closed form of :func:`flash_attention_io`'s count, in elements: Θ(N²d²/M)."""
    br, bc = block_sizes(m, d)
    t_c = math.ceil(n / bc)
    fwd = (n * d + 2 * n) + 2 * n * d + t_c * (2 * n * d + 2 * n) + t_c * (n * d + 2 * n)
    bwd = 3 * n * d + 2 * n * d + t_c * (4 * n * d + n) + t_c * n * d + 2 * n * d
    return fwd + (bwd if backward else 0)
