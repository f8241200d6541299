"""Experiments behind the notes' claims about Llama 2 (Touvron et al., 2023).

No torch at module level: ``paperkb experiments`` imports this file to list the ids.
"""

from __future__ import annotations

from repro.registry import Param, Preset, experiment
from repro.threads import torch_threads



# Table 1 of the paper rounds these; the exact totals are those of the released checkpoints.
PUBLISHED_PARAMS = {"7B": 6_738_415_616, "13B": 13_015_864_320, "70B": 68_976_648_192}


@experiment(
    "llama/param-count",
    "Llama 2 7B/13B/70B parameter counts, from the published configs on the meta device, equal the "
    "released checkpoints' totals exactly",
    params=[Param("sizes", list, ["7B", "13B", "34B", "70B"], "presets to build (7B, 13B, 34B, 70B)")],
    presets={"smoke": Preset(description="all four shapes, meta device: no memory, ~1 s"),
             "full": Preset(description="same as smoke: counting needs no weights")},
)
def param_count(ctx):
    from repro.llama.model import build_on_meta, count_parameters, preset

    for name in ctx.params["sizes"]:
        name = str(name)
        args = preset(name)
        model = build_on_meta(args)
        n = count_parameters(model)
        if any(not p.is_meta for p in model.parameters()):
            raise RuntimeError("a parameter was materialised; the count must need no memory")
        ctx.log_metric(f"params_{name}", n)
        ctx.log_metric(f"ffn_hidden_{name}", args.hidden_dim)
        ctx.log(f"Llama 2 {name}: {n:,} parameters (SwiGLU width {args.hidden_dim})")
        if name in PUBLISHED_PARAMS:
            ctx.check(f"params_{name}", n, "==", PUBLISHED_PARAMS[name],
                      f"{name} total equals the released checkpoint ({PUBLISHED_PARAMS[name]:,})")
    return ctx.result("parameter counts from ModelArgs presets built on the meta device")


def _tiny_args(dim: int, n_layers: int, n_heads: int, n_kv_heads: int, vocab: int, max_seq_len: int):
    from repro.llama.model import ModelArgs

    return ModelArgs(dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, vocab_size=vocab,
                     max_seq_len=max_seq_len, multiple_of=32)


@experiment(
    "llama/gqa-kv-cache",
    "Grouped-query attention: the 70B shape's KV cache at 4096 tokens is 8x smaller than with "
    "multi-head attention; a small GQA model with the same head ratio decodes correctly with an "
    "8x smaller cache",
    params=[
        Param("tokens", int, 4096, "cached positions for the 70B shape"),
        Param("dtype", str, "float16", "cache element type", choices=("float16", "bfloat16", "float32")),
        Param("small_dim", int, 128, "width of the small decoding model"),
        Param("small_heads", int, 8, "query heads of the small model"),
        Param("small_kv_heads", int, 1, "KV heads of the small GQA model"),
        Param("decode_tokens", int, 32, "tokens the small model decodes"),
    ],
    presets={"smoke": Preset(description="70B cache on the meta device; small model decodes 32 tokens, ~2 s"),
             "full": Preset(params={"small_dim": 512, "decode_tokens": 256},
                            description="a wider small model and a longer decode")},
)
def gqa_kv_cache(ctx):
    import torch

    from repro.llama.model import Transformer, build_on_meta, preset

    p = ctx.params
    dtype = getattr(torch, p["dtype"])
    n_tokens = p["tokens"]
    # 1. The 70B shape: caches allocated on the meta device (shapes and dtypes, no memory).
    sizes = {}
    for label, kv in (("gqa", 8), ("mha", 64)):
        model = build_on_meta(preset("70B", n_kv_heads=kv))
        cache = model.new_cache(1, n_tokens, dtype=dtype, device="meta")
        sizes[label] = sum(c.nbytes() for c in cache)
        ctx.log_metric(f"kv_bytes_70b_{label}", sizes[label])
        ctx.log(f"70B shape, {label.upper()} ({kv} KV heads): {sizes[label] / 2**30:.2f} GiB of KV cache "
                f"for {n_tokens} tokens in {p['dtype']}")
    ratio = sizes["mha"] / sizes["gqa"]
    ctx.log_metric("kv_ratio_70b", ratio)
    ctx.check("kv_ratio_70b", ratio, "between", (7.999, 8.001),
              "70B: MHA cache bytes / GQA cache bytes = 64 heads / 8 KV heads")

    # 2. A small model that decodes: same query heads, GQA vs MHA; bytes actually held.
    torch.manual_seed(ctx.seed)
    heads, kv_heads = p["small_heads"], p["small_kv_heads"]
    n_prompt, n_new = 8, p["decode_tokens"]
    total = n_prompt + n_new
    held = {}
    for label, kv in (("gqa", kv_heads), ("mha", heads)):
        model = Transformer(_tiny_args(p["small_dim"], 2, heads, kv, 256, total)).eval()
        cache = model.new_cache(1, total)
        tokens = torch.randint(0, 256, (1, n_prompt))
        with torch.inference_mode():
            logits = model(tokens, 0, cache, last_only=True)
            steps = []
            for pos in range(n_prompt, total):
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, nxt], dim=1)
                logits = model(nxt, pos, cache)
                steps.append(logits[:, -1])
            # the cache must reproduce full recomputation
            full = model(tokens)[0, n_prompt:]
        err = (torch.stack(steps, 1)[0] - full).abs().max().item()
        held[label] = sum(c.k.untyped_storage().nbytes() + c.v.untyped_storage().nbytes() for c in cache)
        ctx.log_metric(f"kv_bytes_small_{label}", held[label])
        ctx.log_metric(f"decode_max_abs_err_{label}", err)
        ctx.check(f"decode_matches_recompute_{label}", err, "<=", 1e-4,
                  f"small {label.upper()} model: cached decoding equals recomputation")
    ratio_small = held["mha"] / held["gqa"]
    ctx.log_metric("kv_ratio_small", ratio_small)
    ctx.check("kv_ratio_small", ratio_small, "between", (heads / kv_heads - 1e-3, heads / kv_heads + 1e-3),
              f"small model: cache bytes shrink by n_heads / n_kv_heads = {heads / kv_heads:g}")
    if heads / kv_heads != 8:
        ctx.log(f"note: the small model's head ratio is {heads / kv_heads:g}, not the 70B's 8")
    return ctx.result(f"70B KV cache at {n_tokens} tokens: {sizes['gqa'] / 2**30:.2f} GiB with GQA vs "
                      f"{sizes['mha'] / 2**30:.2f} GiB with MHA ({ratio:.2f}x)")


@experiment(
    "llama/hf-parity",
    "With identical random weights our Llama 2 gives the logits of transformers' LlamaForCausalLM "
    "(fp32, max abs difference <= 1e-4), for an MHA and a GQA config",
    params=[
        Param("dim", int, 64), Param("n_layers", int, 2), Param("n_heads", int, 4),
        Param("gqa_kv_heads", int, 2, "KV heads of the GQA config"),
        Param("vocab_size", int, 512), Param("seq_len", int, 32), Param("batch", int, 2),
        Param("tolerance", float, 1e-4, "max abs logit difference allowed"),
    ],
    presets={"smoke": Preset(description="dim 64, 2 layers, ~3 s"),
             "full": Preset(params={"dim": 512, "n_layers": 8, "n_heads": 8, "gqa_kv_heads": 2,
                                    "vocab_size": 32000, "seq_len": 256},
                            description="dim 512, 8 layers, the real vocabulary, 256 tokens")},
)
def hf_parity(ctx):
    import torch

    from repro.llama.model import Transformer
    from repro.llama.weights import to_transformers

    p = ctx.params
    for label, kv in (("mha", p["n_heads"]), ("gqa", p["gqa_kv_heads"])):
        torch.manual_seed(ctx.seed)
        model = Transformer(_tiny_args(p["dim"], p["n_layers"], p["n_heads"], kv, p["vocab_size"],
                                       p["seq_len"])).eval()
        with torch.no_grad():
            for prm in model.parameters():
                if prm.ndim == 1:  # norm weights away from 1, so a misplaced norm shows
                    prm.normal_(1.0, 0.2)
        tokens = torch.randint(0, p["vocab_size"], (p["batch"], p["seq_len"]))
        for impl in ("eager", "sdpa"):
            hf = to_transformers(model, attn_implementation=impl)
            with torch.no_grad():
                diff = (model(tokens) - hf(tokens).logits).abs().max().item()
            ctx.log_metric(f"max_abs_diff_{label}_{impl}", diff)
            ctx.check(f"max_abs_diff_{label}_{impl}", diff, "<=", p["tolerance"],
                      f"{label.upper()} ({kv} KV heads) vs transformers ({impl} attention)")
    return ctx.result("random weights copied through the HF state-dict conversion (q/k permuted)")


@experiment(
    "llama/kv-cache-decode",
    "Decoding with the KV cache gives the logits of recomputing the whole sequence and costs less "
    "time per token",
    params=[
        Param("dim", int, 256), Param("n_layers", int, 4), Param("n_heads", int, 8), Param("n_kv_heads", int, 2),
        Param("vocab_size", int, 1000), Param("prompt_len", int, 48), Param("new_tokens", int, 24),
        Param("min_speedup", float, 1.0, "cached decoding must be at least this much faster"),
    ],
    presets={"smoke": Preset(description="dim 256, 4 layers, 48 + 24 tokens, ~5 s"),
             "full": Preset(params={"dim": 512, "n_layers": 8, "prompt_len": 512, "new_tokens": 256},
                            description="dim 512, 8 layers, 512 + 256 tokens")},
)
def kv_cache_decode(ctx):
    with torch_threads(1):
        return _kv_cache_decode(ctx)


def _kv_cache_decode(ctx):
    import time

    import torch

    from repro.llama.model import Transformer

    p = ctx.params
    torch.manual_seed(ctx.seed)
    total = p["prompt_len"] + p["new_tokens"]
    model = Transformer(_tiny_args(p["dim"], p["n_layers"], p["n_heads"], p["n_kv_heads"], p["vocab_size"],
                                   total)).eval()
    prompt = torch.randint(0, p["vocab_size"], (1, p["prompt_len"]))
    with torch.inference_mode():
        # cached: prefill once, then one token per step
        cache = model.new_cache(1, total)
        tokens = prompt
        logits = model(prompt, 0, cache, last_only=True)[:, -1]
        cached_logits = [logits]
        t0 = time.perf_counter()
        for pos in range(p["prompt_len"], total - 1):
            nxt = logits.argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, nxt], dim=1)
            logits = model(nxt, pos, cache)[:, -1]
            cached_logits.append(logits)
        t_cached = (time.perf_counter() - t0) / max(1, p["new_tokens"] - 1)
        # recompute: the same tokens, the whole prefix through the model at every step
        recomputed = []
        t0 = time.perf_counter()
        for cur in range(p["prompt_len"], total):
            recomputed.append(model(tokens[:, :cur], 0, None, last_only=True)[:, -1])
        t_full = (time.perf_counter() - t0) / p["new_tokens"]
    a, b = torch.cat(cached_logits), torch.cat(recomputed)
    err = (a - b).abs().max().item()
    same = bool((a.argmax(-1) == b.argmax(-1)).all())
    speedup = t_full / t_cached
    ctx.log_metric("max_abs_diff", err)
    ctx.log_metric("ms_per_token_cached", t_cached * 1e3)
    ctx.log_metric("ms_per_token_recompute", t_full * 1e3)
    ctx.log_metric("speedup", speedup)
    ctx.check("max_abs_diff", err, "<=", 1e-4, "cached logits equal recomputed logits (fp32)")
    ctx.check("same_greedy_tokens", float(same), "==", 1.0, "greedy choices identical at every step")
    ctx.check("speedup", speedup, ">", p["min_speedup"], "cached decoding is faster per token")
    return ctx.result(f"{t_cached * 1e3:.2f} ms/token cached vs {t_full * 1e3:.2f} ms/token recomputed "
                      f"({speedup:.1f}x) at {total} tokens")


def _corpus(vault: str) -> tuple[str, str]:
    """The training text and where it came from: the vault's notes (Markdown files inside
    the vault folder only), else the seed note in tests/data, else this package's sources."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    folder = Path(vault) if vault else root / "notes"
    if folder.is_dir():
        base = folder.resolve()
        texts = []
        for path in sorted(folder.rglob("*.md")):
            real = path.resolve()
            hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
            if real.is_file() and real.is_relative_to(base) and not hidden:
                texts.append(real.read_text(encoding="utf-8", errors="replace"))
        text = "\n\n".join(texts)
        if len(text) >= 4096:
            return text, f"{len(texts)} notes in {folder}"
    seed = root / "tests" / "data" / "seed_llama2.md"
    if seed.is_file():
        return seed.read_text(encoding="utf-8", errors="replace"), str(seed)
    files = sorted((root / "repro").rglob("*.py"))
    return "\n".join(f.read_text(encoding="utf-8") for f in files), "the repro package's sources"


@experiment(
    "llama/train-small",
    "A small Llama 2 (byte-level, GQA, RMSNorm, SwiGLU, RoPE) trained with the paper's optimiser "
    "settings on the vault's own notes reaches a stated held-out loss, below the unigram baseline",
    params=[
        Param("vault", str, "", "folder of .md notes to train on (default: the bundled notes/)"),
        Param("steps", int, 100), Param("batch", int, 12), Param("seq_len", int, 128),
        Param("dim", int, 128), Param("n_layers", int, 4), Param("n_heads", int, 4), Param("n_kv_heads", int, 2),
        Param("lr", float, 6e-3, "peak learning rate (cosine decay to 10%, as in section 2.2)"),
        Param("target_loss", float, 2.4, "held-out cross-entropy (nats per byte) to reach"),
        Param("threads", int, 1, "CPU threads (1 is fastest on a shared 2-core machine)"),
    ],
    presets={"smoke": Preset(description="100 steps of 12 x 128 bytes, about 30 s on one CPU core"),
             "full": Preset(params={"steps": 300, "batch": 16, "lr": 3e-3, "target_loss": 1.9},
                            description="300 steps of 16 x 128 bytes, a few minutes on one core (more "
                                        "overfits the ~15 kB of bundled notes)")},
)
def train_small(ctx):
    with torch_threads(ctx.params["threads"]):
        return _train_small(ctx)


def _train_small(ctx):
    import math

    import torch
    import torch.nn.functional as F

    from repro.llama.model import Transformer, count_parameters
    from repro.llama.tokenizer import ByteTokenizer

    p = ctx.params
    torch.manual_seed(ctx.seed)
    text, source = _corpus(p["vault"])
    tok = ByteTokenizer()
    data = torch.tensor(tok.encode(text), dtype=torch.long)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    seq = p["seq_len"]
    if len(val) < 4 * (seq + 1):
        raise ValueError(f"corpus from {source} is too small ({len(data)} bytes) for seq_len {seq}")
    ctx.log(f"training on {source}: {len(train):,} bytes, held out {len(val):,}")

    # baseline: a unigram model fitted on the training bytes, scored on the held-out bytes
    counts = torch.bincount(train, minlength=tok.n_words).double() + 1.0
    logp = (counts / counts.sum()).log()
    unigram = -logp[val].mean().item()
    ctx.log_metric("unigram_val_loss", unigram)

    args = _tiny_args(p["dim"], p["n_layers"], p["n_heads"], p["n_kv_heads"], tok.n_words, seq)
    model = Transformer(args)
    ctx.log_metric("n_params", count_parameters(model))
    decay = [q for q in model.parameters() if q.ndim >= 2]
    no_decay = [q for q in model.parameters() if q.ndim < 2]
    # Section 2.2: AdamW (β1 0.9, β2 0.95, ε 1e-5), weight decay 0.1, clip 1.0, cosine to 10%.
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=p["lr"], betas=(0.9, 0.95), eps=1e-5)
    steps = p["steps"]
    warmup = max(1, steps // 10)

    def lr_at(step):
        if step < warmup:
            return p["lr"] * (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return p["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    gen = torch.Generator().manual_seed(ctx.seed)
    starts_val = torch.arange(0, len(val) - seq - 1, max(1, (len(val) - seq - 1) // 16))[:16]

    def val_loss():
        model.eval()
        with torch.no_grad():
            x = torch.stack([val[s:s + seq] for s in starts_val])
            y = torch.stack([val[s + 1:s + seq + 1] for s in starts_val])
            loss = F.cross_entropy(model(x).reshape(-1, tok.n_words), y.reshape(-1)).item()
        model.train()
        return loss

    curve, val_curve = [], []
    first_val = val_loss()
    val_curve.append((0, first_val))
    ctx.log_metric("val_loss", first_val, step=0)
    for step in range(steps):
        idx = torch.randint(0, len(train) - seq - 1, (p["batch"],), generator=gen)
        x = torch.stack([train[i:i + seq] for i in idx])
        y = torch.stack([train[i + 1:i + seq + 1] for i in idx])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = F.cross_entropy(model(x).reshape(-1, tok.n_words), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        curve.append((step + 1, loss.item()))
        if (step + 1) % 10 == 0 or step + 1 == steps:
            ctx.log_metric("train_loss", loss.item(), step=step + 1)
            ctx.progress(step + 1, steps, f"loss {loss.item():.3f}")
        if (step + 1) % max(1, steps // 5) == 0 or step + 1 == steps:
            v = val_loss()
            val_curve.append((step + 1, v))
            ctx.log_metric("val_loss", v, step=step + 1)
    final = val_curve[-1][1]
    ctx.log_metric("final_val_loss", final)
    ctx.check("final_val_loss", final, "<=", p["target_loss"],
              f"held-out loss (nats/byte) reaches {p['target_loss']}")
    ctx.check("beats_unigram", final, "<", unigram,
              f"held-out loss below the unigram baseline ({unigram:.3f} nats/byte)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(*zip(*curve), label="train", lw=1)
    ax.plot(*zip(*val_curve), "o-", label="held out")
    ax.axhline(unigram, color="gray", ls="--", label="unigram baseline")
    ax.axhline(p["target_loss"], color="red", ls=":", label="target")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/byte)")
    ax.set_title("Small Llama 2 on the vault's notes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ctx.artifact_path("loss_curve.png"), dpi=100)
    plt.close(fig)
    return ctx.result(f"held-out loss {final:.3f} nats/byte after {steps} steps "
                      f"(unigram {unigram:.3f}, start {first_val:.3f})")
