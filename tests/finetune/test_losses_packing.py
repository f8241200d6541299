"""The objectives and packing, on tiny hand-made inputs."""

from __future__ import annotations

import math
import random

import pytest

torch = pytest.importorskip("torch")

from repro.finetune.data import ToyWorld  # noqa: E402
from repro.finetune.losses import (  # noqa: E402
    IGNORE,
    MARGINS,
    gae,
    gated_reward,
    lm_loss,
    logit,
    margins_for,
    ppo_policy_loss,
    ppo_rewards,
    whiten,
)
from repro.finetune.packing import document_mask, pack  # noqa: E402
from repro.finetune.sft import dialog_example  # noqa: E402
from repro.llama.model import ModelArgs, Transformer  # noqa: E402
from repro.llama.tokenizer import ByteTokenizer  # noqa: E402


def test_table_27_margins():
    assert MARGINS["small"] == pytest.approx((1, 2 / 3, 1 / 3, 0))
    assert MARGINS["large"] == (3, 2, 1, 0)
    assert margins_for(torch.tensor([3, 0, 1]), "large").tolist() == [0, 3, 2]


def test_safety_gate_and_reward_shaping():
    help_, safe = torch.tensor([0.9, 0.9, 0.9]), torch.tensor([0.5, 0.1, 0.5])
    tagged = torch.tensor([False, False, True])
    # safety used when the prompt is tagged unsafe or the safety score is under 0.15
    assert gated_reward(help_, safe, tagged).tolist() == pytest.approx([0.9, 0.1, 0.5])
    assert logit(torch.tensor([0.5])).item() == pytest.approx(0.0)
    assert logit(torch.sigmoid(torch.tensor([1.3]))).item() == pytest.approx(1.3, abs=1e-5)
    w = whiten(torch.tensor([1.0, 2.0, 3.0]))
    assert w.mean().item() == pytest.approx(0.0, abs=1e-6) and w.std(unbiased=False).item() == pytest.approx(1.0)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    logp, ref = torch.full((2, 3), -1.0), torch.full((2, 3), -1.5)
    rewards, kl = ppo_rewards(torch.tensor([0.2, 0.8]), logp, ref, mask, beta=0.1)
    assert kl.tolist() == pytest.approx([1.0, 1.5])
    # the whitened score lands on each row's last answer token, the KL penalty on every one
    assert rewards[0].tolist() == pytest.approx([-0.05, -0.05 - 1.0, 0.0])
    assert rewards[1].tolist() == pytest.approx([-0.05, -0.05, -0.05 + 1.0])


def test_gae_matches_the_recursion():
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([[0.5, 0.2, 0.1]])
    m = torch.ones(1, 3)
    adv, ret = gae(r, v, m, gamma=0.9, lam=0.8)
    d2 = 1.0 - 0.1
    d1 = 0.0 + 0.9 * 0.1 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.5
    a2, a1 = d2, d1 + 0.72 * d2
    assert adv[0].tolist() == pytest.approx([d0 + 0.72 * a1, a1, a2])
    assert ret[0].tolist() == pytest.approx((adv + v)[0].tolist())


def test_clipped_objective_stops_at_the_clip():
    old = torch.zeros(1, 2)
    adv = torch.tensor([[1.0, -1.0]])
    m = torch.ones(1, 2)
    far = torch.tensor([[math.log(2.0), math.log(0.5)]], requires_grad=True)
    loss = ppo_policy_loss(far, old, adv, m, clip=0.2)
    assert loss.item() == pytest.approx(-(1.2 * 1 + 0.8 * -1) / 2)
    loss.backward()
    assert far.grad.abs().max().item() == 0.0  # both ratios are outside the trust region


def test_dialog_example_masks_prompts_and_earlier_turns():
    tok = ByteTokenizer()
    dialog = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
              {"role": "assistant", "content": "yo"}, {"role": "user", "content": "again"},
              {"role": "assistant", "content": "ok"}]
    ids, labels = dialog_example(dialog, tok)
    kept = [t for t in labels if t != IGNORE]
    assert tok.decode(kept).split() == ["yo", "ok"]
    _, last = dialog_example(dialog, tok, loss_on="last")
    assert tok.decode([t for t in last if t != IGNORE]).split() == ["ok"]
    with pytest.raises(Exception, match="special tags"):
        dialog_example([{"role": "user", "content": "[INST]"}, {"role": "assistant", "content": "x"}], tok)


def test_packed_rows_equal_separate_examples():
    tok = ByteTokenizer()
    world = ToyWorld()
    examples = [dialog_example(d, tok) for d in world.sft_dialogs(3, random.Random(0))]
    n = sum(len(e[0]) for e in examples)
    torch.manual_seed(0)
    model = Transformer(ModelArgs(dim=32, n_layers=1, n_heads=2, vocab_size=tok.n_words, max_seq_len=n,
                                  multiple_of=32))
    b = pack(examples, n)
    assert b.tokens.shape == (1, n)
    packed = model(b.tokens, positions=b.positions, mask=document_mask(b.doc))
    for d, (ids, labels) in enumerate(examples):
        sel = b.doc[0] == d
        alone = model(torch.tensor([ids]))
        assert (packed[0, sel] - alone[0]).abs().max().item() < 1e-5
    # the packed loss is the mean over the same answer tokens as the separate losses
    total = sum(lm_loss(model(torch.tensor([e[0]])), torch.tensor([e[1]])).item() *
                sum(x != IGNORE for x in e[1][1:]) for e in examples)
    count = sum(sum(x != IGNORE for x in e[1][1:]) for e in examples)
    assert lm_loss(packed, b.labels).item() == pytest.approx(total / count, rel=1e-5)


def test_model_extensions_keep_the_default_path():
    torch.manual_seed(0)
    model = Transformer(ModelArgs(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=50, max_seq_len=16,
                                  multiple_of=32))
    x = torch.randint(0, 50, (2, 10))
    plain = model(x)
    explicit = model(x, positions=torch.arange(10).expand(2, 10),
                     mask=torch.ones(10, 10, dtype=torch.bool).tril()[None, None].expand(2, 1, 10, 10))
    assert (plain - explicit).abs().max().item() < 1e-5
    h = model(x, hidden=True)
    assert h.shape == (2, 10, 32)
    assert (model.output(h).float() - plain).abs().max().item() < 1e-5
