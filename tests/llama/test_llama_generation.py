"""Decoding: the chat prompt format, top-p filtering, and cached generation."""

from __future__ import annotations

import pytest
import torch

from repro.llama.generation import chat_prompt_tokens, format_chat, generate, next_token, sample_top_p
from repro.llama.model import ModelArgs, Transformer
from repro.llama.tokenizer import ByteTokenizer




def test_chat_format_with_system_and_history():
    dialog = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi "},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Name a llama."},
    ]
    assert format_chat(dialog) == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s>"
        "<s>[INST] Name a llama. [/INST]"
    )
    tok = ByteTokenizer()
    ids = chat_prompt_tokens(dialog, tok)
    assert ids[0] == tok.bos_id and ids.count(tok.bos_id) == 2 and ids.count(tok.eos_id) == 1
    assert ids[-1] != tok.eos_id
    assert tok.decode(ids).endswith("[INST] Name a llama. [/INST]")


def test_chat_format_rejects_bad_dialogs():
    with pytest.raises(ValueError):
        format_chat([{"role": "assistant", "content": "x"}])
    with pytest.raises(ValueError):
        format_chat([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    with pytest.raises(ValueError):
        format_chat([])


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.05, 0.5, 0.3, 0.15]])
    gen = torch.Generator().manual_seed(0)
    draws = {sample_top_p(probs, 0.75, gen).item() for _ in range(400)}
    assert draws == {1, 2}  # 0.5 + 0.3 reaches 0.75; 0.15 and 0.05 are cut
    draws = {sample_top_p(probs, 0.45, gen).item() for _ in range(200)}
    assert draws == {1}
    draws = {sample_top_p(probs, 0.81, gen).item() for _ in range(600)}
    assert draws == {1, 2, 3}
    # the top token survives even when it alone exceeds p
    assert sample_top_p(torch.tensor([[0.9, 0.1]]), 0.1, gen).item() == 0


def test_top_p_renormalises():
    probs = torch.tensor([[0.6, 0.3, 0.1]])
    gen = torch.Generator().manual_seed(1)
    draws = torch.cat([sample_top_p(probs, 0.8, gen) for _ in range(3000)]).flatten()
    frac0 = (draws == 0).float().mean().item()
    assert abs(frac0 - 2 / 3) < 0.04


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 2.0, 1.9], [3.0, 0.0, 0.0]])
    assert next_token(logits, 0.0, 0.9).tolist() == [1, 0]


def model():
    torch.manual_seed(0)
    return Transformer(ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=259,
                                 max_seq_len=64, multiple_of=32)).eval()


def test_cached_generation_equals_recompute():
    m = model()
    prompts = [[1, 50, 60, 70, 80], [1, 90, 100]]  # ragged batch
    cached = generate(m, prompts, 12, temperature=0.0)
    plain = generate(m, prompts, 12, temperature=0.0, use_cache=False)
    assert cached == plain and all(len(x) == 12 for x in cached)
    # a ragged row decodes the same as on its own
    assert generate(m, [prompts[1]], 12, temperature=0.0) == [cached[1]]


def test_sampling_is_seeded_and_stops_at_eos():
    m = model()
    a = generate(m, [[1, 5, 6]], 10, generator=torch.Generator().manual_seed(3))
    b = generate(m, [[1, 5, 6]], 10, generator=torch.Generator().manual_seed(3))
    assert a == b
    first = generate(m, [[1, 5, 6]], 5, temperature=0.0)[0]
    stopped = generate(m, [[1, 5, 6]], 10, temperature=0.0, eos_id=first[2])[0]
    assert stopped == first[:3]


def test_prompt_too_long():
    with pytest.raises(ValueError):
        generate(model(), [[1] * 64], 4)
