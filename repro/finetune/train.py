"""Command-line trainer for every step of the Llama 2-Chat pipeline (Section 3), for one
process or torchrun. Each step writes a checkpoint folder that the next one takes as ``--init``:

    python -m repro.finetune.train sft       --data sft.jsonl       --out runs/sft
    python -m repro.finetune.train reward    --data prefs.jsonl     --init runs/sft --out runs/rm
    python -m repro.finetune.train rejection --data prompts.jsonl   --init runs/sft --reward runs/rm --out runs/rs
    python -m repro.finetune.train ppo       --data prompts.jsonl   --init runs/rs  --reward runs/rm --out runs/ppo
    python -m repro.finetune.train dpo       --data prefs.jsonl     --init runs/rs  --out runs/dpo
    python -m repro.finetune.train gatt      --data dialogues.jsonl --init runs/ppo --out runs/gatt
    torchrun --nproc_per_node 2 -m repro.finetune.train sft --data sft.jsonl --init ckpt/ --out runs/sft

Data: ``--toy`` (the synthetic world of ``repro.finetune.data``) or ``--data`` JSONL (small
examples of each form: ``docs/examples/finetune/``). ``--init``: a local checkpoint folder
(Hugging Face layout with its tokenizer, or one of ours) to start from; without it a small
model is built from ``--dim/--layers``. ``--reward``: the reward model (``reward``'s output)
that scores samples in ``rejection`` and ``ppo``. ``--resume DIR`` continues a run from its
checkpoint; ``--save-at N`` writes one at step N. The finished model is written to ``--out``
in the Hugging Face layout with its tokenizer, so ``paperkb chat`` opens it (the reward
model adds its score head and is not for chat). Rank 0 writes ``losses.json`` (the loss per
step; PPO: the mean reward and KL per iteration).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from torch import nn


STEPS = ("sft", "reward", "rejection", "ppo", "dpo", "gatt")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m repro.finetune.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=STEPS)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--toy", action="store_true", help="the synthetic world's data")
    src.add_argument("--data", type=Path, help="JSONL training data")
    ap.add_argument("--init", type=Path, help="checkpoint folder to start from")
    ap.add_argument("--tokenizer", type=Path, help="folder with tokenizer.json / tokenizer.model (default: --init's)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16, help="global batch (examples or pairs per step)")
    ap.add_argument("--seq-len", type=int, default=256, help="packed row length (and a new model's context)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--margin", default="small", choices=("none", "small", "large"))
    ap.add_argument("--beta", type=float, default=0.1, help="DPO's β")
    ap.add_argument("--reward", type=Path, help="reward-model checkpoint (rejection, ppo)")
    ap.add_argument("--k", type=int, default=4, help="rejection: samples per prompt")
    ap.add_argument("--temperature", type=float, default=1.0, help="rejection, ppo: sampling temperature")
    ap.add_argument("--max-gen-len", type=int, default=32, help="rejection, ppo: most tokens per sampled answer")
    ap.add_argument("--kl-beta", type=float, default=0.01, help="PPO's KL penalty β (0.01 for 7B/13B)")
    ap.add_argument("--strategy", default="ddp", choices=("ddp", "fsdp"))
    ap.add_argument("--no-packing", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-at", type=int, help="write a resumable checkpoint after this step")
    ap.add_argument("--resume", type=Path, help="checkpoint folder to continue from")
    return ap


def _model_and_tokenizer(a, world):
    import torch

    from repro.llama.model import ModelArgs, Transformer
    from repro.llama.tokenizers_real import load_tokenizer

    if a.init is not None:
        from repro.llama.chat import load_checkpoint

        model, tok = load_checkpoint(a.init)
        if a.tokenizer is not None:
            tok = load_tokenizer(a.tokenizer)
        return model.train(), tok
    if world is not None:
        tok = world.tokenizer(tempfile.mkdtemp(prefix="paperkb-toy-tok-"))
    elif a.tokenizer is not None:
        tok = load_tokenizer(a.tokenizer)
    else:
        from repro.llama.tokenizer import ByteTokenizer

        tok = ByteTokenizer()
    torch.manual_seed(a.seed)
    args = ModelArgs(
        dim=a.dim,
        n_layers=a.layers,
        n_heads=max(2, a.dim // 16),
        vocab_size=tok.n_words,
        max_seq_len=max(a.seq_len, 64),
        multiple_of=32,
    )
    return Transformer(args), tok


def main(argv=None) -> int:
    a = _parser().parse_args(argv)

    from paperkb.errors import PaperkbError

    try:
        _run(a)
    except PaperkbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, as everywhere in paperkb, unless asked for the traceback
        import os

        if os.environ.get("PAPERKB_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set PAPERKB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


def _run(a) -> None:
    """One step of the pipeline: build or load the model, train it, write ``--out``."""
    from repro.finetune.data import ToyWorld
    from repro.finetune.loop import OptimConfig, export_for_chat, init_distributed

    d = init_distributed()
    world = ToyWorld(seed=a.seed) if a.toy else None
    model, tok = _model_and_tokenizer(a, world)
    rng = random.Random(a.seed + 1)
    optim = OptimConfig(lr=a.lr, warmup_steps=a.warmup, total_steps=a.steps)
    if a.step == "ppo":
        history = _ppo(a, d, world, model, tok, rng, optim)
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "losses.json").write_text(json.dumps(history) + "\n")
        export_for_chat(a.out, model, tok)
        print(f"wrote {a.out}", flush=True)
        return
    losses: list[float] = []

    def on_step(step, m):
        losses.append(m["loss"])
        if d.rank == 0:
            print(f"step {step + 1}/{a.steps} loss {m['loss']:.5f}", flush=True)

    trained, run = _step_trainer(a, d, world, model, tok, rng, optim, on_step)
    wrapped = _train(a, d, trained, run, optim)
    if d.rank == 0:
        _save(a, wrapped, tok, losses)
    if d.on:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def _step_trainer(a, d, world, model, tok, rng, optim, on_step) -> tuple[nn.Module, Callable[..., Any]]:
    """The module the step trains (the policy, or a reward model around it) and the call
    that trains it on the step's data: ``run(module, **loop_kwargs)``."""
    from repro.finetune.data import read_preferences, read_sft

    if a.step in ("sft", "rejection", "gatt"):
        from repro.finetune.sft import SFTConfig, dialog_example, train_sft

        if a.step == "rejection":
            sft_data = _rejection_examples(a, d, world, model, tok, rng)
        elif a.step == "gatt":
            sft_data = _gatt_examples(a, world, tok, rng)
        else:
            dialogs = world.sft_dialogs(1000, rng) if world else read_sft(a.data)
            sft_data = [dialog_example(x, tok) for x in dialogs]
        sft_cfg = SFTConfig(steps=a.steps, batch_size=a.batch, seq_len=a.seq_len, seed=a.seed, packing=not a.no_packing)
        return model, lambda m, **kw: train_sft(m, sft_data, sft_cfg, optim, d, on_step=on_step, **kw)
    if a.step == "reward":
        from repro.finetune.heads import ScalarHeadModel
        from repro.finetune.reward import RewardConfig, pair_tokens, train_reward

        pairs = world.pairs(2000, rng) if world else read_preferences(a.data)
        reward_data = pair_tokens(pairs, tok)
        reward_cfg = RewardConfig(steps=a.steps, batch_size=a.batch, margin=a.margin, seed=a.seed)
        return ScalarHeadModel(model), lambda m, **kw: train_reward(
            m, reward_data, reward_cfg, optim, d, on_step=on_step, **kw
        )
    # dpo
    import copy

    from repro.finetune.dpo import DPOConfig, pair_examples, train_dpo

    pairs = world.pairs(2000, rng) if world else read_preferences(a.data)
    dpo_data = pair_examples(pairs, tok)
    ref = copy.deepcopy(model).eval()
    dpo_cfg = DPOConfig(steps=a.steps, batch_size=a.batch, beta=a.beta, seed=a.seed)
    return model, lambda m, **kw: train_dpo(m, ref, dpo_data, dpo_cfg, optim, d, on_step=on_step, **kw)


def _train(a, d, trained: nn.Module, run: Callable[..., Any], optim) -> nn.Module:
    """Wrap for the distributed strategy, resume from ``--resume`` if asked, train; the
    wrapped module."""
    from repro.finetune.loop import load_checkpoint, make_optimizer, make_scheduler, unwrap, wrap

    wrapped = wrap(trained.to(d.device), d, a.strategy)
    kwargs: dict[str, Any] = {}
    if a.resume is not None:
        opt = make_optimizer(unwrap(wrapped), optim)
        sch = make_scheduler(opt, optim)
        state = load_checkpoint(a.resume, wrapped, opt, sch)
        kwargs.update(start_step=state["step"], state=(opt, sch))
    if a.save_at is not None:
        kwargs.update(checkpoint_dir=a.out / "checkpoint", checkpoint_at=a.save_at)
    run(wrapped, **kwargs)
    return wrapped


def _save(a, wrapped: nn.Module, tok, losses: list[float]) -> None:
    """Rank 0: ``losses.json`` and the trained model in ``--out`` (for ``chat``, or the
    reward model with its score head)."""
    from repro.finetune.loop import export_for_chat, unwrap

    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "losses.json").write_text(json.dumps(losses) + "\n")
    if a.step == "reward":
        from repro.finetune.heads import ScalarHeadModel, save_scalar_head_model

        # the reward step trains a ScalarHeadModel (built in _step_trainer), whatever wraps it
        save_scalar_head_model(cast(ScalarHeadModel, unwrap(wrapped)), a.out, tok)
    else:
        export_for_chat(a.out, unwrap(wrapped), tok)
    print(f"wrote {a.out}", flush=True)


def _reward_model(a, tok):
    """The reward model of ``--reward``, checked to read the policy's tokens."""
    from paperkb.errors import PaperkbError
    from repro.finetune.heads import load_scalar_head_model

    if a.reward is None:
        raise PaperkbError(f"{a.step} needs --reward DIR (the reward step's output)")
    rm = load_scalar_head_model(a.reward)
    if rm.params.vocab_size < tok.n_words:
        raise PaperkbError(
            f"{a.reward}: the reward model reads {rm.params.vocab_size} tokens, the policy {tok.n_words}"
        )
    return rm


def _prompt_ids(a, world, tok, rng) -> list[list[int]]:
    """Each prompt as the chat template lays out a first user turn."""
    from repro.finetune.data import read_prompts
    from repro.llama.generation import chat_prompt_tokens

    texts = [world.prompt(rng) for _ in range(64)] if world else read_prompts(a.data)
    return [chat_prompt_tokens([{"role": "user", "content": t}], tok) for t in texts]


def _rejection_examples(a, d, world, model, tok, rng) -> list[tuple[list[int], list[int]]]:
    """Section 3.2.3: K answers per prompt, scored by the reward model; the best of each
    prompt becomes an SFT example (ending at the end-of-turn token)."""
    import torch

    from repro.finetune.losses import answer_only_labels
    from repro.finetune.rejection import sample_and_score, select

    rm = _reward_model(a, tok)
    prompts = _prompt_ids(a, world, tok, rng)
    if d.rank == 0:
        print(f"sampling {a.k} answers for each of {len(prompts)} prompts", flush=True)
    gen = torch.Generator().manual_seed(a.seed)
    answers, rewards = sample_and_score(model, rm, prompts, a.k, a.max_gen_len, a.temperature, tok.eos_id, gen)
    best = select(answers, rewards)
    if d.rank == 0:
        mean, top = float(rewards.mean()), float(rewards.max(1).values.mean())
        print(f"reward: mean {mean:.4f}, best of {a.k} {top:.4f}", flush=True)
    model.train()
    examples = []
    for p, ans in zip(prompts, best):
        ans = ans if ans and ans[-1] == tok.eos_id else [*ans, tok.eos_id]
        examples.append(answer_only_labels(p, ans))
    return examples


def _gatt_examples(a, world, tok, rng) -> list[tuple[list[int], list[int]]]:
    """Section 3.3: multi-turn dialogs with the instruction in the first turn only, the loss
    on the last answer only (``--data``: dialogs already sampled that way)."""
    from repro.finetune.data import read_sft
    from repro.finetune.gatt import gatt_examples
    from repro.finetune.sft import dialog_example

    if world is not None:
        return gatt_examples(world, 1000, 3, rng, tokenizer=tok)
    return [dialog_example(x, tok, loss_on="last") for x in read_sft(a.data)]


def _ppo(a, d, world, model, tok, rng, optim) -> list[dict]:
    """Section 3.2.3: PPO against the reward model, R = whiten(logit(R_c)) - β·KL, the value
    head starting from the reward model; one process."""
    import copy

    import torch

    from paperkb.errors import PaperkbError
    from repro.finetune.ppo import PPOConfig, ppo_train

    if d.on:
        raise PaperkbError("ppo runs in one process (no torchrun)")
    rm = _reward_model(a, tok).to(d.device)
    value = copy.deepcopy(rm).train()
    model = model.to(d.device)
    ref = copy.deepcopy(model).eval()
    prompts = _prompt_ids(a, world, tok, rng)

    @torch.no_grad()
    def reward_fn(r):
        score = torch.sigmoid(rm(r.tokens.to(d.device), r.lengths.to(d.device)).float()).cpu()
        return score, torch.ones_like(score), torch.zeros_like(score, dtype=torch.bool)

    def on_iteration(it, row, _rollout):
        print(f"iteration {it + 1}/{a.steps} reward {row['reward']:.4f} kl {row['kl']:.5f}", flush=True)

    cfg = PPOConfig(
        iterations=a.steps,
        batch_size=a.batch,
        beta=a.kl_beta,
        temperature=a.temperature,
        max_gen_len=a.max_gen_len,
        seed=a.seed,
    )
    return ppo_train(model, ref, value, reward_fn, prompts, tok.eos_id, cfg, optim, on_iteration=on_iteration)


if __name__ == "__main__":
    sys.exit(main())
