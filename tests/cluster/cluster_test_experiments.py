"""Experiments for the cluster tests only (registered through PAPERKB_EXTRA_EXPERIMENT_MODULES).

``test/resumable`` is a tiny training loop that keeps a checkpoint in its run folder after
every step and, when started again (a requeued Slurm job), continues from it: the loss
curve of the run goes on where the earlier attempt stopped.
"""

from __future__ import annotations

import json
import os
import time

from repro.registry import Control, Param, Preset, Requirements, experiment

_CONTROLS = [Control("break", "the sabotaged variant: its checks must fail")]


@experiment(
    "test/resumable",
    "halves a loss each step, checkpointing after every step; resumes from the checkpoint",
    params=[Param("steps", int, 12, "training steps"), Param("step_s", float, 0.5, "seconds per step")],
    presets={"smoke": Preset(), "full": Preset()},
    controls=_CONTROLS,
)
def resumable(ctx):
    ckpt = ctx.artifact_path("checkpoint.json")
    step, loss = 0, 8.0
    if ckpt.is_file():
        state = json.loads(ckpt.read_text())
        step, loss = state["step"], state["loss"]
    ctx.log_metric("resumed_from", step, step=step)
    ctx.log_metric("attempt", float(os.environ.get("PAPERKB_ATTEMPT", "1")), step=step)
    while step < ctx.params["steps"]:
        time.sleep(ctx.params["step_s"])
        loss *= 0.5
        step += 1
        ctx.log_metric("loss", loss, step=step)
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step, "loss": loss}))
        os.replace(tmp, ckpt)
    if ctx.control == "break":
        loss = 10.0
    ctx.check("final_loss", loss, "<=", 8.0 * 0.5 ** ctx.params["steps"], "the curve went all the way down")
    return ctx.result(f"final loss {loss:g} after {step} steps")


@experiment(
    "test/ddp-loss",
    "least squares trained data-parallel: each rank a shard, gradients averaged with all_reduce",
    params=[Param("steps", int, 6, "gradient steps")],
    presets={"smoke": Preset(requires=Requirements(nproc=2)), "full": Preset(requires=Requirements(nproc=2))},
    controls=_CONTROLS,
)
def ddp_loss(ctx):
    """With equal shards, the mean of the shards' losses and gradients is the full batch's:
    the loss curve must not depend on the number of processes."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g)
    y = x @ torch.randn(4, 1, generator=g)
    xs, ys = x.chunk(ctx.world_size)[ctx.rank], y.chunk(ctx.world_size)[ctx.rank]
    w = torch.zeros(4, 1, requires_grad=True)
    losses = []
    for step in range(ctx.params["steps"]):
        loss = ((xs @ w - ys) ** 2).mean()
        w.grad = None
        loss.backward()
        shown = loss.detach().clone()
        if ctx.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(w.grad)
            dist.all_reduce(shown)
            w.grad /= ctx.world_size
            shown /= ctx.world_size
        with torch.no_grad():
            w -= 0.1 * w.grad
        losses.append(float(shown))
        ctx.log_metric("loss", losses[-1], step=step)
    if ctx.control == "break":
        losses[-1] = losses[0]
    ctx.check("loss_fell", losses[-1], "<", losses[0], "training lowers the loss")
    return ctx.result(f"loss {losses[0]:.4g} -> {losses[-1]:.4g} over {ctx.world_size} processes")
