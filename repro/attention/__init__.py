"""FlashAttention (Dao et al. 2022) reproduced: naive, tiled (Algorithms 1 and 4 in
PyTorch) and Triton implementations behind one entry point, an IO-complexity model,
and the experiments behind the FlashAttention note's claims.

Importing this package is cheap (no torch): ``repro.attention.experiments`` is imported
to list experiment ids, so the public names load lazily on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "flash_attention": "repro.attention.api",
    "sdpa_attention": "repro.attention.api",
    "triton_available": "repro.attention.api",
    "load_triton_kernels": "repro.attention.api",
    "IMPLS": "repro.attention.api",
    "naive_attention": "repro.attention.naive",
    "causal_mask": "repro.attention.naive",
    "tiled_attention": "repro.attention.tiled",
    "TiledAttention": "repro.attention.tiled",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'repro.attention' has no attribute {name!r}")
