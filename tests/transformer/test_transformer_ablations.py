"""Table 3 ablation proxies (repro/transformer/ablations.py): the seed rules, the task's
held-out split, the sabotaged variants, and that every check can fail."""

from __future__ import annotations

import math

import pytest
import torch

from repro.registry import get, run_inline
from repro.transformer import ablations as ab

HEADS, POSITIONS = "transformer/table3-heads", "transformer/table3-positions"
# a few steps of a tiny model: enough to exercise the code paths in well under a second each
TINY = {"steps": 3, "batch": 8, "eval_size": 40, "src_len": 4, "d_model": 8, "d_ff": 16}


def test_both_experiments_registered_with_controls():
    assert {c.name for c in get(HEADS).controls} == {"identical-heads", "head-count-ignored"}
    assert {c.name for c in get(POSITIONS).controls} == {"zeroed-learned-positions"}
    for exp_id in (HEADS, POSITIONS):
        for preset in ("smoke", "full"):
            assert len(get(exp_id).resolve_params(preset)["seeds"]) >= 3


def test_paired_gap_rule_every_seed_and_noise_band():
    consistent = ab.paired_gap([2.2, 1.6, 2.3], [1.7, 1.3, 1.8])
    assert consistent.min > 0 and consistent.mean - consistent.noise_band() > 0
    one_seed_against = ab.paired_gap([2.2, 1.2, 2.3], [1.7, 1.3, 1.8])
    assert one_seed_against.min < 0
    # right direction on every seed but spread wider than the mean: not over the noise band
    noisy = ab.paired_gap([2.878, 1.827, 1.802], [2.055, 1.318, 1.767])
    assert noisy.min > 0 and noisy.mean - noisy.noise_band() < 0
    tied = ab.paired_gap([1.5, 1.5, 1.5], [1.5, 1.5, 1.5])
    assert tied.min == 0 and tied.t == 0 and not tied.mean - tied.noise_band() > 0
    with pytest.raises(ValueError):
        ab.paired_gap([1.0, 2.0], [1.0])
    assert ab.t95(3) == pytest.approx(2.920) and math.isinf(ab.t95(1))


def test_best_setting_by_mean_over_seeds():
    ppl = {1: [2.0, 2.0], 4: [1.5, 1.9], 16: [1.2, 2.4]}
    assert ab.best_setting(ppl, [4, 16]) == 4  # mean 1.7 against 1.8
    assert ab.best_setting({1: [1.0], 4: [1.0]}, [4, 1]) == 4  # a tie keeps the listed order


def test_heldout_sources_never_drawn_for_training():
    gen = torch.Generator().manual_seed(0)
    train = ab._draw(gen, 4000, 8, 4, heldout=False)[0]
    held = ab._draw(torch.Generator().manual_seed(999), 1000, 8, 4, heldout=True)[0]
    assert not ab._is_heldout(train[:, :-1] - ab.FIRST_SYMBOL).any()
    assert ab._is_heldout(held[:, :-1] - ab.FIRST_SYMBOL).all()
    assert not {tuple(r) for r in train.tolist()} & {tuple(r) for r in held.tolist()}


def test_task_merges_pairs_in_order():
    src, tgt_in, tgt_out = ab._draw(torch.Generator().manual_seed(1), 5, 6, 3, heldout=False)
    x = src[:, :-1] - ab.FIRST_SYMBOL
    y = tgt_out[:, :-1] - ab.FIRST_SYMBOL
    assert torch.equal(y, x[:, 0::2] * 3 + x[:, 1::2])
    assert (src[:, -1] == ab.EOS).all() and (tgt_in[:, 0] == ab.BOS).all() and (tgt_out[:, -1] == ab.EOS).all()


def test_identical_heads_stay_tied_through_training():
    from repro.transformer.model import Transformer, TransformerConfig

    model = Transformer(TransformerConfig(vocab_size=10, d_model=8, n_layers=1, n_heads=4, d_ff=16, max_len=6))
    from repro.transformer.controls import identical_heads

    identical_heads(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    src = torch.randint(3, 10, (4, 5))
    model.loss(src, src, src).backward()
    opt.step()
    w = model.encoder[0].self_attn.w_q.weight  # (d_model, d_model): 4 blocks of 2 rows
    assert all(torch.equal(w[:2], w[i : i + 2]) for i in (2, 4, 6))
    assert not torch.equal(w[:2], w[:2].flip(0))  # not trivially tied (e.g. all zeros)


def test_learned_positions_train_and_zeroed_ones_carry_nothing():
    from repro.transformer.model import Transformer, TransformerConfig

    cfg = TransformerConfig(vocab_size=10, d_model=8, n_layers=1, n_heads=2, d_ff=16, max_len=6)
    model = Transformer(cfg)
    ab._use_learned_positions(model)
    assert isinstance(model.pe, torch.nn.Parameter)
    src = torch.randint(3, 10, (4, 5))
    model.loss(src, src, src).backward()
    assert model.pe.grad is not None and model.pe.grad[:5].abs().sum() > 0
    from repro.transformer.controls import zeroed_positions

    zeroed = Transformer(cfg)
    ab._use_learned_positions(zeroed)
    zeroed_positions(zeroed)
    assert not isinstance(zeroed.pe, torch.nn.Parameter) and not zeroed.pe.any()


def test_bad_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 3 seeds"):
        run_inline(HEADS, run_dir=tmp_path, seeds=[0, 1], **TINY)
    with pytest.raises(ValueError, match="heads must hold 1"):
        run_inline(HEADS, run_dir=tmp_path, heads=[2, 4, 8], **TINY)
    with pytest.raises(ValueError, match="src_len must be even"):
        run_inline(POSITIONS, run_dir=tmp_path, **{**TINY, "src_len": 5})


def test_ignored_head_count_cannot_pass(tmp_path):
    # every setting trains the same one-head model: the gaps are exactly 0 and both rules fail
    r = run_inline(HEADS, run_dir=tmp_path, control="head-count-ignored", heads=[1, 2, 4], **TINY)
    assert r.verdict == "contradicted"
    checks = {c.name: c for c in r.checks}
    assert checks["single_head_gap_every_seed"].value == 0 and not checks["single_head_gap_every_seed"].passed
    assert all(c.evidence == "proxy" for c in r.checks)


def test_untrained_positions_fail_the_learning_precondition(tmp_path):
    r = run_inline(POSITIONS, run_dir=tmp_path, **TINY)
    assert r.verdict == "contradicted"
    assert not {c.name: c for c in r.checks}["sinusoidal_learns_task"].passed


@pytest.mark.slow
@pytest.mark.parametrize(
    "exp_id, control, failing",
    [
        (HEADS, "identical-heads", "single_head_gap_every_seed"),
        (POSITIONS, "zeroed-learned-positions", "learned_learns_task"),
    ],
)
def test_controls_end_contradicted_at_smoke(exp_id, control, failing, tmp_path):
    r = run_inline(exp_id, "smoke", run_dir=tmp_path, control=control)
    assert r.verdict == "contradicted"
    assert not {c.name: c for c in r.checks}[failing].passed
