"""The Llama 2 model: presets, shapes, the KV cache and the attention back ends."""

from __future__ import annotations

import pytest
import torch

from repro.llama.model import KVCache, ModelArgs, PRESETS, Transformer, build_on_meta, count_parameters, preset


def tiny(**kw) -> ModelArgs:
    base = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97, max_seq_len=64, multiple_of=32)
    base.update(kw)
    return ModelArgs(**base)


@pytest.mark.parametrize("name,expected", [("7B", 6_738_415_616), ("13B", 13_015_864_320), ("70B", 68_976_648_192)])
def test_published_parameter_counts(name, expected):
    assert count_parameters(build_on_meta(PRESETS[name])) == expected


def test_ffn_width_rule():
    assert PRESETS["7B"].hidden_dim == 11008
    assert PRESETS["13B"].hidden_dim == 13824
    assert PRESETS["70B"].hidden_dim == 28672
    assert PRESETS["34B"].hidden_dim == 22016
    assert PRESETS["70B"].n_kv_heads == 8 and PRESETS["7B"].n_kv_heads == 32
    assert preset("70B", max_seq_len=16).max_seq_len == 16
    with pytest.raises(ValueError):
        preset("65B")


def test_bad_args_rejected():
    with pytest.raises(ValueError):
        ModelArgs(dim=64, n_heads=5)
    with pytest.raises(ValueError):
        ModelArgs(dim=64, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError):
        ModelArgs(dim=64, n_heads=4, attn_impl="fast")


def test_shapes_and_causality():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    t = torch.randint(0, 97, (3, 11))
    out = m(t)
    assert out.shape == (3, 11, 97) and out.dtype == torch.float32
    t2 = t.clone()
    t2[:, 7:] = (t2[:, 7:] + 1) % 97  # changing later tokens must not change earlier logits
    assert torch.allclose(m(t2)[:, :7], out[:, :7], atol=1e-5)
    assert not torch.allclose(m(t2)[:, 7:], out[:, 7:], atol=1e-3)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_cache_equals_recompute(n_kv_heads):
    torch.manual_seed(0)
    m = Transformer(tiny(n_kv_heads=n_kv_heads)).eval()
    t = torch.randint(0, 97, (2, 20))
    full = m(t)
    cache = m.new_cache(2, 32)
    parts = [m(t[:, :8], 0, cache), m(t[:, 8:13], 8, cache)]  # prefill, then a chunk
    parts += [m(t[:, i : i + 1], i, cache) for i in range(13, 20)]  # one token at a time
    assert (torch.cat(parts, dim=1) - full).abs().max() < 1e-5


def test_cache_overflow_is_an_error():
    m = Transformer(tiny()).eval()
    cache = m.new_cache(1, 4)
    with pytest.raises(ValueError):
        m(torch.zeros(1, 5, dtype=torch.long), 0, cache)


def test_kv_cache_bytes_follow_kv_heads():
    c_mha = KVCache(1, 128, 8, 16)
    c_gqa = KVCache(1, 128, 2, 16)
    assert c_mha.nbytes() == 4 * c_gqa.nbytes() == 2 * 128 * 8 * 16 * 4


def test_math_impl_matches_sdpa():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    t = torch.randint(0, 97, (2, 9))
    ref = m(t)
    m.set_attn_impl("math")
    assert (m(t) - ref).abs().max() < 1e-5


def test_packed_mask_honoured_or_refused_per_backend():
    """A packed-sequence mask is applied by sdpa and math alike (two examples side by side
    give each one's own logits) and refused in one line by a backend that has only the
    causal rule, never silently handed to another backend."""
    from repro.finetune.packing import document_mask

    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    a, b = torch.randint(0, 97, (1, 5)), torch.randint(0, 97, (1, 4))
    packed = torch.cat([a, b], dim=1)
    doc = torch.tensor([[0] * 5 + [1] * 4])
    positions = torch.tensor([list(range(5)) + list(range(4))])
    alone = torch.cat([m(a), m(b)], dim=1)
    for impl in ("sdpa", "math"):
        m.set_attn_impl(impl)
        with torch.no_grad():
            out = m(packed, positions=positions, mask=document_mask(doc))
        assert (out - alone).abs().max() < 1e-5, impl
    m.set_attn_impl("naive")
    with pytest.raises(ValueError, match="applies only the causal rule"):
        m(packed, positions=positions, mask=document_mask(doc))


def test_repeat_kv_repeats_each_head_for_its_group():
    from repro.llama.model import repeat_kv

    kv = torch.arange(2.0).view(1, 2, 1, 1)  # two KV heads
    assert repeat_kv(kv, 3).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    assert repeat_kv(kv, 1) is kv


def test_project_kernel_selectable():
    pytest.importorskip("repro.attention")
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    t = torch.randint(0, 97, (2, 9))
    ref = m(t)
    cache = m.new_cache(2, 16)
    m(t[:, :5], 0, cache)
    m.set_attn_impl("tiled")
    assert (m(t) - ref).abs().max() < 1e-4
    assert (m(t[:, 5:], 5, cache) - ref[:, 5:]).abs().max() < 1e-4


def test_trains():
    torch.manual_seed(0)
    m = Transformer(tiny())
    t = torch.randint(0, 97, (4, 16))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits = m(t[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 97), t[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bfloat16_keeps_the_rotary_table():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    t = torch.randint(0, 97, (1, 12))
    ref = m(t)
    m.to(torch.bfloat16)
    assert m.freqs_cis.dtype == torch.complex64  # a plain attribute: not cast to real
    assert (m(t) - ref).abs().max() < 0.1


def test_built_on_meta_then_materialised():
    m = build_on_meta(tiny())
    m.to_empty(device="cpu")
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.02)
    assert m(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 97)  # the table is rebuilt lazily
