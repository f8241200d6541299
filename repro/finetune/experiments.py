"""Experiments behind the Llama 2 note's fine-tuning claims (Section 3).

Each runs on a synthetic world whose hidden rules the code knows (``repro.finetune.data``)
with a tiny Llama (word-level tokenizer, dim 32-64): the checks are our code at toy scale,
so a check on a property of the paper's method is "proxy" evidence, while checks of an
exact mechanism (masked gradients) are "direct". Each declares a negative control, a
sabotaged variant of the step, which must end "contradicted".

No torch at module level: ``paperkb experiments`` imports this file to list the ids.
"""

from __future__ import annotations

from repro.registry import Control, Param, Preset, experiment
from repro.threads import torch_threads


# ---------------------------------------------------------------------------------------
# Shared set-up
# ---------------------------------------------------------------------------------------
def _tiny(vocab: int, dim: int, n_layers: int, max_seq_len: int, seed: int):
    import torch

    from repro.llama.model import ModelArgs, Transformer

    torch.manual_seed(seed)
    heads = max(2, dim // 16)
    return Transformer(ModelArgs(dim=dim, n_layers=n_layers, n_heads=heads, vocab_size=vocab,
                                 max_seq_len=max_seq_len, multiple_of=32))


def _world(ctx):
    import tempfile

    from repro.finetune.data import ToyWorld

    world = ToyWorld(seed=ctx.seed)
    tok = world.tokenizer(tempfile.mkdtemp(prefix="paperkb-toy-tok-"))
    return world, tok


def _plot(ctx, filename: str, series: dict, xlabel: str, ylabel: str, title: str, logx: bool = False):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    try:
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(ctx.artifact_path(filename))
    finally:
        plt.close(fig)


def _sft_policy(ctx, world, tok, steps: int, dim: int, prefix: str = "sft"):
    """A tiny policy fine-tuned on demonstrations of the answer format (random words)."""
    import random

    from repro.finetune.loop import OptimConfig
    from repro.finetune.sft import SFTConfig, dialog_example, train_sft

    model = _tiny(tok.n_words, dim, 2, 64, ctx.seed)
    rng = random.Random(ctx.seed + 11)
    examples = [dialog_example(d, tok) for d in world.sft_dialogs(2000, rng)]
    train_sft(model, examples, SFTConfig(steps=steps, batch_size=32, seq_len=64, seed=ctx.seed),
              OptimConfig(lr=3e-3, warmup_steps=10, total_steps=steps),
              on_step=lambda s, m: ctx.log_metric(f"{prefix}_loss", m["loss"], s) if s % 10 == 0 else None)
    return model.eval()


def _reward_model(ctx, world, tok, backbone, steps: int, margin: str = "small", margin_sign: float = 1.0,
                  n_pairs: int = 4000, prefix: str = "rm"):
    import random

    from repro.finetune.heads import ScalarHeadModel, copy_backbone
    from repro.finetune.loop import OptimConfig
    from repro.finetune.reward import RewardConfig, pair_tokens, train_reward

    rng = random.Random(ctx.seed + 23)
    train_pairs = world.pairs(n_pairs, rng)
    data = pair_tokens(train_pairs, tok)
    import torch

    torch.manual_seed(ctx.seed + 1)
    rm = ScalarHeadModel(copy_backbone(backbone))
    train_reward(rm, data, RewardConfig(steps=steps, batch_size=32, margin=margin, margin_sign=margin_sign,
                                        seed=ctx.seed),
                 OptimConfig(lr=2e-3, warmup_steps=10, total_steps=steps),
                 on_step=lambda s, m: ctx.log_metric(f"{prefix}_loss", m["loss"], s) if s % 10 == 0 else None)
    seen = {p.chosen for p in train_pairs} | {p.rejected for p in train_pairs}
    return rm.eval(), seen


def _prompts(world, tok, n: int, seed: int) -> list:
    import random

    rng = random.Random(seed)
    return [tok.encode(f"[INST] {world.prompt(rng)} [/INST]", bos=True) for _ in range(n)]


def _gold(world, tok, answers) -> list[float]:
    return [world.score(tok.decode([t for t in a if t != tok.eos_id])) for a in answers]


# ---------------------------------------------------------------------------------------
# 1. Prompt masking and packing (3.1)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/prompt-masking",
    "SFT zeroes the loss on prompt tokens (their logit gradients are exactly 0) and packs several "
    "examples per sequence without attention or positions crossing example boundaries",
    params=[Param("dim", int, 32, "model width"), Param("n_layers", int, 2),
            Param("n_examples", int, 4, "examples packed into one row")],
    presets={"smoke": Preset(description="one packed row of 4 chat examples, dim 32, ~2 s"),
             "full": Preset(params={"dim": 256, "n_layers": 4, "n_examples": 16},
                            description="dim 256, 4 layers, 16 examples per row")},
    controls=[Control("prompt-in-loss", "labels keep the prompt tokens (no masking)"),
              Control("packing-leaks", "packed rows use one causal mask and running positions")],
)
def prompt_masking(ctx):
    import random

    import torch

    from repro.finetune.data import ToyWorld
    from repro.finetune.losses import IGNORE, lm_loss
    from repro.finetune.packing import document_mask, pack
    from repro.finetune.sft import dialog_example
    from repro.llama.tokenizer import ByteTokenizer

    p = ctx.params
    tok = ByteTokenizer()
    world = ToyWorld(seed=ctx.seed)
    rng = random.Random(ctx.seed)
    examples = [dialog_example(d, tok) for d in world.sft_dialogs(p["n_examples"], rng)]
    # where the prompt is, from the real labels (the control below overwrites them)
    is_prompt = torch.tensor([t == IGNORE for t in examples[0][1][1:]])
    if ctx.control == "prompt-in-loss":
        examples = [(ids, list(ids)) for ids, _ in examples]
    seq_len = sum(len(e[0]) for e in examples)
    with torch_threads(1):
        model = _tiny(tok.n_words, p["dim"], p["n_layers"], seq_len, ctx.seed)

        # (a) prompt positions: d loss / d logits is exactly zero where the next label is -100
        ids, labels = examples[0]
        logits = model(torch.tensor([ids]))
        logits.retain_grad()
        lm_loss(logits, torch.tensor([labels])).backward()
        prompt_grad = logits.grad[0, :-1][is_prompt].abs().max().item()
        answer_grad = logits.grad[0, :-1][~is_prompt].abs().max().item()
        ctx.log_metric("prompt_logit_grad_max", prompt_grad)
        ctx.log_metric("answer_logit_grad_max", answer_grad)
        ctx.check("prompt_logit_grad_max", prompt_grad, "==", 0.0,
                  "gradient of the SFT loss w.r.t. the logits at prompt positions is exactly zero")
        ctx.check("answer_logit_grad_max", answer_grad, ">", 0.0, "answer positions do get a gradient")

        # (b) packing: each example's logits equal those it gets alone; no gradient crosses over
        b = pack(examples, seq_len)
        if ctx.control == "packing-leaks":
            mask = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()[None, None]
            positions = torch.arange(seq_len)[None]
        else:
            mask, positions = document_mask(b.doc), b.positions
        captured = {}
        hook = model.tok_embeddings.register_forward_hook(lambda m, i, o: captured.setdefault("emb", o))
        packed_logits = model(b.tokens, positions=positions, mask=mask)
        hook.remove()
        emb = captured["emb"]
        worst, cross_grad = 0.0, 0.0
        row, doc = 0, b.doc[0]
        for d in range(int(doc.max()) + 1):
            sel = doc == d
            alone = model(b.tokens[row:row + 1, sel])
            worst = max(worst, (packed_logits[row, sel] - alone[0]).abs().max().item())
        last = int(doc.max())
        sel_last = doc == last
        g = torch.autograd.grad(packed_logits[row, sel_last].sum(), emb)[0]
        cross_grad = g[row, ~sel_last & (doc >= 0)].abs().max().item()
        ctx.log_metric("packed_vs_alone_max_abs", worst)
        ctx.log_metric("cross_example_grad_max", cross_grad)
        ctx.check("packed_vs_alone_max_abs", worst, "<=", 1e-5,
                  "an example's logits in a packed row equal its logits alone (fp32)")
        ctx.check("cross_example_grad_max", cross_grad, "==", 0.0,
                  "the last example's outputs have exactly zero gradient w.r.t. the other examples' inputs")
    return ctx.result(f"prompt grad {prompt_grad:g}, packed-vs-alone {worst:.2e}, cross grad {cross_grad:g}")


# ---------------------------------------------------------------------------------------
# 2. Reward-model margin (3.2.2, Tables 8, 27, 28)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/reward-margin",
    "On preferences with rating levels, the margin term of the ranking loss separates the "
    "well-separated pairs more and does not lose accuracy on them (Table 28's direction); "
    "accuracy falls from 'significantly better' to 'negligibly better' pairs (Table 8's shape)",
    params=[Param("dim", int, 32), Param("steps", int, 150, "reward-model steps per run"),
            Param("margin", str, "large", "Table 27 margin table", choices=("small", "large")),
            Param("n_pairs", int, 4000, "training pairs"), Param("n_test", int, 2000, "held-out pairs"),
            Param("threads", int, 1)],
    presets={"smoke": Preset(description="two reward models of dim 32, 150 steps each, ~20 s"),
             "full": Preset(params={"dim": 64, "steps": 600, "n_pairs": 20000, "n_test": 5000},
                            description="dim 64, 600 steps, 20k pairs")},
    controls=[Control("margin-wrong-sign", "the margin is added instead of subtracted: -log σ(Δr + m)")],
)
def reward_margin(ctx):
    import random

    from repro.finetune.reward import accuracy_by_level, pair_tokens

    p = ctx.params
    with torch_threads(p["threads"]):
        world, tok = _world(ctx)
        base = _tiny(tok.n_words, p["dim"], 2, 64, ctx.seed)
        sign = -1.0 if ctx.control == "margin-wrong-sign" else 1.0
        results = {}
        seen_all = set()
        for label, table, s in (("no_margin", "none", 1.0), ("margin", p["margin"], sign)):
            rm, seen = _reward_model(ctx, world, tok, base, p["steps"], table, s, p["n_pairs"], prefix=f"{label}_loss")
            seen_all |= seen
            results[label] = rm
        test = pair_tokens(world.pairs(p["n_test"], random.Random(ctx.seed + 99), exclude=seen_all), tok)
        table = {label: accuracy_by_level(rm, test) for label, rm in results.items()}
    for label, levels in table.items():
        for name, v in levels.items():
            key = name.replace(" ", "_")
            ctx.log_metric(f"{label}_acc_{key}", v["accuracy"])
            ctx.log_metric(f"{label}_gap_{key}", v["mean_gap"])
        ctx.log(f"{label}: " + ", ".join(f"{n} {v['accuracy']:.3f} (gap {v['mean_gap']:.2f}, n={v['n']})"
                                         for n, v in levels.items()))
    sig = "significantly better"
    neg = "negligibly better"
    m, n = table["margin"], table["no_margin"]
    ctx.check("gap_sig_margin_minus_none", m[sig]["mean_gap"] - n[sig]["mean_gap"], ">", 0.0,
              "the margin widens the reward gap of 'significantly better' pairs", evidence="proxy")
    ctx.check("acc_sig_margin_minus_none", m[sig]["accuracy"] - n[sig]["accuracy"], ">=", 0.0,
              "accuracy on 'significantly better' pairs with the margin is at least that without "
              "(Table 28: the margin helps most on separable pairs)", evidence="proxy")
    ctx.check("acc_sig_minus_negligible", m[sig]["accuracy"] - m[neg]["accuracy"], ">", 0.0,
              "accuracy is higher on 'significantly better' than 'negligibly better' pairs (Table 8)",
              evidence="proxy")
    _plot(ctx, "accuracy_by_level.png",
          {label: (list(range(4)), [levels.get(lv, {}).get("accuracy", float("nan")) for lv in
                                    ("significantly better", "better", "slightly better", "negligibly better")])
           for label, levels in table.items()},
          "rating level (0 = significantly better)", "held-out accuracy", "Reward-model accuracy per rating level")
    return ctx.result(f"sig-better accuracy {n[sig]['accuracy']:.3f} -> {m[sig]['accuracy']:.3f} with the "
                      f"{p['margin']} margin; gap {n[sig]['mean_gap']:.2f} -> {m[sig]['mean_gap']:.2f}")


# ---------------------------------------------------------------------------------------
# 3. Rejection sampling (3.2.3, Figures 7 and 8)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/rejection-sampling",
    "Best-of-K by the reward model: the maximum reward among K samples rises with K while the "
    "median stays flat, so the gap widens (Figure 7); fine-tuning on the best answers raises the "
    "policy's true reward",
    params=[Param("dim", int, 32), Param("sft_steps", int, 60), Param("rm_steps", int, 150),
            Param("prompts", int, 32, "prompts sampled"), Param("k_max", int, 32, "samples per prompt"),
            Param("temperatures", list, [0.5, 1.0, 1.5], "Figure 8's sweep"),
            Param("rs_steps", int, 60, "fine-tuning steps on the kept answers"), Param("threads", int, 1)],
    presets={"smoke": Preset(description="dim 32, 32 prompts x 32 samples, ~30 s"),
             "full": Preset(params={"dim": 64, "sft_steps": 200, "rm_steps": 600, "prompts": 128,
                                    "k_max": 64, "rs_steps": 200},
                            description="dim 64, 128 prompts x 64 samples")},
    controls=[Control("random-pick", "the kept answer is an arbitrary sample, not the reward model's best")],
)
def rejection_sampling(ctx):
    import math

    import torch

    from repro.finetune.loop import OptimConfig
    from repro.finetune.rejection import reward_vs_k, sample_and_score, select
    from repro.finetune.rollout import sample
    from repro.finetune.sft import SFTConfig, train_sft

    p = ctx.params
    with torch_threads(p["threads"]):
        world, tok = _world(ctx)
        policy = _sft_policy(ctx, world, tok, p["sft_steps"], p["dim"])
        rm, _ = _reward_model(ctx, world, tok, policy, p["rm_steps"])
        prompts = _prompts(world, tok, p["prompts"], ctx.seed + 5)
        ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= p["k_max"]]
        gen = torch.Generator().manual_seed(ctx.seed)
        curves = {}
        kept_answers = None
        for temp in p["temperatures"]:
            answers, rewards = sample_and_score(policy, rm, prompts, p["k_max"], world.answer_len + 2, float(temp),
                                                tok.eos_id, gen)
            curves[float(temp)] = reward_vs_k(rewards, ks)
            if math.isclose(float(temp), 1.0):
                kept_answers = select(answers, rewards, "random" if ctx.control == "random-pick" else "best", gen)
                gold_all = _gold(world, tok, [a for row in answers for a in row])
        if kept_answers is None:
            raise ValueError("the temperature sweep must include 1.0 (the sampling temperature of the RS round)")
        for temp, curve in curves.items():
            for k, v in curve.items():
                ctx.log_metric(f"max_reward_T{temp:g}", v["max"], k)
                ctx.log_metric(f"median_reward_T{temp:g}", v["median"], k)
        c = curves[1.0]
        k1, kn = ks[0], ks[-1]
        rise_max = c[kn]["max"] - c[k1]["max"]
        drift_median = abs(c[kn]["median"] - c[k1]["median"])
        gaps = [c[k]["max"] - c[k]["median"] for k in ks]
        ctx.check("max_reward_rise", rise_max, ">", 0.0, f"max reward among K rises from K={k1} to K={kn}",
                  evidence="proxy")
        ctx.check("median_drift_over_max_rise", drift_median / max(rise_max, 1e-9), "<", 0.25,
                  "the median moves by less than a quarter of the maximum's rise (flat, Figure 7)",
                  evidence="proxy")
        widening = sum(b > a for a, b in zip(gaps, gaps[1:])) / max(1, len(gaps) - 1)
        ctx.check("gap_widens_fraction", widening, "==", 1.0, "max - median grows at every doubling of K",
                  evidence="proxy")

        # one round of rejection-sampling fine-tuning on the kept answers
        from repro.finetune.losses import answer_only_labels

        examples = [answer_only_labels(prompt_ids, ans if ans[-1:] == [tok.eos_id] else ans + [tok.eos_id])
                    for prompt_ids, ans in zip(prompts, kept_answers)]
        train_sft(policy, examples, SFTConfig(steps=p["rs_steps"], batch_size=16, seq_len=64, seed=ctx.seed + 3),
                  OptimConfig(lr=1e-3, total_steps=p["rs_steps"]),
                  on_step=lambda s, m: ctx.log_metric("rs_sft_loss", m["loss"], s) if s % 10 == 0 else None)
        policy.eval()
        test_prompts = _prompts(world, tok, 256, ctx.seed + 777)
        with torch.no_grad():
            after = sample(policy, test_prompts, world.answer_len + 2, 1.0, tok.eos_id, gen)
        gold_before = sum(gold_all) / len(gold_all)
        std_before = (sum((g - gold_before) ** 2 for g in gold_all) / len(gold_all)) ** 0.5
        gold_after = sum(_gold(world, tok, after.answers)) / len(after.answers)
        ctx.log_metric("gold_reward_before", gold_before)
        ctx.log_metric("gold_reward_after", gold_after)
        ctx.check("gold_rise_in_sd", (gold_after - gold_before) / max(std_before, 1e-9), ">=", 0.5,
                  "one round of fine-tuning on the best of K raises the true (hidden-rule) reward by at least "
                  "half a standard deviation of the SFT policy's rewards", evidence="proxy")
    _plot(ctx, "reward_vs_k.png",
          {**{f"max T={t:g}": (ks, [cv[k]["max"] for k in ks]) for t, cv in curves.items()},
           "median T=1": (ks, [c[k]["median"] for k in ks])},
          "K (samples per prompt)", "reward-model score", "Rejection sampling: reward vs K (Figures 7-8)", logx=True)
    best_t = max(curves, key=lambda t: curves[t][kn]["max"])
    return ctx.result(f"max reward {c[k1]['max']:.2f} -> {c[kn]['max']:.2f} (K {k1}->{kn}), median "
                      f"{c[k1]['median']:.2f} -> {c[kn]['median']:.2f}; best temperature at K={kn}: {best_t:g}; "
                      f"true reward {gold_before:.2f} -> {gold_after:.2f} after one RS round")
