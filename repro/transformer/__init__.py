"""The 2017 Transformer (Vaswani et al.): model, training schedule, decoding, experiments.

Importing the package does not import torch (``paperkb experiments`` lists ids cheaply);
names load on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    name: "model"
    for name in (
        "TransformerConfig",
        "CONFIGS",
        "config",
        "Transformer",
        "MultiHeadAttention",
        "sinusoidal_positions",
        "scaled_dot_product_attention",
        "label_smoothed_loss",
        "noam_lr",
        "make_optimizer",
        "greedy_decode",
        "beam_search",
        "beam_decode",
        "length_penalty",
        "count_parameters",
        "build_on_meta",
    )
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
