"""Train our Transformer on parallel text, write a checkpoint, translate with beam search.

The recipe of Vaswani et al. (2017): a byte-pair vocabulary shared by source and target
(section 5.1), batches of sentence pairs, Adam with the warmup schedule and label smoothing
(5.3, 5.4), and beam search with beam 4, length penalty α = 0.6 and outputs at most 50
tokens longer than the input, stopping early when possible (6.1). The model, schedule and
beam search are ``repro.transformer.model``'s; the checkpoint format is
``repro.transformer.checkpoint``'s.

Command line (``--help`` for every option)::

    python -m repro.transformer.translate train --source train.en --target train.de \\
        --source-lang en --target-lang de --config big --steps 300000 --out ckpt/big-en-de
    python -m repro.transformer.translate translate ckpt/big-en-de newstest2014.en > hyp.de

At the paper's scale (the big model, 300,000 steps of about 25,000 tokens on 8 P100 GPUs,
3.5 days) training is a cluster job; this trainer runs on one device and reaches the
paper's batch with ``--accumulate``. The paper also averaged the last 20 checkpoints,
which this trainer does not do.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from repro.transformer.checkpoint import SPECIAL_TOKENS


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-pair tokenizer shared by source and target (section 5.1), SentencePiece-style
    word boundaries (``▁``) so that decoding restores the spacing: ids 0-3 are <pad> <s> </s> <unk>."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def train(
    source: Sequence[str],
    target: Sequence[str],
    out: Path | str,
    *,
    source_lang: str,
    target_lang: str,
    config: str = "base",
    overrides: dict[str, Any] | None = None,
    vocab_size: int = 37000,
    steps: int = 100_000,
    batch_tokens: int = 25_000,
    accumulate: int = 1,
    lr_scale: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train ``Transformer(config, **overrides)`` on the sentence pairs and write a checkpoint
    to ``out``. Batches hold about ``batch_tokens`` source + target tokens (sentences of
    similar length together, section 5.1); ``accumulate`` batches make one optimiser step."""
    import torch

    from repro.transformer.checkpoint import save
    from repro.transformer.model import Transformer, make_optimizer
    from repro.transformer.model import config as named_config

    if len(source) != len(target) or not source:
        raise ValueError(f"{len(source)} source and {len(target)} target sentences: need the same, at least one")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = train_tokenizer([*source, *target], vocab_size)
    cfg = named_config(config, vocab_size=tokenizer.get_vocab_size(), **(overrides or {}))
    pairs = []
    limit = cfg.max_len - 1  # room for <s> / </s>
    for s, t in zip(source, target):
        src, tgt = tokenizer.encode(s).ids[:limit], tokenizer.encode(t).ids[:limit]
        pairs.append((src, tgt))
    batches = _length_batches(pairs, batch_tokens, random.Random(seed))
    model = Transformer(cfg).to(device)
    opt, sched = make_optimizer(model, cfg, scale=lr_scale)
    model.train()
    order = random.Random(seed + 1)
    loss_value = math.nan
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        for _ in range(accumulate):
            src, tgt_in, tgt_out = _tensors(order.choice(batches), cfg, device)
            loss = model.loss(src, tgt_in, tgt_out) / accumulate
            loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.item()) * accumulate
        if log is not None and ((step + 1) % max(1, steps // 10) == 0 or step + 1 == steps):
            log(f"step {step + 1}/{steps}: loss {loss_value:.3f}")
    training = {
        "steps": steps,
        "batch_tokens": batch_tokens,
        "accumulate": accumulate,
        "lr_scale": lr_scale,
        "seed": seed,
        "sentence_pairs": len(pairs),
        "final_loss": round(loss_value, 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "base_config": config,
    }
    model.eval()
    return save(model.cpu(), tokenizer, out, source_lang, target_lang, training)


def _length_batches(
    pairs: list[tuple[list[int], list[int]]], batch_tokens: int, rng: random.Random
) -> list[list[tuple[list[int], list[int]]]]:
    """Sentence pairs sorted by length and cut into batches of about ``batch_tokens`` tokens."""
    ordered = sorted(pairs, key=lambda p: (len(p[0]), len(p[1]), rng.random()))
    batches: list[list[tuple[list[int], list[int]]]] = []
    batch: list[tuple[list[int], list[int]]] = []
    longest = 0
    for pair in ordered:
        longest = max(longest, len(pair[0]), len(pair[1]) + 1)
        if batch and 2 * longest * (len(batch) + 1) > batch_tokens:
            batches.append(batch)
            batch, longest = [], max(len(pair[0]), len(pair[1]) + 1)
        batch.append(pair)
    if batch:
        batches.append(batch)
    return batches


def _tensors(batch: list[tuple[list[int], list[int]]], cfg: Any, device: str):
    """(src (B, Ns), tgt_in (B, Nt), tgt_out (B, Nt)), padded; tgt_in starts with <s>, tgt_out ends with </s>."""
    import torch

    n_src = max(len(s) for s, _ in batch)
    n_tgt = max(len(t) for _, t in batch) + 1
    src = torch.full((len(batch), n_src), cfg.pad_id, dtype=torch.long)
    tgt_in = torch.full((len(batch), n_tgt), cfg.pad_id, dtype=torch.long)
    tgt_out = torch.full((len(batch), n_tgt), cfg.pad_id, dtype=torch.long)
    for i, (s, t) in enumerate(batch):
        src[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        tgt_in[i, : len(t) + 1] = torch.tensor([cfg.bos_id, *t], dtype=torch.long)
        tgt_out[i, : len(t) + 1] = torch.tensor([*t, cfg.eos_id], dtype=torch.long)
    return src.to(device), tgt_in.to(device), tgt_out.to(device)


def translate(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[str],
    *,
    beam_size: int = 4,
    alpha: float = 0.6,
    extra_len: int = 50,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Detokenised translations of ``sentences`` by beam search (section 6.1): beam
    ``beam_size``, length penalty ``alpha``, at most ``extra_len`` tokens more than the
    input (and than the model's ``max_len`` allows), stopping early when possible."""
    import torch

    from repro.transformer.model import beam_search

    cfg = model.cfg
    out = []
    with torch.no_grad():
        for i, sentence in enumerate(sentences):
            ids = tokenizer.encode(sentence).ids[: cfg.max_len] or [cfg.eos_id]
            memory, mask = model.encode(torch.tensor([ids], dtype=torch.long, device=device))

            def step(prefixes, memory=memory, mask=mask):
                k = prefixes.shape[0]  # live beams: (K, t) prefixes -> (K, V) log-probabilities
                logits = model.decode(prefixes.to(device), memory.expand(k, -1, -1), mask.expand(k, -1, -1, -1))
                return torch.log_softmax(logits[:, -1].float(), dim=-1).cpu()

            max_len = min(len(ids) + extra_len, cfg.max_len - 1)
            seq, _score = beam_search(step, cfg.bos_id, cfg.eos_id, max_len, beam_size, alpha)
            if seq and seq[-1] == cfg.eos_id:
                seq = seq[:-1]
            out.append(tokenizer.decode(seq, skip_special_tokens=True))
            if progress is not None:
                progress(i + 1, len(sentences))
    return out


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def _read(path: str) -> list[str]:
    from repro.transformer.bleu import read_lines

    return read_lines(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m repro.transformer.translate",
        description="Train our Transformer on parallel text and write a checkpoint, or translate with one.",
        epilog="example: python -m repro.transformer.translate train --source train.en --target train.de "
        "--source-lang en --target-lang de --config big --steps 300000 --out ckpt/big-en-de",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train and write a checkpoint folder")
    tr.add_argument("--source", required=True, help="source sentences, one a line")
    tr.add_argument("--target", required=True, help="their translations, one a line")
    tr.add_argument("--source-lang", required=True)
    tr.add_argument("--target-lang", required=True)
    tr.add_argument("--out", required=True, help="the checkpoint folder to write")
    tr.add_argument("--config", choices=("base", "big"), default="base", help="Table 3's base or big")
    tr.add_argument("--vocab-size", type=int, default=37000, help="shared BPE vocabulary (section 5.1)")
    tr.add_argument("--steps", type=int, default=100_000, help="optimiser steps (base 100k, big 300k)")
    tr.add_argument("--batch-tokens", type=int, default=25_000, help="source + target tokens per batch")
    tr.add_argument("--accumulate", type=int, default=1, help="batches per optimiser step")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="cuda", help="cuda or cpu")
    tl = sub.add_parser("translate", help="translate a file with beam search (beam 4, alpha 0.6)")
    tl.add_argument("checkpoint")
    tl.add_argument("source", help="sentences to translate, one a line")
    tl.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from paperkb.errors import PaperkbError

    try:
        if args.command == "train":
            out = train(
                _read(args.source),
                _read(args.target),
                args.out,
                source_lang=args.source_lang,
                target_lang=args.target_lang,
                config=args.config,
                vocab_size=args.vocab_size,
                steps=args.steps,
                batch_tokens=args.batch_tokens,
                accumulate=args.accumulate,
                seed=args.seed,
                device=args.device,
                log=lambda m: print(m, file=sys.stderr, flush=True),
            )
            print(out)
        else:
            from repro.transformer.checkpoint import load

            model, tokenizer, _cfg = load(args.checkpoint, args.device)
            for line in translate(model, tokenizer, _read(args.source), device=args.device):
                print(line)
    except (PaperkbError, OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
