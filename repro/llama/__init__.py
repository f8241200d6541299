"""Llama 2 in PyTorch: the model (``model``), decoding (``generation``), Hugging Face and
Meta checkpoints (``weights``) and the experiments behind the notes' claims (``experiments``).

Importing the package stays cheap (no torch): names are loaded on first use, because
``paperkb experiments`` imports ``repro.llama.experiments`` just to list ids.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ModelArgs": "model",
    "PRESETS": "model",
    "preset": "model",
    "Transformer": "model",
    "KVCache": "model",
    "count_parameters": "model",
    "build_on_meta": "model",
    "generate": "generation",
    "sample_top_p": "generation",
    "format_chat": "generation",
    "chat_prompt_tokens": "generation",
    "save_hf": "weights",
    "load_hf": "weights",
    "load_meta": "weights",
    "to_hf_state_dict": "weights",
    "from_hf_state_dict": "weights",
    "hf_config": "weights",
    "save_meta": "weights",
    "to_transformers": "weights",
    "ByteTokenizer": "tokenizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
