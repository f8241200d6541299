"""Split-KV decoding (flash-decoding) wiring: impl="auto" picks it for a few queries on
CUDA, and Llama generation switches to it after the prompt on CUDA only. The kernel's
exactness is tested in test_attention_triton.py (the interpreter on a CPU)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from repro.attention.api import DECODE_MAX_QUERIES, triton_available
from repro.llama.generation import _flash_decoding_impl


def _model(impl: str):
    return SimpleNamespace(params=SimpleNamespace(attn_impl=impl))


def test_generation_uses_flash_decoding_on_cuda_only():
    assert _flash_decoding_impl(_model("sdpa"), torch.device("cpu"), None) is None
    assert _flash_decoding_impl(_model("sdpa"), torch.device("cuda"), False) is None
    assert _flash_decoding_impl(_model("math"), torch.device("cuda"), None) is None  # an explicit choice stays
    want = "auto" if triton_available() else None
    assert _flash_decoding_impl(_model("sdpa"), torch.device("cuda"), None) == want


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_picks_split_kv_for_decoding_on_cuda(monkeypatch):
    from repro.attention import api

    kernels = api.load_triton_kernels()
    calls = []
    real = kernels.split_kv_attention
    monkeypatch.setattr(kernels, "split_kv_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    q = torch.randn(2, 8, 1, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 2, 4096, 128, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        out = api.flash_attention(q, k, k, causal=True)
    ref = api.flash_attention(q.float(), k.float(), k.float(), causal=True, impl="naive")
    assert calls and (out.float() - ref).abs().max().item() < 2e-2
    assert q.shape[2] <= DECODE_MAX_QUERIES
