"""Deterministic experiments for the reproduction-framework tests only.

The worker imports this module when ``PAPERKB_EXTRA_EXPERIMENT_MODULES`` names it (the
tests set that variable and put this folder on PYTHONPATH); nothing else registers them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from repro.registry import Control, Metric, Param, Preset, Requirements, SeedRule, experiment

# Every experiment must declare a negative control; these test ones share one.
_CONTROLS = [Control("break", "the sabotaged variant: its checks must fail")]


@experiment(
    "test/ok",
    "a loss curve that falls below a threshold",
    params=[Param("steps", int, 5, "points on the curve", bounds=(1, 10_000)),
            Param("target", float, 1.0, "the loss to beat", threshold=True)],
    presets={"smoke": Preset(), "full": Preset(params={"steps": 8})}, controls=_CONTROLS,
    metrics=[Metric("loss", "", "the falling curve"), Metric("seed", "", "the seed handed in")],
    scope="a halving curve from 4.0")
def ok(ctx):
    loss = 4.0
    for step in range(ctx.params["steps"]):
        loss = loss * 0.5
        ctx.log_metric("loss", loss, step=step)
        ctx.progress(step + 1, ctx.params["steps"], f"step {step + 1}")
    ctx.log_metric("seed", ctx.seed)
    if ctx.control == "break":
        loss = 10.0
    ctx.check("final_loss", loss, "<=", ctx.params["target"], "the curve ends under target")
    return ctx.result(f"final loss {loss:g}")


@experiment("test/raise", "raises an exception half-way", params=[], controls=_CONTROLS)
def boom(ctx):
    ctx.log_metric("before", 1.0)
    raise RuntimeError("boom from test/raise")


@experiment("test/no-check", "states no threshold, so it cannot support anything", controls=_CONTROLS)
def no_check(ctx):
    ctx.log_metric("x", 1.0)
    return ctx.result()


@experiment(
    "test/sleep",
    "logs a metric, writes its pid, then sleeps",
    params=[Param("seconds", float, 60.0)], controls=_CONTROLS)
def sleep(ctx):
    ctx.artifact_path("pid.txt").write_text(str(os.getpid()))
    ctx.log_metric("started", 1.0)
    time.sleep(ctx.params["seconds"])
    ctx.check("slept", 1.0, "==", 1.0)
    return ctx.result()


@experiment("test/spawn-and-hang", "starts a grandchild process, then hangs", controls=_CONTROLS)
def spawn_and_hang(ctx):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    ctx.artifact_path("grandchild.pid").write_text(str(child.pid))
    ctx.log_metric("grandchild_pid", child.pid)
    time.sleep(300)
    ctx.check("never", 0.0, "==", 1.0)
    return ctx.result()


@experiment(
    "test/allreduce",
    "every rank contributes rank+1; the all_reduce sum must be n(n+1)/2",
    presets={"smoke": Preset(requires=Requirements(nproc=2)), "full": Preset(requires=Requirements(nproc=2))}, controls=_CONTROLS)
def allreduce(ctx):
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(ctx.rank + 1)])
    dist.all_reduce(t)
    n = ctx.world_size
    ctx.log_metric("rank_value", ctx.rank + 1)
    ctx.log_metric("sum", float(t.item()))
    ctx.check("world_size", n, "==", 2)
    ctx.check("allreduce_sum", float(t.item()), "==", n * (n + 1) / 2)
    return ctx.result(f"sum {t.item():g} over {n} ranks")


@experiment(
    "test/needs-gpu",
    "full preset needs a CUDA GPU with 40 GB",
    presets={"smoke": Preset(), "full": Preset(requires=Requirements(device="cuda", min_gpu_memory_gb=40))}, controls=_CONTROLS)
def needs_gpu(ctx):
    ctx.check("ran", 1.0, "==", 1.0)
    return ctx.result()


@experiment("test/random", "draws from random, numpy and torch after the worker seeded them", controls=_CONTROLS)
def draws(ctx):
    import random

    import numpy
    import torch

    ctx.log_metric("python_draw", random.random())
    ctx.log_metric("numpy_draw", float(numpy.random.rand()))
    ctx.log_metric("torch_draw", float(torch.rand(1).item()))
    ctx.check("drew", 1.0, "==", 1.0)
    return ctx.result()


@experiment(
    "test/needs-triton",
    "full preset needs the triton package",
    presets={"smoke": Preset(), "full": Preset(requires=Requirements(triton=True))}, controls=_CONTROLS)
def needs_triton(ctx):
    ctx.check("ran", 1.0, "==", 1.0)
    return ctx.result()


@experiment(
    "test/coin",
    "passes unless its seed is one of fail_seeds or 100 or more: a stand-in for a seed-dependent training run",
    params=[Param("fail_seeds", list, [], "seeds whose run fails")],
    presets={"smoke": Preset(), "full": Preset()},
    seeds={"smoke": (0, 1, 2), "full": (0, 1, 2, 3, 4)},
    controls=[Control("always-fail", "every seed fails")],
    metrics=[Metric("draw", "", "1 when the seed passed")],
    stochastic=True,
    seed_rule=SeedRule(min_fraction=0.6, why="a test rule: 2 of 3, 3 of 5"))
def coin(ctx):
    ok = ctx.seed not in [int(s) for s in ctx.params["fail_seeds"]] and ctx.seed < 100 and ctx.control is None
    ctx.log_metric("draw", float(ok))
    ctx.check("seed_passes", float(ok), "==", 1.0)
    return ctx.result()


@experiment(
    "test/wait-for-file",
    "logs a short curve, then reports progress until a file exists (a test's cue to finish)",
    params=[Param("path", str, ""), Param("limit", float, 120.0)], controls=_CONTROLS)
def wait_for_file(ctx):
    for step in range(3):
        ctx.log_metric("loss", 1.0 / (step + 1), step=step)
    deadline = time.monotonic() + ctx.params["limit"]
    while not os.path.exists(ctx.params["path"]) and time.monotonic() < deadline:
        ctx.progress(0, 1, "waiting for the cue")
        time.sleep(0.2)
    ctx.check("cue_seen", float(os.path.exists(ctx.params["path"])), "==", 1.0)
    return ctx.result()
