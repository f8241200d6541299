"""torchrun with gloo matches one process; a resumed run continues the same loss curve;
the JSONL readers report bad lines by file and line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from paperkb.errors import PaperkbError  # noqa: E402
from repro.finetune.data import read_preferences, read_sft  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _train(args, out: Path, nproc: int = 1) -> list[float]:
    if nproc == 1:
        cmd = [sys.executable, "-m", "repro.finetune.train"]
    else:
        torchrun = shutil.which("torchrun") or pytest.skip("torchrun not found")
        cmd = [torchrun, "--standalone", f"--nproc_per_node={nproc}", "-m", "repro.finetune.train"]
    proc = subprocess.run(cmd + args + ["--out", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "losses.json").read_text())


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    args = ["sft", "--toy", "--steps", "4", "--batch", "8", "--seq-len", "64", "--dim", "32"]
    one = _train(args, tmp_path / "one")
    two = _train(args, tmp_path / "two", nproc=2)
    assert len(one) == len(two) == 4
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-5
    assert one[-1] < one[0]


def test_resumed_run_continues_the_same_loss_curve(tmp_path):
    import random

    from repro.finetune.data import ToyWorld
    from repro.finetune.loop import OptimConfig, load_checkpoint, make_optimizer, make_scheduler
    from repro.finetune.sft import SFTConfig, dialog_example, train_sft
    from repro.llama.model import ModelArgs, Transformer

    world = ToyWorld()
    tok = world.tokenizer(tmp_path / "tok")
    data = [dialog_example(x, tok) for x in world.sft_dialogs(200, random.Random(0))]
    args = ModelArgs(dim=32, n_layers=1, n_heads=2, vocab_size=tok.n_words, max_seq_len=64, multiple_of=32)
    cfg = SFTConfig(steps=6, batch_size=8, seq_len=64)
    optim = OptimConfig(lr=3e-3, warmup_steps=2, total_steps=6)

    def run(model, **kw):
        losses = []
        train_sft(model, data, cfg, optim, on_step=lambda s, m: losses.append((s, m["loss"])), **kw)
        return losses

    torch.manual_seed(0)
    straight = run(Transformer(args), checkpoint_dir=tmp_path / "ckpt", checkpoint_at=3)
    torch.manual_seed(123)  # a different initialisation, overwritten by the checkpoint
    fresh = Transformer(args)
    opt = make_optimizer(fresh, optim)
    sch = make_scheduler(opt, optim)
    state = load_checkpoint(tmp_path / "ckpt", fresh, opt, sch)
    assert state["step"] == 3
    resumed = run(fresh, start_step=3, state=(opt, sch))
    assert [s for s, _ in resumed] == [3, 4, 5]
    assert max(abs(a - b) for (_, a), (_, b) in zip(straight[3:], resumed)) < 1e-6
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "optimizer.safetensors", "trainer_model.safetensors", "trainer_state.json"]


def test_resume_from_a_missing_checkpoint_is_one_error(tmp_path):
    from repro.finetune.loop import OptimConfig, load_checkpoint, make_optimizer, make_scheduler

    model = torch.nn.Linear(2, 2)
    opt = make_optimizer(model, OptimConfig())
    with pytest.raises(PaperkbError, match="not a checkpoint"):
        load_checkpoint(tmp_path, model, opt, make_scheduler(opt, OptimConfig()))


def test_jsonl_readers(tmp_path):
    sft = tmp_path / "sft.jsonl"
    sft.write_text('{"prompt": "hi", "completion": "yo"}\n\n'
                   '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},'
                   ' {"role": "assistant", "content": "a"}]}\n')
    dialogs = read_sft(sft)
    assert dialogs[0][1] == {"role": "assistant", "content": "yo"} and dialogs[1][0]["role"] == "system"
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text('{"prompt": "p", "chosen": "a", "rejected": "b", "rating": "better"}\n'
                     '{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    assert [p.level for p in read_preferences(prefs)] == [1, 3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{oops\n')
    with pytest.raises(PaperkbError, match=r"bad.jsonl:2: not JSON"):
        read_preferences(bad)
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b", "rating": 7}\n')
    with pytest.raises(PaperkbError, match=r"bad.jsonl:1: rating"):
        read_preferences(bad)
    with pytest.raises(PaperkbError, match="cannot read"):
        read_sft(tmp_path / "missing.jsonl")


def test_reward_model_checkpoint_round_trips(tmp_path):
    from repro.finetune.data import ToyWorld
    from repro.finetune.heads import ScalarHeadModel, load_scalar_head_model, save_scalar_head_model
    from repro.finetune.reward import encode_answer, score
    from repro.llama.model import ModelArgs, Transformer

    world = ToyWorld()
    tok = world.tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    rm = ScalarHeadModel(Transformer(ModelArgs(dim=32, n_layers=1, n_heads=2, vocab_size=tok.n_words,
                                               max_seq_len=32, multiple_of=32))).eval()
    seqs = [encode_answer(tok, "rate w01 w02", "w03 w04 w05"), encode_answer(tok, "rate w01", "w00")]
    save_scalar_head_model(rm, tmp_path / "rm", tok)
    again = load_scalar_head_model(tmp_path / "rm")
    with torch.no_grad():
        assert (score(rm, seqs) - score(again, seqs)).abs().max().item() < 1e-6
    with pytest.raises(PaperkbError, match="not a reward-model checkpoint"):
        load_scalar_head_model(tmp_path / "tok")
