"""Experiments behind the Llama 2 note's fine-tuning claims (Section 3).

Each runs on a synthetic world whose hidden rules the code knows (``repro.finetune.data``)
with a tiny Llama (word-level tokenizer, dim 32-64): the checks are our code at toy scale,
so a check on a property of the paper's method is "proxy" evidence, while checks of an
exact mechanism (masked gradients) are "direct". Each declares a negative control, a
sabotaged variant of the step, which must end "contradicted".

No torch at module level: ``paperkb experiments`` imports this file to list the ids.
"""

from __future__ import annotations

from repro.registry import Control, Metric, Param, Preset, Result, RunContext, experiment


# ---------------------------------------------------------------------------------------
# 1. Prompt masking and packing (3.1)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/prompt-masking",
    "SFT zeroes the loss on prompt tokens (their logit gradients are exactly 0) and packs several "
    "examples per sequence without attention or positions crossing example boundaries",
    params=[
        Param("dim", int, 32, "model width", bounds=(1, 4096)),
        Param("n_layers", int, 2, bounds=(1, 64)),
        Param("n_examples", int, 4, "examples packed into one row", bounds=(1, 1024)),
    ],
    presets={
        "smoke": Preset(description="one packed row of 4 chat examples, dim 32, ~2 s"),
        "full": Preset(
            params={"dim": 256, "n_layers": 4, "n_examples": 16}, description="dim 256, 4 layers, 16 examples per row"
        ),
    },
    controls=[
        Control("prompt-in-loss", "labels keep the prompt tokens (no masking)"),
        Control("packing-leaks", "packed rows use one causal mask and running positions"),
    ],
    metrics=[
        Metric("prompt_logit_grad_max", "abs", "largest loss gradient on a prompt token's logits (must be 0)"),
        Metric("answer_logit_grad_max", "abs", "largest loss gradient on an answer token's logits"),
        Metric("packed_vs_alone_max_abs", "abs", "packed examples' logits against each example alone"),
        Metric("cross_example_grad_max", "abs", "gradient reaching one example from another's loss"),
    ],
)
def prompt_masking(ctx: RunContext) -> Result:
    from repro.finetune import workloads

    return workloads.prompt_masking(ctx)


# ---------------------------------------------------------------------------------------
# 2. Reward-model margin (3.2.2, Tables 8, 27, 28)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/reward-margin",
    "On preferences with rating levels, the margin term of the ranking loss separates the "
    "well-separated pairs more and does not lose accuracy on them (Table 28's direction); "
    "accuracy falls from 'significantly better' to 'negligibly better' pairs (Table 8's shape)",
    params=[
        Param("dim", int, 32, bounds=(1, 4096)),
        Param("steps", int, 60, "reward-model steps per run", bounds=(1, 1000000)),
        Param(
            "n_words",
            int,
            96,
            "content words of the toy world: with 24 a reward model learns the rule to the annotators' own "
            "noise (0.993 on every level it can reach); 96 keeps the levels off that ceiling",
            bounds=(2, 100000),
        ),
        Param("margin", str, "large", "Table 27 margin table", choices=("small", "large")),
        Param("n_pairs", int, 4000, "training pairs", bounds=(1, 10000000)),
        Param("n_test", int, 2000, "held-out pairs", bounds=(1, 10000000)),
        Param("threads", int, 1, bounds=(0, 1024)),
    ],
    presets={
        "smoke": Preset(description="two reward models of dim 32, 60 steps each, ~15 s"),
        "full": Preset(
            params={"dim": 64, "steps": 600, "n_pairs": 20000, "n_test": 5000},
            description="dim 64, 600 steps, 20k pairs",
        ),
    },
    controls=[Control("margin-wrong-sign", "the margin is added instead of subtracted: -log σ(Δr + m)")],
    metrics=[
        Metric("acc_sig_margin_minus_none", "", "accuracy on significantly-better pairs, margin loss minus plain loss"),
        Metric(
            "acc_sig_margin_minus_none_z", "", "that difference over its binomial standard error (non-inferiority z)"
        ),
        Metric("{model}_acc_{level}", "fraction", "held-out pair accuracy per preference level"),
        Metric("{model}_gap_{level}", "reward", "mean reward gap per preference level"),
        Metric("{stage}_loss", "nats/token", "training loss of a stage (sft, rm, ...), every 10 steps"),
    ],
    stochastic=True,
    seeds={"smoke": (0, 1, 2), "full": (0, 1, 2, 3, 4)},
)
def reward_margin(ctx: RunContext) -> Result:
    from repro.finetune import workloads

    return workloads.reward_margin(ctx)


# ---------------------------------------------------------------------------------------
# 3. Rejection sampling (3.2.3, Figures 7 and 8)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/rejection-sampling",
    "Best-of-K by the reward model: the maximum reward among K samples rises with K while the "
    "median stays flat, so the gap widens (Figure 7); fine-tuning on the best answers raises the "
    "policy's true reward",
    params=[
        Param("dim", int, 32, bounds=(1, 4096)),
        Param("sft_steps", int, 60, bounds=(1, 1000000)),
        Param("rm_steps", int, 150, bounds=(1, 1000000)),
        Param("prompts", int, 32, "prompts sampled", bounds=(1, 100000)),
        Param("k_max", int, 32, "samples per prompt", bounds=(1, 10000)),
        Param("temperatures", list, [0.5, 1.0, 1.5], "Figure 8's sweep", bounds=(0.0, 100.0)),
        Param("rs_steps", int, 60, "fine-tuning steps on the kept answers", bounds=(1, 1000000)),
        Param("threads", int, 1, bounds=(0, 1024)),
    ],
    presets={
        "smoke": Preset(description="dim 32, 32 prompts x 32 samples, ~30 s"),
        "full": Preset(
            params={"dim": 64, "sft_steps": 200, "rm_steps": 600, "prompts": 128, "k_max": 64, "rs_steps": 200},
            description="dim 64, 128 prompts x 64 samples",
        ),
    },
    controls=[
        Control("random-pick", "the kept answer is an arbitrary sample, not the reward model's best"),
        Control(
            "shuffled-rm",
            "an uninformative reward model: each prompt's scores permuted at random among its answers",
        ),
    ],
    metrics=[
        Metric("gold_of_best_of_k", "reward", "gold reward of the answer the reward model picks among k"),
        Metric(
            "gold_of_shuffled_rm_pick",
            "reward",
            "gold reward of the answer a shuffled (uninformative) reward model picks",
        ),
        Metric("gold_gain_over_shuffled_rm", "reward", "the first minus the second"),
        Metric("gold_gain_over_shuffled_rm_z", "", "that gain over its standard error"),
        Metric("max_reward_T{temperature}", "reward", "best-of-k reward per k at a temperature"),
        Metric("median_reward_T{temperature}", "reward", "median reward per k at a temperature"),
        Metric("rs_sft_loss", "nats/token", "fine-tuning loss on the kept answers"),
        Metric("gold_reward_before", "reward", "gold reward of the policy before rejection-sampling fine-tuning"),
        Metric("gold_reward_after", "reward", "the same after"),
        Metric("{stage}_loss", "nats/token", "training loss of a stage (sft, rm, ...), every 10 steps"),
    ],
    stochastic=True,
    seeds={"smoke": (0, 1, 2), "full": (0, 1, 2, 3, 4)},
)
def rejection_sampling(ctx: RunContext) -> Result:
    from repro.finetune import workloads

    return workloads.rejection_sampling(ctx)


# ---------------------------------------------------------------------------------------
# 4. PPO with a KL penalty (3.2.3)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/ppo-kl",
    "PPO on R = whiten(logit(R_c)) - β·KL raises the reward while the KL to the initial policy stays "
    "bounded, and a smaller β lets the KL grow larger",
    params=[
        Param("dim", int, 32, bounds=(1, 4096)),
        Param("sft_steps", int, 60, bounds=(1, 1000000)),
        Param("rm_steps", int, 150, bounds=(1, 1000000)),
        Param("iterations", int, 25, "PPO iterations per β", bounds=(1, 100000)),
        Param("batch", int, 32, "prompts per iteration", bounds=(1, 65536)),
        Param(
            "betas",
            list,
            [0.2, 0.05],
            "the KL coefficients compared, larger first. The paper's 0.01/0.005 are for 7B-70B models; "
            "on this toy they give KLs within ~5% of each other (seed noise), so the default is a wider pair",
            bounds=(0.0, 100.0),
        ),
        Param("threads", int, 1, bounds=(0, 1024)),
    ],
    presets={
        "smoke": Preset(description="dim 32, 25 iterations of 32 prompts for two β, ~40 s"),
        "full": Preset(
            params={"dim": 64, "sft_steps": 200, "rm_steps": 600, "iterations": 150, "batch": 64},
            description="dim 64, 150 iterations of 64 prompts",
        ),
    },
    controls=[Control("kl-bonus", "the KL term is added to the reward instead of subtracted")],
    metrics=[
        Metric("kl_mid_large_beta", "nats", "KL to the initial policy mid-training with the larger coefficient"),
        Metric(
            "kl_slope_second_half_over_first",
            "",
            "least-squares KL slope over the second half of training over the first half's",
        ),
        Metric("reward_beta{beta}", "reward", "reward-model score per PPO iteration at a KL coefficient"),
        Metric("kl_beta{beta}", "nats", "KL to the reference policy per iteration"),
        Metric("gold_beta{beta}", "reward", "gold reward per iteration"),
        Metric("reward_start", "reward", "early reward"),
        Metric("reward_end", "reward", "late reward"),
        Metric("kl_end_large_beta", "nats", "late KL at the larger β"),
        Metric("kl_end_small_beta", "nats", "late KL at the smaller β"),
        Metric("gold_start", "reward", "early gold reward"),
        Metric("gold_end", "reward", "late gold reward"),
        Metric("{stage}_loss", "nats/token", "training loss of a stage (sft, rm, ...), every 10 steps"),
    ],
    stochastic=True,
    seeds={"smoke": (0, 1, 2), "full": (0, 1, 2, 3, 4)},
)
def ppo_kl(ctx: RunContext) -> Result:
    from repro.finetune import workloads

    return workloads.ppo_kl(ctx)


# ---------------------------------------------------------------------------------------
# 5. Ghost Attention (3.3, Table 30)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/ghost-attention",
    "After fine-tuning on Ghost Attention data, a small chat model still respects the first-turn "
    "system instruction at turn 20; trained on ordinary multi-turn data it has forgotten it (Table 30)",
    params=[
        Param("dim", int, 64, bounds=(1, 4096)),
        Param("steps", int, 110, "SFT steps per model", bounds=(1, 1000000)),
        Param("max_turns", int, 20, "dialog length, trained and evaluated", bounds=(1, 1000)),
        Param("n_dialogs", int, 2000, "training dialogs", bounds=(1, 10000000)),
        Param("eval_dialogs", int, 40, bounds=(1, 1000000)),
        Param("threads", int, 1, bounds=(0, 1024)),
    ],
    presets={
        "smoke": Preset(description="two dim-64 models, 110 steps each, ~15 s of CPU"),
        "full": Preset(
            params={"dim": 128, "steps": 600, "n_dialogs": 8000, "eval_dialogs": 300},
            description="dim 128, 600 steps, 300 evaluation dialogs",
        ),
    },
    controls=[
        Control("no-concat", "GAtt without its first step: the sampler never sees the instruction after turn 1"),
        Control("no-system-prompt", "the instruction is dropped from the first turn too"),
    ],
    metrics=[
        Metric("{model}_loss", "nats/token", "SFT loss of the baseline / GAtt model every 10 steps"),
        Metric("{model}_kept", "fraction", "dialogues still following the instruction, per turn"),
    ],
    stochastic=True,
    seeds={"smoke": (0, 1, 2), "full": (0, 1, 2, 3, 4)},
)
def ghost_attention(ctx: RunContext) -> Result:
    from repro.finetune import workloads

    return workloads.ghost_attention(ctx)


# ---------------------------------------------------------------------------------------
# 6. DPO on the same preferences (beyond the paper)
# ---------------------------------------------------------------------------------------
@experiment(
    "finetune/dpo",
    "DPO's sigmoid loss on the reward model's preference pairs raises the policy's true reward and "
    "its implicit reward ranks held-out pairs above chance (beyond the paper: the widely used successor)",
    params=[
        Param("dim", int, 32, bounds=(1, 4096)),
        Param("sft_steps", int, 60, bounds=(1, 1000000)),
        Param("steps", int, 80, "DPO steps", bounds=(1, 1000000)),
        Param("beta", float, 0.1, bounds=(0.0, 100.0)),
        Param("n_pairs", int, 4000, bounds=(1, 10000000)),
        Param("threads", int, 1, bounds=(0, 1024)),
    ],
    presets={
        "smoke": Preset(description="dim 32, 80 DPO steps, ~25 s"),
        "full": Preset(
            params={"dim": 64, "sft_steps": 200, "steps": 400, "n_pairs": 20000}, description="dim 64, 400 DPO steps"
        ),
    },
    controls=[Control("swapped-pairs", "chosen and rejected answers are swapped in the loss")],
    metrics=[
        Metric("dpo_loss", "nats", "DPO loss per step"),
        Metric("implicit_margin", "nats", "implicit reward margin per step"),
        Metric("gold_before", "reward", "gold reward before DPO"),
        Metric("gold_after", "reward", "gold reward after DPO"),
        Metric("implicit_reward_accuracy", "fraction", "held-out pairs the implicit reward orders right"),
        Metric("{stage}_loss", "nats/token", "training loss of a stage (sft, rm, ...), every 10 steps"),
    ],
    stochastic=True,
    seeds={"smoke": (0, 1, 2), "full": (0, 1, 2, 3, 4)},
)
def dpo(ctx: RunContext) -> Result:
    from repro.finetune import workloads

    return workloads.dpo(ctx)
