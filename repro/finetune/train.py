"""Command-line trainer, for one process or torchrun:

    python -m repro.finetune.train sft --toy --steps 50 --out runs/sft
    torchrun --nproc_per_node 2 -m repro.finetune.train sft --data sft.jsonl --init ckpt/ --out runs/sft
    python -m repro.finetune.train reward --data prefs.jsonl --init runs/sft --margin large --out runs/rm
    python -m repro.finetune.train dpo --data prefs.jsonl --init runs/sft --out runs/dpo

Data: ``--toy`` (the synthetic world of ``repro.finetune.data``) or ``--data`` JSONL.
``--init``: a local checkpoint folder (Hugging Face layout with its tokenizer, or one of
ours) to start from; without it a small model is built from ``--dim/--layers``.
``--resume DIR`` continues a run from its checkpoint; ``--save-at N`` writes one at step N.
The finished model is written to ``--out`` in the Hugging Face layout with its tokenizer, so
``paperkb chat`` opens it. Rank 0 writes ``losses.json`` (the global loss per step).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from torch import nn


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m repro.finetune.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("sft", "reward", "dpo"))
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--toy", action="store_true", help="the synthetic world's data")
    src.add_argument("--data", type=Path, help="JSONL training data")
    ap.add_argument("--init", type=Path, help="checkpoint folder to start from")
    ap.add_argument("--tokenizer", type=Path, help="folder with tokenizer.json / tokenizer.model (default: --init's)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16, help="global batch (examples or pairs per step)")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--margin", default="small", choices=("none", "small", "large"))
    ap.add_argument("--beta", type=float, default=0.1, help="DPO's β")
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
    from repro.finetune.data import ToyWorld, read_preferences, read_sft
    from repro.finetune.loop import (
        OptimConfig,
        export_for_chat,
        init_distributed,
        load_checkpoint,
        make_optimizer,
        make_scheduler,
        unwrap,
        wrap,
    )

    try:
        d = init_distributed()
        world = ToyWorld(seed=a.seed) if a.toy else None
        model, tok = _model_and_tokenizer(a, world)
        rng = random.Random(a.seed + 1)
        optim = OptimConfig(lr=a.lr, warmup_steps=a.warmup, total_steps=a.steps)
        losses: list[float] = []

        def on_step(step, m):
            losses.append(m["loss"])
            if d.rank == 0:
                print(f"step {step + 1}/{a.steps} loss {m['loss']:.5f}", flush=True)

        if a.step == "sft":
            from repro.finetune.sft import SFTConfig, dialog_example, train_sft

            dialogs = world.sft_dialogs(1000, rng) if world else read_sft(a.data)
            sft_data = [dialog_example(x, tok) for x in dialogs]
            trained: nn.Module = model
            sft_cfg = SFTConfig(
                steps=a.steps, batch_size=a.batch, seq_len=a.seq_len, seed=a.seed, packing=not a.no_packing
            )
            run = lambda m, **kw: train_sft(m, sft_data, sft_cfg, optim, d, on_step=on_step, **kw)
        elif a.step == "reward":
            from repro.finetune.heads import ScalarHeadModel
            from repro.finetune.reward import RewardConfig, pair_tokens, train_reward

            pairs = world.pairs(2000, rng) if world else read_preferences(a.data)
            reward_data = pair_tokens(pairs, tok)
            trained = ScalarHeadModel(model)
            reward_cfg = RewardConfig(steps=a.steps, batch_size=a.batch, margin=a.margin, seed=a.seed)
            run = lambda m, **kw: train_reward(m, reward_data, reward_cfg, optim, d, on_step=on_step, **kw)
        else:
            import copy

            from repro.finetune.dpo import DPOConfig, pair_examples, train_dpo

            pairs = world.pairs(2000, rng) if world else read_preferences(a.data)
            dpo_data = pair_examples(pairs, tok)
            ref = copy.deepcopy(model).eval()
            trained = model
            dpo_cfg = DPOConfig(steps=a.steps, batch_size=a.batch, beta=a.beta, seed=a.seed)
            run = lambda m, **kw: train_dpo(m, ref, dpo_data, dpo_cfg, optim, d, on_step=on_step, **kw)

        trained = trained.to(d.device)
        wrapped = wrap(trained, d, a.strategy)
        kwargs: dict[str, Any] = {}
        if a.resume is not None:
            opt = make_optimizer(unwrap(wrapped), optim)
            sch = make_scheduler(opt, optim)
            state = load_checkpoint(a.resume, wrapped, opt, sch)
            kwargs.update(start_step=state["step"], state=(opt, sch))
        if a.save_at is not None:
            kwargs.update(checkpoint_dir=a.out / "checkpoint", checkpoint_at=a.save_at)
        run(wrapped, **kwargs)
        if d.rank == 0:
            a.out.mkdir(parents=True, exist_ok=True)
            (a.out / "losses.json").write_text(json.dumps(losses) + "\n")
            if a.step == "reward":
                from repro.finetune.heads import ScalarHeadModel, save_scalar_head_model

                # the reward step trains a ScalarHeadModel (built above), whatever wraps it
                save_scalar_head_model(cast(ScalarHeadModel, unwrap(wrapped)), a.out, tok)
            else:
                export_for_chat(a.out, unwrap(wrapped), tok)
        if d.on:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
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


if __name__ == "__main__":
    sys.exit(main())
