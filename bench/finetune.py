"""Training throughput of the fine-tuning steps (repro.finetune), beside TRL's trainers.

Tokens per second of one optimiser step (forward, backward, clip, AdamW, schedule), for
SFT (padded and packed), the reward model and DPO, on a small Llama-shaped model, with
TRL's SFTTrainer and RewardTrainer on the same model (converted to transformers'
LlamaForCausalLM with the same weights), the same batch size and the same sequence lengths.
Every example has the same length, so padding costs nothing and both sides process the
same number of tokens per step. The pipeline section times the whole toy pipeline
(SFT -> reward model -> rejection sampling -> PPO -> GAtt) at the smoke presets.

    .venv/bin/python bench/finetune.py                        # ~3 minutes on 2 cores
    .venv/bin/python bench/finetune.py --quick                # smaller, ~1 minute
    .venv/bin/python bench/finetune.py --write bench/results/finetune.md

Wall time and this process's CPU time are both reported: the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repro.environment import cpu_model
from repro.finetune.loop import OptimConfig, make_optimizer, make_scheduler, step_optimizer
from repro.finetune.losses import IGNORE
from repro.llama.model import ModelArgs, Transformer

CONFIGS = {"full": dict(dim=256, n_layers=4, n_heads=4, vocab_size=2000, prompt=32, answer=96, batch=8),
           "quick": dict(dim=128, n_layers=2, n_heads=4, vocab_size=1000, prompt=16, answer=48, batch=8)}


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


class Clock:
    def __init__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _examples(cfg, n: int, seed: int):
    rng = random.Random(seed)
    v = cfg["vocab_size"]
    out = []
    for _ in range(n):
        p = [1] + [rng.randrange(3, v) for _ in range(cfg["prompt"] - 1)]
        a = [rng.randrange(3, v) for _ in range(cfg["answer"] - 1)] + [2]
        out.append((p, a))
    return out


def _model(cfg):
    torch.manual_seed(0)
    return Transformer(ModelArgs(dim=cfg["dim"], n_layers=cfg["n_layers"], n_heads=cfg["n_heads"],
                                 vocab_size=cfg["vocab_size"], max_seq_len=cfg["prompt"] + cfg["answer"],
                                 multiple_of=32))


def _time_steps(step_fn, steps: int, warmup: int = 2) -> tuple[float, float]:
    for s in range(warmup):
        step_fn(s)
    c = Clock()
    for s in range(steps):
        step_fn(warmup + s)
    wall, cpu = c.read()
    return wall / steps, cpu / steps


# ---------------------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------------------
def ours_sft(cfg, steps, packing: bool):
    from repro.finetune.loop import Dist
    from repro.finetune.sft import batch_loss

    model = _model(cfg)
    optim = OptimConfig(lr=1e-4, total_steps=steps + 2)
    opt, sch = make_optimizer(model, optim), None
    sch = make_scheduler(opt, optim)
    data = [(p + a, [IGNORE] * len(p) + a) for p, a in _examples(cfg, 256, 0)]
    n = cfg["prompt"] + cfg["answer"]
    d = Dist()

    def step(s):
        batch = [data[(s * cfg["batch"] + i) % len(data)] for i in range(cfg["batch"])]
        loss, _, _ = batch_loss(model, batch, n, d, packing)
        loss.backward()
        step_optimizer(model, opt, sch, 1.0)

    return _time_steps(step, steps), cfg["batch"] * n


def ours_reward(cfg, steps):
    from repro.finetune.heads import ScalarHeadModel
    from repro.finetune.losses import ranking_loss
    from repro.finetune.reward import score

    model = ScalarHeadModel(_model(cfg))
    optim = OptimConfig(lr=1e-4, total_steps=steps + 2)
    opt = make_optimizer(model, optim)
    sch = make_scheduler(opt, optim)
    ex = _examples(cfg, 512, 1)
    pairs = [(ex[2 * i][0] + ex[2 * i][1], ex[2 * i][0] + ex[2 * i + 1][1]) for i in range(256)]

    def step(s):
        batch = [pairs[(s * cfg["batch"] + i) % len(pairs)] for i in range(cfg["batch"])]
        r = score(model, [b[0] for b in batch] + [b[1] for b in batch])
        ranking_loss(r[:len(batch)], r[len(batch):], 1.0).backward()
        step_optimizer(model, opt, sch, 1.0)

    n = cfg["prompt"] + cfg["answer"]
    return _time_steps(step, steps), 2 * cfg["batch"] * n


def ours_dpo(cfg, steps):
    import copy

    from repro.finetune.dpo import sequence_logprobs
    from repro.finetune.losses import dpo_loss

    model = _model(cfg)
    ref = copy.deepcopy(model).eval()
    optim = OptimConfig(lr=1e-4, total_steps=steps + 2)
    opt = make_optimizer(model, optim)
    sch = make_scheduler(opt, optim)
    ex = _examples(cfg, 512, 1)
    lab = lambda p, a: (p + a, [IGNORE] * len(p) + a)
    pairs = [(lab(*ex[2 * i]), lab(ex[2 * i][0], ex[2 * i + 1][1])) for i in range(256)]

    def step(s):
        batch = [pairs[(s * cfg["batch"] + i) % len(pairs)] for i in range(cfg["batch"])]
        seqs = [b[0] for b in batch] + [b[1] for b in batch]
        lp = sequence_logprobs(model, seqs)
        with torch.no_grad():
            rl = sequence_logprobs(ref, seqs)
        k = len(batch)
        dpo_loss(lp[:k], lp[k:], rl[:k], rl[k:], 0.1).backward()
        step_optimizer(model, opt, sch, 1.0)

    n = cfg["prompt"] + cfg["answer"]
    return _time_steps(step, steps), 2 * cfg["batch"] * n


# ---------------------------------------------------------------------------------------
# TRL
# ---------------------------------------------------------------------------------------
def _hf_tokenizer(cfg, tmp: Path):
    from transformers import PreTrainedTokenizerFast

    from repro.llama.tokenizers_real import train_bpe, vault_texts

    train_bpe(vault_texts(Path(__file__).resolve().parents[1] / "notes"), cfg["vocab_size"] - 8, tmp)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp / "tokenizer.json"), bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>", pad_token="<unk>")
    return tok


class _StepTimer:
    def __init__(self, warmup: int):
        self.warmup, self.times, self.cpu = warmup, [], []

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer._t = (time.perf_counter(), time.process_time())

            def on_step_end(self, args, state, control, **kw):
                if state.global_step > timer.warmup:
                    timer.times.append(time.perf_counter() - timer._t[0])
                    timer.cpu.append(time.process_time() - timer._t[1])

        return CB()

    def per_step(self) -> tuple[float, float]:
        return sum(self.times) / len(self.times), sum(self.cpu) / len(self.cpu)


def _trl_args(cls, steps, cfg, out, **extra):
    return cls(output_dir=str(out), max_steps=steps + 2, per_device_train_batch_size=cfg["batch"],
               learning_rate=1e-4, lr_scheduler_type="cosine", weight_decay=0.1, adam_beta2=0.95, adam_epsilon=1e-5,
               max_grad_norm=1.0, logging_steps=1000, save_strategy="no", report_to=[], use_cpu=True,
               dataloader_num_workers=0, seed=0,
               # TRL 1.x defaults to bf16 autocast and gradient checkpointing; ours runs fp32 without
               # recomputation, so both are turned off for a like-for-like step
               bf16=False, gradient_checkpointing=False, **extra)


def trl_sft(cfg, steps, tmp: Path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from repro.llama.weights import to_transformers

    tok = _hf_tokenizer(cfg, tmp / "tok")
    ex = _examples(cfg, 256, 0)
    ds = Dataset.from_list([{"input_ids": p + a, "completion_mask": [0] * len(p) + [1] * len(a)} for p, a in ex])
    model = to_transformers(_model(cfg))
    timer = _StepTimer(2)
    args = _trl_args(SFTConfig, steps, cfg, tmp / "sft", completion_only_loss=True, packing=False,
                     max_length=cfg["prompt"] + cfg["answer"])
    SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
               callbacks=[timer.callback()]).train()
    return timer.per_step(), cfg["batch"] * (cfg["prompt"] + cfg["answer"])


def trl_reward(cfg, steps, tmp: Path):
    from datasets import Dataset
    from transformers import LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from repro.llama.weights import to_transformers

    tok = _hf_tokenizer(cfg, tmp / "tok")
    ex = _examples(cfg, 512, 1)
    ds = Dataset.from_list([{"chosen_ids": ex[2 * i][0] + ex[2 * i][1],
                             "rejected_ids": ex[2 * i][0] + ex[2 * i + 1][1], "margin": 1.0} for i in range(256)])
    lm = to_transformers(_model(cfg))
    lm.config.num_labels = 1
    lm.config.pad_token_id = tok.pad_token_id
    model = LlamaForSequenceClassification(lm.config)
    model.model.load_state_dict(lm.model.state_dict())
    timer = _StepTimer(2)
    args = _trl_args(RewardConfig, steps, cfg, tmp / "rm", max_length=cfg["prompt"] + cfg["answer"])
    RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                  callbacks=[timer.callback()]).train()
    return timer.per_step(), 2 * cfg["batch"] * (cfg["prompt"] + cfg["answer"])


# ---------------------------------------------------------------------------------------
def pipeline_section() -> list[str]:
    """The whole toy pipeline at the smoke presets, each step timed (wall and CPU)."""
    from repro.registry import run_inline

    lines = ["| step | experiment (smoke) | verdict | wall (s) | CPU (s) |", "|---|---|---|---|---|"]
    total_w = total_c = 0.0
    for label, exp in (("SFT", "finetune/prompt-masking"), ("reward model", "finetune/reward-margin"),
                       ("rejection sampling", "finetune/rejection-sampling"), ("PPO", "finetune/ppo-kl"),
                       ("GAtt", "finetune/ghost-attention"), ("DPO", "finetune/dpo")):
        c = Clock()
        with tempfile.TemporaryDirectory() as tmp:
            r = run_inline(exp, "smoke", run_dir=tmp)
        wall, cpu = c.read()
        total_w += wall
        total_c += cpu
        lines.append(f"| {label} | {exp} | {r.verdict} | {wall:.1f} | {cpu:.1f} |")
        print(lines[-1], flush=True)
    lines.append(f"| **total** | | | **{total_w:.1f}** | **{total_c:.1f}** |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-trl", action="store_true")
    ap.add_argument("--no-pipeline", action="store_true")
    ap.add_argument("--write", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = CONFIGS["quick" if a.quick else "full"]
    load0 = _loadavg()
    out = [f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
           f"- Machine: {os.cpu_count()}-core {cpu_model()}; torch {torch.__version__}; {a.threads} torch thread(s)",
           f"- Model: Llama 2 shape, dim {cfg['dim']}, {cfg['n_layers']} layers, {cfg['n_heads']} heads, vocabulary "
           f"{cfg['vocab_size']}; batch {cfg['batch']} of {cfg['prompt']} prompt + {cfg['answer']} answer tokens; "
           f"{a.steps} timed steps after 2 warm-up steps", "",
           "| step | ours tok/s (wall) | ours tok/s (CPU) | TRL tok/s (wall) | TRL tok/s (CPU) | ours / TRL (CPU) |",
           "|---|---|---|---|---|---|"]
    rows = [("SFT, padded", lambda: ours_sft(cfg, a.steps, False), trl_sft),
            ("SFT, packed", lambda: ours_sft(cfg, a.steps, True), None),
            ("reward model", lambda: ours_reward(cfg, a.steps), trl_reward),
            # TRL's DPOTrainer (1.16) extracts the prompt from text columns before tokenising, so it
            # cannot be fed the same token batch; ours is timed alone.
            ("DPO", lambda: ours_dpo(cfg, a.steps), None)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, ours, theirs in rows:
            (w, c), tokens = ours()
            cells = [f"{tokens / w:,.0f}", f"{tokens / c:,.0f}"]
            if theirs is not None and not a.no_trl:
                try:
                    (tw, tc), ttokens = theirs(cfg, a.steps, Path(tmp) / label.replace(" ", "_").replace(",", ""))
                    cells += [f"{ttokens / tw:,.0f}", f"{ttokens / tc:,.0f}", f"{(tokens / c) / (ttokens / tc):.2f}x"]
                except Exception as exc:  # report, do not hide: TRL's API moves
                    cells += [f"failed: {type(exc).__name__}: {str(exc)[:80]}", "", ""]
            else:
                cells += ["-", "-", "-"]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
            print(out[-1], flush=True)
    if not a.no_pipeline:
        out += ["", "Whole toy pipeline, smoke presets (one process, one thread):", ""] + pipeline_section()
    out.append("")
    out.append(f"- Load average (1, 5, 15 min): {load0} at the start, {_loadavg()} at the end")
    text = "\n".join(out) + "\n"
    print(text)
    if a.write:
        a.write.write_text("# Fine-tuning throughput (bench/finetune.py)\n\n" + text)


if __name__ == "__main__":
    main()
