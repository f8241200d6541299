"""Our losses against TRL's on the same batch (TRL is a test dependency only)."""

from __future__ import annotations

import random
from collections import defaultdict
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from repro.finetune.data import ToyWorld  # noqa: E402
from repro.finetune.dpo import pair_examples, sequence_logprobs  # noqa: E402
from repro.finetune.losses import dpo_loss, margins_for, ranking_loss  # noqa: E402
from repro.finetune.packing import pad_right  # noqa: E402
from repro.llama.model import ModelArgs, Transformer  # noqa: E402


class _Accel:
    device = torch.device("cpu")

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather


def _trainer_stub(**fields):
    base = dict(accelerator=_Accel(), _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                _total_train_tokens=0, _tp_size=1)
    base.update(fields)
    return SimpleNamespace(**base)


def test_reward_margin_loss_matches_trl():
    from trl.trainer.reward_trainer import RewardTrainer

    g = torch.Generator().manual_seed(0)
    rc, rr = torch.randn(8, generator=g), torch.randn(8, generator=g)
    levels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    for table in ("small", "large", "none"):
        m = margins_for(levels, table)
        ours = ranking_loss(rc, rr, m)
        logits = torch.cat([rc, rr]).unsqueeze(-1)  # TRL's batch: chosen rows, then rejected rows
        model = SimpleNamespace(training=True)
        stub = _trainer_stub(model=model, args=SimpleNamespace(center_rewards_coefficient=None))
        inputs = {"input_ids": torch.zeros(16, 3, dtype=torch.long), "attention_mask": torch.ones(16, 3),
                  "margin": m}
        theirs = RewardTrainer.compute_loss(stub, lambda **kw: SimpleNamespace(logits=logits), inputs)
        assert abs(float(ours) - float(theirs)) <= 1e-6, table


def test_dpo_sigmoid_loss_matches_trl(tmp_path):
    """Log-probabilities: ours from our Transformer, TRL's from transformers' LlamaForCausalLM
    with the same weights through TRL's fused LM head; then each side's loss."""
    from trl.trainer.dpo_trainer import DPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    from repro.llama.weights import to_transformers

    world = ToyWorld()
    tok = world.tokenizer(tmp_path)
    torch.manual_seed(0)
    args = ModelArgs(dim=32, n_layers=2, n_heads=2, vocab_size=tok.n_words, max_seq_len=64, multiple_of=32)
    policy, ref = Transformer(args).eval(), Transformer(args).eval()
    pairs = world.pairs(4, random.Random(1))
    ex = pair_examples(pairs, tok)
    seqs = [e[0] for e in ex] + [e[1] for e in ex]
    beta = 0.1
    with torch.no_grad():
        lp, lr = sequence_logprobs(policy, seqs), sequence_logprobs(ref, seqs)
        ours = dpo_loss(lp[:4], lp[4:], lr[:4], lr[4:], beta)

        hf = to_transformers(policy).eval()
        add_fused_lm_head(hf, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
        ids = pad_right([s[0] for s in seqs])
        n = ids.shape[1]
        attention = torch.zeros_like(ids)
        completion = torch.zeros_like(ids)
        for i, (tokens, labels) in enumerate(seqs):
            attention[i, :len(tokens)] = 1
            completion[i, :len(tokens)] = torch.tensor([int(x != -100) for x in labels])
        hf.training = False
        stub = _trainer_stub(model=hf, aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
                             f_divergence_type="reverse_kl", loss_types=["sigmoid"], loss_weights=[1.0], beta=beta,
                             label_smoothing=0.0, use_weighting=False)
        inputs = {"input_ids": ids, "attention_mask": attention, "completion_mask": completion,
                  "ref_chosen_logps": lr[:4], "ref_rejected_logps": lr[4:]}
        theirs = DPOTrainer._compute_loss(stub, hf, inputs, return_outputs=False)
    assert n > 0
    assert abs(float(ours) - float(theirs)) <= 1e-6, (float(ours), float(theirs))
