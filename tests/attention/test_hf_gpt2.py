"""Hugging Face's GPT-2 as the end-to-end claim's baseline: our weights, our interface, the same losses."""

from __future__ import annotations

import pytest
import torch

from repro.attention.gpt2 import GPT, GPTConfig, batches, vault_bytes
from repro.attention.hf_gpt2 import HFGPT2
from repro.registry import run_inline


@pytest.mark.slow  # imports transformers' GPT-2 (seconds on a loaded machine)
def test_hf_gpt2_with_our_weights_gives_our_loss():
    torch.manual_seed(0)
    ours = GPT(GPTConfig(block_size=64, vocab_size=256, n_layer=2, n_head=2, n_embd=32))
    theirs = HFGPT2(ours)
    x, y = batches(vault_bytes(), 1, 2, 64, 0)[0]
    with torch.no_grad():
        assert abs(ours(x, y).item() - theirs(x, y).item()) < 1e-5
        # a weight that is not carried over shows: the check can fail (the final layer norm's
        # gain scales every logit, so the loss moves whatever text the vault holds)
        theirs.model.transformer.ln_f.weight.mul_(3.0)
        assert abs(ours(x, y).item() - theirs(x, y).item()) > 1e-3


def test_end_to_end_against_hf_at_smoke_and_its_control(tmp_path):
    ok = run_inline("flash-attention/gpt2-end-to-end", "smoke", baseline="hf", steps=3, run_dir=tmp_path / "a")
    assert ok.verdict == "supported", ok.summary
    broken = run_inline(
        "flash-attention/gpt2-end-to-end",
        "smoke",
        baseline="hf",
        steps=3,
        control="impl-causal-off",
        run_dir=tmp_path / "b",
    )
    assert broken.verdict == "contradicted"
