"""Experiments for the cluster tests only (registered through PAPERKB_EXTRA_EXPERIMENT_MODULES).

``test/resumable`` is a tiny training loop that keeps a checkpoint in its run folder after
every step and, when started again (a requeued Slurm job), continues from it: the loss
curve of the run goes on where the earlier attempt stopped.
"""

from __future__ import annotations

import json
import os
import time

from repro.registry import Control, Param, Preset, experiment

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
