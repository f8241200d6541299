"""The child-process side of a run: ``python -m repro.worker SPEC.json``.

``repro.runner`` starts this module in its own session (so a timeout can end the whole
process tree), directly or under torchrun for ``--nproc N``. It reads the run's spec
(experiment id, parameter values, preset, device, seed, folders), runs the experiment
function and reports what happens as JSON lines appended to the spec's ``events`` file:

* ``{"type": "started", "pid", "rank", "world_size"}``
* ``{"type": "metric", "name", "value", "step", "time", "rank"}``
* ``{"type": "progress", "done", "total", "message"}``
* ``{"type": "artifact", "name"}``
* ``{"type": "environment", "environment"}`` (torch/CUDA/GPU facts, at the end), then
* ``{"type": "result", "result": Result.to_dict()}`` and exit code 0, or
* ``{"type": "error", "traceback", "rank"}`` and exit code 1.

With several processes (torchrun sets RANK/WORLD_SIZE/LOCAL_RANK) the process group is
initialised (NCCL on GPUs, gloo on CPU); each node's local rank 0 streams its metrics,
the other ranks' metrics are gathered to rank 0 at the end, and rank 0's result is
broadcast so that every node reports the same verdict.

A watchdog thread ends the process group when the paperkb process that started the run
(``PAPERKB_PARENT_PID``) is gone, so a killed paperkb never leaves experiments running.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro import registry
from repro.processes import pid_alive as _pid_alive
from repro.registry import MetricPoint, Result, RunContext

PARENT_PID_ENV = "PAPERKB_PARENT_PID"
EXTRA_MODULES_ENV = "PAPERKB_EXTRA_EXPERIMENT_MODULES"


def load_experiments() -> dict[str, registry.Experiment]:
    """The registry, plus the modules named in ``$PAPERKB_EXTRA_EXPERIMENT_MODULES``.

    That variable exists for paperkb's own tests (experiments that raise, hang or spawn
    processes). It is read from the process environment only: nothing in a note can set
    it, just as nothing in a note can set PYTHONPATH.
    """
    exps = registry.load_all()
    extra = os.environ.get(EXTRA_MODULES_ENV, "").strip()
    if extra:
        import importlib

        for name in filter(None, (m.strip() for m in extra.split(","))):
            importlib.import_module(name)
        exps = registry.load_all()  # now includes what those modules registered
    return exps


class EventWriter:
    """Appends one JSON object per line; each line is a single ``write`` on an O_APPEND
    descriptor, so lines from several ranks never interleave."""

    def __init__(self, path: Path | str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()

    def emit(self, type_: str, **data: Any) -> None:
        line = json.dumps({"type": type_, **data}, default=str, allow_nan=True) + "\n"
        with self.lock:
            os.write(self.fd, line.encode("utf-8"))


class WorkerContext(RunContext):
    """A RunContext that streams metrics, progress and artifacts to the events file."""

    def __init__(self, params: dict[str, Any], *, writer: EventWriter | None, **kw: Any) -> None:
        super().__init__(params, **kw)
        self._writer = writer
        self._last_progress = 0.0

    def _on_metric(self, m: MetricPoint) -> None:
        if self._writer is not None:
            self._writer.emit("metric", name=m.name, value=m.value, step=m.step, time=m.time, rank=self.rank)

    def _on_progress(self, done: float, total: float, message: str) -> None:
        now = time.monotonic()
        if self._writer is not None and (now - self._last_progress > 0.2 or done >= total):
            self._last_progress = now
            self._writer.emit("progress", done=done, total=total, message=message, rank=self.rank)

    def artifact_path(self, name: str) -> Path:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"artifact name {name!r} must be a relative path inside the run folder")
        path = super().artifact_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._writer is not None:
            self._writer.emit("artifact", name=rel.as_posix(), rank=self.rank)
        return path


def _start_watchdog() -> None:
    """End this process group when paperkb (or our direct parent) is gone."""
    parent = int(os.environ.get(PARENT_PID_ENV) or 0)
    ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid or (parent and not _pid_alive(parent)):
                try:
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                finally:
                    os._exit(137)

    threading.Thread(target=watch, name="paperkb-watchdog", daemon=True).start()


_SEEDERS: dict[str, Callable[[Any, int], Any]] = {
    "torch": lambda module, seed: module.manual_seed(seed),
    "numpy": lambda module, seed: module.random.seed(seed % 2**32),
}


class _SeedOnImport(importlib.abc.MetaPathFinder):
    """Seeds torch / numpy right after the experiment first imports them.

    Importing torch costs over a second; an experiment that never uses it should not pay
    that, and one that does must get the seed before its first random draw.
    """

    def __init__(self, seed: int, names: set[str]) -> None:
        self.seed = seed
        self.pending = set(names)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.pending:
            return None
        self.pending.discard(name)
        if not self.pending:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # we no longer answer for it: no recursion
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module
        seed, seeder = self.seed, _SEEDERS[name]

        def exec_and_seed(module: Any) -> None:
            exec_module(module)
            seeder(module, seed)

        spec.loader.exec_module = exec_and_seed  # type: ignore[method-assign]
        return spec


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    later = set()
    for name, seeder in _SEEDERS.items():
        if name in sys.modules:
            seeder(sys.modules[name], seed)
        else:
            later.add(name)
    if later:
        sys.meta_path.insert(0, _SeedOnImport(seed, later))


def _environment() -> dict[str, Any]:
    """torch/CUDA facts if the experiment used torch; else only that it did not."""
    if "torch" in sys.modules:
        from repro.environment import torch_environment

        return torch_environment()
    return {"torch": {"imported": False}}


def run(spec: dict[str, Any]) -> int:
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    writer = EventWriter(spec["events"])
    stream = local_rank == 0  # one streaming writer per node
    dist: Any = None  # torch.distributed, once a process group is started
    try:
        load_experiments()
        exp = registry.get(spec["experiment"])
        control = spec.get("control") or None
        if control is not None:
            exp.control(control)  # an unknown name is an error before anything runs
        scale = spec.get("scale") or exp.scale_of(spec["preset"])
        _seed_everything(int(spec.get("seed", 0)))
        device = spec.get("device") or "cpu"
        if world > 1:
            import torch
            import torch.distributed as dist

            if device.startswith("cuda"):
                torch.cuda.set_device(local_rank)
                device = f"cuda:{local_rank}"
                dist.init_process_group(backend="nccl")
            else:
                dist.init_process_group(backend="gloo")
        if stream:
            writer.emit("started", pid=os.getpid(), rank=rank, world_size=world)
        ctx = WorkerContext(
            spec["params"],
            writer=writer if stream else None,
            preset=spec["preset"],
            device=device,
            seed=int(spec.get("seed", 0)),
            run_dir=spec["run_dir"],
            rank=rank,
            world_size=world,
            control=control,
            scale=scale,
            inputs=spec.get("inputs") or {},
            declared_metrics=exp.metrics,
        )
        result = exp.fn(ctx)
        if not isinstance(result, Result):
            raise TypeError(f"experiment {exp.id!r} returned {type(result).__name__}, not ctx.result()")
        if spec.get("expect"):  # a control is judged as the claim it runs for
            only = bool(spec.get("expect_only"))  # the claim sets params:: and is judged on expect:: alone
            result = registry.apply_expectations(result, list(spec["expect"]), scale, only=only)
        payload = result.to_dict()
        if dist is not None:
            # Ranks report through rank 0: gather every other rank's metrics (rank 0 has
            # streamed its own; another node's local rank 0 streamed only to its own node) ...
            mine = [dict(m.__dict__, rank=rank) for m in ctx.metrics] if rank != 0 else []
            gathered: list[Any] | None = [None] * world if rank == 0 else None
            dist.gather_object(mine, gathered, dst=0)
            if rank == 0 and stream:
                for chunk in gathered or []:
                    for m in chunk or []:
                        writer.emit("metric", **m)
            # ... and rank 0's verdict is the run's verdict on every node.
            box = [payload]
            dist.broadcast_object_list(box, src=0)
            payload = box[0]
        if stream:
            writer.emit("environment", environment=_environment())
            writer.emit("result", result=payload)
        return 0
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            writer.emit("error", traceback="interrupted (SIGINT)", rank=rank)
            return 130
        writer.emit("error", traceback=traceback.format_exc(), rank=rank)
        if stream:
            writer.emit("environment", environment=_environment())
        return 1
    finally:
        if dist is not None:
            try:
                dist.destroy_process_group()
            except Exception:
                pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m repro.worker SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    _start_watchdog()
    code = run(spec)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
