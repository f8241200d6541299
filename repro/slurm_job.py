"""The compute-node side of a Slurm run: what submitit calls inside the job.

:class:`ClusterJob` is pickled by ``repro.slurm`` on the submitting machine and called by
submitit on each task of the job (``srun``). It runs the same ``python -m repro.worker
SPEC.json`` as a local run, in the run's folder on the shared filesystem, appending to
its ``stdout.log``/``stderr.log`` and ``events.jsonl``. It never opens the tracker's
SQLite file: the submitting side ingests the run folder when Slurm says the job ended.

Several tasks (``--nodes``, or a preset written for several processes) get
torch.distributed's environment from Slurm's (rank, world size, master address: submitit's
``TorchDistributedEnvironment``), the same variables torchrun sets, so the worker's
training code is the same as under torchrun.

A time limit or a preemption sends SIGUSR2 (``--signal=USR2@...``, set by submitit):
submitit then calls :meth:`ClusterJob.checkpoint` and requeues the job; the next attempt
finds ``PAPERKB_ATTEMPT`` > 1 and the run folder of the earlier ones (where an experiment
keeps its resumable checkpoints). Each attempt is one ``attempt`` event in ``events.jsonl``.

This module imports neither torch nor the tracker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import submitit

from repro.worker import PARENT_PID_ENV, EventWriter

ATTEMPT_ENV = "PAPERKB_ATTEMPT"


def slurm_facts() -> dict[str, Any]:
    """What Slurm tells a job about itself (cluster, job id, nodes, GPUs), for the run's record."""
    env = os.environ
    facts = {
        "cluster": env.get("SLURM_CLUSTER_NAME"),
        "job_id": env.get("SLURM_JOB_ID"),
        "array_job_id": env.get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
        "nodes": env.get("SLURM_JOB_NODELIST"),
        "num_nodes": env.get("SLURM_JOB_NUM_NODES"),
        "partition": env.get("SLURM_JOB_PARTITION"),
        "gpus_on_node": env.get("SLURM_GPUS_ON_NODE"),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "restart_count": env.get("SLURM_RESTART_COUNT"),
        "node": env.get("SLURMD_NODENAME"),
    }
    return {k: v for k, v in facts.items() if v is not None}


class ClusterJob(submitit.helpers.Checkpointable):
    """Run one paperkb run (its ``spec.json``) inside a Slurm job; requeued on timeout or
    preemption (submitit's checkpointing: the spec is all the state, the experiment keeps
    its own checkpoints in the run folder)."""

    def __init__(self, spec_path: str) -> None:
        self.spec_path = spec_path

    def __call__(self) -> int:
        spec = json.loads(Path(self.spec_path).read_text(encoding="utf-8"))
        run_dir = Path(spec["run_dir"])
        job_env = submitit.JobEnvironment()
        attempt = int(os.environ.get("SLURM_RESTART_COUNT") or 0) + 1
        child_env = dict(os.environ)
        child_env.pop(PARENT_PID_ENV, None)  # no paperkb process to watch here: Slurm ends the job
        child_env[ATTEMPT_ENV] = str(attempt)
        child_env["PYTHONUNBUFFERED"] = "1"
        if job_env.num_tasks > 1:
            # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT from Slurm's variables
            dist = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            child_env.update(
                RANK=str(dist.rank),
                WORLD_SIZE=str(dist.world_size),
                LOCAL_RANK=str(dist.local_rank),
                LOCAL_WORLD_SIZE=str(dist.local_world_size),
                MASTER_ADDR=str(dist.master_addr),
                MASTER_PORT=str(dist.master_port),
            )
        if job_env.global_rank == 0:
            EventWriter(spec["events"]).emit(
                "attempt", attempt=attempt, time=time.time(), host=job_env.hostname, slurm=slurm_facts()
            )
        cmd = [sys.executable, "-m", "repro.worker", self.spec_path]
        with open(run_dir / "stdout.log", "ab") as out, open(run_dir / "stderr.log", "ab") as err:
            proc = subprocess.run(
                cmd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=run_dir,
                env=child_env,
                preexec_fn=_ignore_requeue_signal,
            )
        return proc.returncode


def _ignore_requeue_signal() -> None:
    """In the worker: Slurm sends SIGUSR2 to every process of the job before a time limit or
    a preemption. It is submitit's cue (in this process) to requeue; the experiment goes on
    until the requeue ends it, instead of dying half-way through writing a checkpoint."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
