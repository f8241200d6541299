"""The 2017 Transformer: shapes, masks, label smoothing, the schedule and decoding."""

from __future__ import annotations

import math

import pytest
import torch

from repro.transformer.model import (
    CONFIGS, Transformer, TransformerConfig, beam_search, build_on_meta, config, count_parameters,
    greedy_decode, beam_decode, label_smoothed_loss, length_penalty, make_optimizer, noam_lr,
    scaled_dot_product_attention, sinusoidal_positions,
)




def tiny(**kw):
    base = dict(vocab_size=13, d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, max_len=32)
    base.update(kw)
    return TransformerConfig(**base)


def test_table3_configs():
    assert (CONFIGS["base"].d_model, CONFIGS["base"].d_ff, CONFIGS["base"].n_heads) == (512, 2048, 8)
    assert (CONFIGS["big"].d_model, CONFIGS["big"].d_ff, CONFIGS["big"].n_heads, CONFIGS["big"].dropout) == (1024, 4096, 16, 0.3)
    n_base = count_parameters(build_on_meta(config("base")))
    n_big = count_parameters(build_on_meta(config("big")))
    assert 60e6 < n_base < 66e6 and 205e6 < n_big < 220e6
    with pytest.raises(ValueError):
        config("huge")


def test_shapes_and_shared_embedding():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    src = torch.randint(3, 13, (2, 7))
    tgt = torch.randint(3, 13, (2, 5))
    assert m(src, tgt).shape == (2, 5, 13)
    names = [n for n, _ in m.named_parameters()]
    assert sum("embed" in n for n in names) == 1  # one matrix for source, target and output


def test_decoder_is_causal_and_padding_is_ignored():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    src = torch.randint(3, 13, (1, 6))
    tgt = torch.randint(3, 13, (1, 6))
    out = m(src, tgt)
    tgt2 = tgt.clone()
    tgt2[0, 4:] = 3
    assert torch.allclose(m(src, tgt2)[:, :4], out[:, :4], atol=1e-5)
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1)  # pad id 0
    assert torch.allclose(m(padded, tgt), out, atol=1e-5)


def test_sinusoids():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16)
    assert torch.allclose(pe[:, 0], torch.sin(torch.arange(50.0)))
    assert torch.allclose(pe[:, 1], torch.cos(torch.arange(50.0)))
    assert torch.allclose(pe[7, 14], torch.tensor(math.sin(7 / 10000 ** (14 / 16))), atol=1e-6)


def test_scaled_attention_matches_torch():
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(scaled_dot_product_attention(q, k, v), ref, atol=1e-5)
    assert not torch.allclose(scaled_dot_product_attention(q, k, v, scale=False), ref, atol=1e-3)


def test_label_smoothing_formula():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 11)
    target = torch.randint(1, 11, (4, 6))
    target[0, :2] = 0  # padding
    eps = 0.1
    logp = torch.log_softmax(logits, -1)
    keep = target != 0
    smooth = -(1 - eps) * logp.gather(-1, target[..., None]).squeeze(-1) - eps * logp.mean(-1)
    expected = smooth[keep].mean()
    assert torch.allclose(label_smoothed_loss(logits, target, eps, ignore_index=0), expected, atol=1e-6)
    # with smoothing a one-hot prediction is no longer optimal
    sharp = torch.full((1, 1, 11), -30.0)
    sharp[0, 0, 3] = 30.0
    soft = torch.log(torch.full((1, 1, 11), eps / 11) + torch.nn.functional.one_hot(torch.tensor([[3]]), 11) * (1 - eps))
    t = torch.tensor([[3]])
    assert label_smoothed_loss(soft, t, eps) < label_smoothed_loss(sharp, t, eps)


def test_schedule():
    d, w = 512, 4000
    assert noam_lr(w, d, w) == pytest.approx(d ** -0.5 * w ** -0.5)
    assert noam_lr(100, d, w) == pytest.approx(100 / w * noam_lr(w, d, w))  # linear warmup
    assert noam_lr(4 * w, d, w) == pytest.approx(noam_lr(w, d, w) / 2)  # inverse square root
    assert max(range(1, 10000, 50), key=lambda s: noam_lr(s, d, w)) in range(3950, 4051)
    m = Transformer(tiny(warmup_steps=10))
    opt, sched = make_optimizer(m, m.cfg)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-9
    rates = []
    for _ in range(20):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(noam_lr(1, 32, 10)) and rates[9] == pytest.approx(noam_lr(10, 32, 10))
    assert rates[9] == max(rates)


def toy_step(table):
    """A next-token model given by a table keyed on the prefix length."""
    def step(prefixes):
        return torch.log(torch.tensor([table[min(prefixes.shape[1] - 1, len(table) - 1)]] * prefixes.shape[0]))
    return step


def test_beam_search_beats_greedy_on_a_trap():
    # tokens: 0 bos, 1 eos, 2 a, 3 b. Greedy takes "a" (0.6) but then faces a flat
    # distribution; "b" (0.4) leads to a certain eos. Beam search finds "b eos".
    def step(prefixes):
        rows = []
        for p in prefixes.tolist():
            if len(p) == 1:
                rows.append([1e-9, 1e-9, 0.6, 0.4])
            elif p[-1] == 2:
                rows.append([1e-9, 0.34, 0.33, 0.33])
            else:
                rows.append([1e-9, 0.99, 0.005, 0.005])
        return torch.log(torch.tensor(rows))

    best, score = beam_search(step, bos_id=0, eos_id=1, max_len=5, beam_size=2, alpha=0.0)
    assert best == [3, 1]
    assert score == pytest.approx(math.log(0.4 * 0.99), rel=1e-5)
    greedy, _ = beam_search(step, bos_id=0, eos_id=1, max_len=5, beam_size=1, alpha=0.0)
    assert greedy[0] == 2


def test_length_penalty():
    assert length_penalty(1, 0.6) == 1.0
    assert length_penalty(10, 0.0) == 1.0
    assert length_penalty(20, 0.6) > length_penalty(10, 0.6)


def test_greedy_and_beam_on_a_model():
    torch.manual_seed(0)
    m = Transformer(tiny()).eval()
    src = torch.randint(3, 13, (3, 6))
    g = greedy_decode(m, src, 8)
    assert g.shape[0] == 3 and g.shape[1] <= 8
    b1 = beam_decode(m, src, 8, beam_size=1, alpha=0.0)
    for row, beam in zip(g.tolist(), b1):
        cut = row[: row.index(2) + 1] if 2 in row else row
        assert beam == cut
