"""Our Llama 2 against transformers' LlamaForCausalLM: same config, same weights, same run.

Measures prefill tokens/s (prompt into an empty KV cache, next-token logits only) and
greedy decode tokens/s with the KV cache, at batch 1 and 8. transformers runs with its
default DynamicCache and with its StaticCache; ours with its preallocated static cache.
Each figure is the best of ``--repeats`` runs, ours and theirs interleaved, so load from
other processes hits both alike.

    .venv/bin/python bench/llama.py                  # CPU, ~60M-parameter config
    .venv/bin/python bench/llama.py --quick          # smaller, a few seconds
    .venv/bin/python bench/llama.py --device cuda    # ~1.1B config in bf16 (needs a GPU)
    .venv/bin/python bench/llama.py --threads 1 --clock cpu --write bench/results/llama.md

``--clock cpu`` times with this process's CPU time (one thread only): on a machine shared
with other jobs, wall time measures the neighbours as much as the model.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repro.llama.model import ModelArgs, Transformer, count_parameters  # noqa: E402
from repro.llama.weights import to_transformers  # noqa: E402

from repro.environment import cpu_model  # noqa: E402

CONFIGS = {
    # CPU: a Llama 2-shaped model small enough to time on two cores (MHA, like 7B/13B).
    "cpu": dict(dim=512, n_layers=8, n_heads=8, n_kv_heads=8, vocab_size=32000),
    "cpu-quick": dict(dim=256, n_layers=4, n_heads=8, n_kv_heads=8, vocab_size=32000),
    # GPU: the ~1.1B TinyLlama shape (Llama 2 architecture, GQA with 4 KV heads).
    "cuda": dict(dim=2048, n_layers=22, n_heads=32, n_kv_heads=4, vocab_size=32000, ffn_hidden_dim=5632),
}



def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


now = time.perf_counter  # replaced by time.process_time with --clock cpu


def ours_run(model: Transformer, prompt: torch.Tensor, n_new: int, device: str, step_fn=None):
    """Prefill then greedy decode; returns (prefill seconds, decode seconds, tokens)."""
    step = model if step_fn is None else step_fn
    bsz, plen = prompt.shape
    cache = model.new_cache(bsz, plen + n_new)
    sync(device)
    t0 = now()
    logits = model(prompt, 0, cache, last_only=True)[:, -1]
    nxt = logits.argmax(-1, keepdim=True)
    sync(device)
    t1 = now()
    out = [nxt]
    for pos in range(plen, plen + n_new - 1):
        nxt = step(nxt, pos, cache)[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
    sync(device)
    t2 = now()
    return t1 - t0, t2 - t1, torch.cat(out, 1)


def hf_run(hf, prompt: torch.Tensor, n_new: int, device: str, static: bool):
    from transformers import DynamicCache, StaticCache

    bsz, plen = prompt.shape
    cache = (StaticCache(config=hf.config, max_cache_len=plen + n_new) if static
             else DynamicCache(config=hf.config))
    sync(device)
    t0 = now()
    logits = hf(prompt, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    nxt = logits.argmax(-1, keepdim=True)
    sync(device)
    t1 = now()
    out = [nxt]
    for _ in range(n_new - 1):
        nxt = hf(nxt, cache=cache, use_cache=True).logits[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
    sync(device)
    t2 = now()
    return t1 - t0, t2 - t1, torch.cat(out, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="smaller model and fewer tokens")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--prompt-len", type=int, default=None)
    ap.add_argument("--new-tokens", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="wall time, or this process's CPU time (needs --threads 1, CPU only)")
    ap.add_argument("--compile", action="store_true", help="also time ours with torch.compile on the decode step")
    ap.add_argument("--write", type=Path, default=None, help="write the markdown report here")
    args = ap.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device; run without --device cuda", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if args.device != "cpu" or torch.get_num_threads() != 1:
            print("--clock cpu needs --device cpu and --threads 1", file=sys.stderr)
            return 2
        global now
        now = time.process_time
    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    key = "cuda" if device == "cuda" else ("cpu-quick" if args.quick else "cpu")
    prompt_len = args.prompt_len or (512 if device == "cuda" else (64 if args.quick else 128))
    n_new = args.new_tokens or (128 if device == "cuda" else (16 if args.quick else 32))
    batches = [int(b) for b in args.batches.split(",")]

    torch.manual_seed(0)
    margs = ModelArgs(**CONFIGS[key], max_seq_len=max(4096, prompt_len + n_new), multiple_of=256)
    with torch.device(device):  # initialise in place: no fp32 copy of a 1B model on the host
        model = Transformer(margs)
    model = model.to(dtype).eval()
    hf = to_transformers(model, attn_implementation="sdpa")
    n_params = count_parameters(model)
    step_fn = None
    if args.compile:
        step_fn = torch.compile(model, dynamic=True)

    systems = ["ours"] + (["ours+compile"] if args.compile else []) + ["hf-dynamic", "hf-static"]
    rows = []
    with torch.inference_mode():
        for bsz in batches:
            prompt = torch.randint(0, margs.vocab_size, (bsz, prompt_len), device=device)
            best = {s: [float("inf"), float("inf")] for s in systems}
            tokens = {}
            for rep in range(args.repeats + 1):  # the first round warms up
                for s in systems:
                    if s == "ours":
                        pre, dec, toks = ours_run(model, prompt, n_new, device)
                    elif s == "ours+compile":
                        pre, dec, toks = ours_run(model, prompt, n_new, device, step_fn)
                    else:
                        pre, dec, toks = hf_run(hf, prompt, n_new, device, static=s == "hf-static")
                    tokens[s] = toks
                    if rep > 0:
                        best[s][0] = min(best[s][0], pre)
                        best[s][1] = min(best[s][1], dec)
            same = all(torch.equal(tokens[s], tokens["ours"]) for s in systems)
            for s in systems:
                prefill_tps = bsz * prompt_len / best[s][0]
                decode_tps = bsz * (n_new - 1) / best[s][1]
                rows.append((bsz, s, prefill_tps, decode_tps, same))
                print(f"batch {bsz} {s:13s} prefill {prefill_tps:10.0f} tok/s   decode {decode_tps:9.1f} tok/s"
                      f"   same greedy tokens: {same}", flush=True)

    def ratio(bsz, col, other):
        mine = next(r for r in rows if r[0] == bsz and r[1] == "ours")
        theirs = next(r for r in rows if r[0] == bsz and r[1] == other)
        return mine[col] / theirs[col]

    machine = (f"{torch.get_num_threads()}-thread CPU, {cpu_model()}" if device == "cpu"
               else torch.cuda.get_device_name())
    lines = [
        f"## Llama 2: ours vs transformers LlamaForCausalLM ({device})",
        "",
        f"- date: {datetime.date.today().isoformat()}; machine: {machine}; torch {torch.__version__}; "
        f"transformers {__import__('transformers').__version__}",
        f"- config: dim {margs.dim}, {margs.n_layers} layers, {margs.n_heads} heads / {margs.n_kv_heads} KV heads, "
        f"FFN {margs.hidden_dim}, vocab {margs.vocab_size}; {n_params / 1e6:.0f}M parameters; {dtype}",
        f"- prompt {prompt_len} tokens (prefill into an empty cache, last-token logits only), then "
        f"{n_new - 1} greedy decode steps; best of {args.repeats} interleaved runs; "
        f"{'process CPU time' if args.clock == 'cpu' else 'wall-clock time'}",
        "",
        "| batch | system | prefill tok/s | decode tok/s | prefill vs hf-dynamic | decode vs hf-dynamic | decode vs hf-static | same tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bsz, s, pre, dec, same in rows:
        base = next(r for r in rows if r[0] == bsz and r[1] == "hf-dynamic")
        stat = next(r for r in rows if r[0] == bsz and r[1] == "hf-static")
        lines.append(f"| {bsz} | {s} | {pre:,.0f} | {dec:,.1f} | {pre / base[2]:.2f}x | {dec / base[3]:.2f}x | "
                     f"{dec / stat[3]:.2f}x | {same} |")
    summary = ", ".join(f"batch {b}: prefill {ratio(b, 2, 'hf-dynamic'):.2f}x, decode {ratio(b, 3, 'hf-dynamic'):.2f}x"
                        for b in batches)
    lines += ["", f"Ours relative to transformers (default DynamicCache): {summary}.", ""]
    report = "\n".join(lines)
    print()
    print(report)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
