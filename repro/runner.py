"""The run launcher: from a target (claim, experiment or note) to recorded runs.

Three steps, so that every refusal happens before anything runs:

1. :func:`resolve_targets` maps ``paperkb run TARGET`` to experiments and the claims
   that cite them;
2. :func:`plan` checks parameters and requirements (``--param`` names and types, a CUDA
   GPU for presets that need one, GPU memory, triton, process count) and raises
   :class:`~kb.errors.PaperkbError` with one clear line if anything is wrong;
3. :func:`execute` records each planned run as ``queued``, then runs them, up to ``jobs``
   side by side (one at a time by default), each in a child process (``python -m
   repro.worker``, or torchrun for several processes) in its own session. A stochastic
   experiment is planned once per declared seed; the runs share a seed set and decide a
   claim together (``repro.status``); ``--seed N`` plans one run that decides nothing. A crash, an out-of-memory kill, a ``kill -9`` or a
   timeout of the child is recorded in the tracker and never takes paperkb down; the
   other runs of the batch still run. A timeout ends the child's whole process tree.

The child reports through ``events.jsonl`` in the run folder (see ``repro.worker``);
this process copies metrics into the tracker as they come, beats the heartbeat, and on
exit writes ``metrics.json`` and the plots.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from paperkb.errors import NoteNotFound, PaperkbError, UsageError
from repro import prefork, registry
from repro.claimcheck import claim_errors
from repro.prefork import PreforkServer
from repro.tracker import (
    ERROR,
    FAILED,
    HEARTBEAT_EVERY_S,
    INTERRUPTED,
    PASSED,
    TIMEOUT,
    Run,
    Tracker,
)
from repro.worker import PARENT_PID_ENV, load_experiments

KILL_GRACE_S = 3.0
POLL_S = 0.1


# --------------------------------------------------------------------------------------
# 1. Targets
# --------------------------------------------------------------------------------------
@dataclass
class Target:
    """One experiment to run, for ``claims``. ``claim_spec`` holds the parameters and
    expectations those claims carry themselves (``params::`` / ``expect::``); claims with
    different specs get separate targets, since each judges its own configuration."""

    experiment: str
    claims: list[str] = field(default_factory=list)
    claim_spec: dict[str, Any] = field(default_factory=dict)


def claim_spec_of(claim: Any) -> dict[str, Any]:
    """``{"params": ..., "expect": [...]}`` of a claim, or ``{}`` when it sets neither."""
    params = dict(getattr(claim, "params", None) or {})
    expect = list(getattr(claim, "expect", None) or [])
    if not params and not expect:
        return {}
    return {"params": params, "expect": expect}


def _spec_key(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def resolve_targets(
    names: list[str],
    *,
    all_claims: bool = False,
    claims: list[Any] | None = None,
    notes_lookup: Callable[[str], Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Target]:
    """Experiments to run for ``names`` (experiment ids, claim ids or notes).

    ``claims`` are the vault's ``repro.status.ClaimRef`` s; ``notes_lookup(name)`` finds a
    note (raising ``paperkb.errors.NoteNotFound``). Claims naming an unknown experiment are
    skipped with a warning when a whole note or vault is run, refused when named alone.
    A name that is none of these, or no name at all, is a usage error (exit status 2).
    """
    if not names and not all_claims:
        raise UsageError("name what to run: a claim id, an experiment id or a note (or --all)")
    resolver = _TargetResolver(load_experiments(), list(claims or []), warn or (lambda msg: None))
    if all_claims:
        resolver.add_claims(resolver.claims, strict=False)
        if not resolver.targets:
            raise PaperkbError("no claim of this vault names a registered experiment")
    for name in names:
        resolver.add_name(name, notes_lookup)
    return list(resolver.targets.values())


class _TargetResolver:
    """Collects targets for :func:`resolve_targets`, one per experiment and claim spec."""

    def __init__(self, exps: dict[str, Any], claims: list[Any], say: Callable[[str], None]) -> None:
        self.exps = exps
        self.claims = claims
        self.say = say
        self.by_id: dict[str, list[Any]] = {}
        for c in claims:
            self.by_id.setdefault(c.id, []).append(c)
        self.targets: dict[str, Target] = {}

    def add(self, exp_id: str, claim_ids: list[str], spec: dict[str, Any] | None = None) -> None:
        spec = spec or {}
        key = exp_id if not spec else f"{exp_id} {_spec_key(spec)}"
        t = self.targets.setdefault(key, Target(exp_id, claim_spec=spec))
        t.claims.extend(c for c in claim_ids if c not in t.claims)

    def add_claims(self, claims: list[Any], strict: bool) -> None:
        for c in claims:
            if not c.experiments:
                why = f" (needs {c.needs})" if getattr(c, "needs", "") else ""
                self.say(f"claim {c.id!r} ({c.note}:{c.line}) names no experiment{why}; skipped")
            errors = claim_errors(c, self.exps)
            if errors:
                why = errors[0] + (f" (and {len(errors) - 1} more; see `paperkb check`)" if len(errors) > 1 else "")
                if strict:
                    raise PaperkbError(f"claim {c.id!r} ({c.note}:{c.line}) cannot be judged as written: {why}")
                self.say(f"claim {c.id!r} ({c.note}:{c.line}) reads error: {why}; skipped")
                continue
            for e in c.experiments:
                if e in self.exps:
                    self.add(e, [c.id], claim_spec_of(c))
                    continue
                refused = registry.refusal(e)
                what = (
                    f"experiment {e!r}, which the registry refused ({refused})"
                    if refused
                    else f"unknown experiment {e!r}"
                )
                if strict:
                    raise PaperkbError(f"claim {c.id!r} ({c.note}:{c.line}) names {what}")
                self.say(f"claim {c.id!r} ({c.note}:{c.line}) names {what}; skipped")

    def add_name(self, name: str, notes_lookup: Callable[[str], Any] | None) -> None:
        if name in self.exps:  # the experiment as declared: for the claims that set no params/expect
            self.add(name, [c.id for c in self.claims if name in c.experiments and not claim_spec_of(c)])
        elif name in self.by_id:
            self.add_claims(self.by_id[name], strict=True)
        else:
            self.add_note(self._find_note(name, notes_lookup))

    def _find_note(self, name: str, notes_lookup: Callable[[str], Any] | None) -> Any:
        close_notes: list[str] = []
        if notes_lookup is not None:
            try:
                return notes_lookup(name)
            except NoteNotFound as exc:
                close_notes = [f"the note {n}" for n in exc.suggestions]
        close = self.close_ids(name)
        suggestions = close + close_notes
        hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
        raise UsageError(
            f"{name!r} is not an experiment id, a claim id or a note{hint}; see `paperkb experiments` and `paperkb claims`",
            suggestions=close + [n.removeprefix("the note ") for n in close_notes],
        )

    def close_ids(self, name: str) -> list[str]:
        """Up to three experiment or claim ids close to ``name``."""
        import difflib

        close = sorted(e for e in self.exps if name.split("/")[-1] in e)
        close += [
            m for m in difflib.get_close_matches(name, [*self.exps, *self.by_id], n=3, cutoff=0.6) if m not in close
        ]
        return close[:3]

    def add_note(self, note: Any) -> None:
        mine = [c for c in self.claims if c.note == note.path]
        if not mine:
            raise PaperkbError(f"note {note.path!r} has no claims to run")
        self.add_claims(mine, strict=False)
        ids = {c.id for c in mine}
        if not any(t.claims and set(t.claims) & ids for t in self.targets.values()):
            raise PaperkbError(f"no claim of {note.path!r} names a registered experiment")


# --------------------------------------------------------------------------------------
# 2. Plan: parameters and requirements, checked before anything runs
# --------------------------------------------------------------------------------------
@dataclass
class RunOptions:
    preset: str = "smoke"
    device: str = "auto"  # auto | cpu | cuda
    params: list[str] = field(default_factory=list)  # "name=value" strings from --param
    # None: the experiment's declared seeds for the preset (one run each; they decide claims
    # together). A number (--seed N): one run at that seed, recorded but deciding nothing.
    seed: int | None = None
    timeout_s: float | None = None
    nproc: int | None = None  # None: what the preset asks for
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    control: str | None = None  # run this negative control of each experiment (--control NAME)
    controls: bool = False  # run every negative control of each experiment (--controls)
    inputs: dict[str, str] = field(default_factory=dict)  # name -> path (repro.inputs.load_inputs)
    max_memory: int | None = None  # bytes a run may need (--max-memory); None: this machine's memory
    jobs: int = 1  # runs side by side at most (see execute); 0: as many as this machine's CPUs


@dataclass
class PlannedRun:
    experiment: str
    claims: list[str]
    preset: str
    params: dict[str, Any]
    overrides: dict[str, Any]
    device: str
    seed: int
    nproc: int
    nnodes: int
    rdzv_endpoint: str | None
    timeout_s: float | None
    control: str | None = None
    scale: str = "smoke"
    claim_spec: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # the preset's named inputs: name -> path
    seed_set: dict[str, Any] = field(default_factory=dict)  # see repro.tracker: which runs decide together


def parse_param_args(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


class _Machine:
    """What the machine offers, probed once and only when asked."""

    def __init__(self) -> None:
        self._cuda: dict[str, Any] | None = None

    @property
    def cuda(self) -> dict[str, Any]:
        if self._cuda is None:
            from repro.environment import cuda_probe

            self._cuda = cuda_probe()
        return self._cuda


class RequirementUnmet(PaperkbError):
    """An experiment's preset asks for what this machine lacks (a GPU, GPU memory, triton).
    ``needs`` names it for the status word ("needs a CUDA GPU")."""

    def __init__(self, message: str, needs: str = "") -> None:
        super().__init__(message)
        self.needs = needs


@dataclass
class Skipped:
    """A target left out: this machine cannot meet its preset's requirements (``needs``
    says what it lacks), or the claim's own ``params::`` do not fit the experiment."""

    experiment: str
    claims: list[str]
    reason: str
    needs: str = ""
    claim_spec: dict[str, Any] = field(default_factory=dict)
    control: str | None = None


def plan(targets: list[Target], options: RunOptions, machine: Any | None = None) -> list[PlannedRun]:
    """Check ``options`` against every target; raise PaperkbError (one line) when one of
    them is wrong or unmet. See :func:`plan_runs` to leave out unmet targets instead."""
    planned, skipped = plan_runs(targets, options, machine)
    if skipped:
        raise RequirementUnmet(skipped[0].reason)
    return planned


def plan_runs(
    targets: list[Target], options: RunOptions, machine: Any | None = None
) -> tuple[list[PlannedRun], list[Skipped]]:
    """Check ``options`` against every target, before anything runs.

    A bad option or parameter raises PaperkbError (one line): it is a mistake on the
    command line. A target whose preset needs what this machine lacks is returned in the
    second list with the reason, so that ``run --all --preset full`` on a laptop runs the
    CPU experiments and says which GPU ones it left out.
    """
    if options.preset not in registry.SCALES:
        raise UsageError(f"--preset must be one of {', '.join(registry.SCALES)}; got {options.preset!r}")
    if options.device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda; got {options.device!r}")
    if options.nproc is not None and options.nproc < 1:
        raise UsageError(f"--nproc must be at least 1; got {options.nproc}")
    if options.nnodes < 1:
        raise UsageError(f"--nnodes must be at least 1; got {options.nnodes}")
    if options.nnodes > 1 and not options.rdzv_endpoint:
        raise UsageError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
    if options.rdzv_endpoint and ":" not in options.rdzv_endpoint:
        raise UsageError(f"--rdzv-endpoint expects HOST:PORT; got {options.rdzv_endpoint!r}")
    if options.timeout_s is not None and not (0 < options.timeout_s < float("inf")):  # nan fails too
        raise UsageError(f"--timeout must be a positive number of seconds; got {options.timeout_s:g}")
    if options.control is not None and options.controls:
        raise UsageError("give --control NAME or --controls, not both")
    machine = machine or _Machine()
    raw = parse_param_args(options.params)
    exps = [registry.get(t.experiment) for t in targets]
    if options.control is not None or options.controls:
        targets, exps = _control_targets(targets, exps, options)
    for name in raw:
        if not any(name in {p.name for p in e.params} for e in exps):
            known = sorted({p.name for e in exps for p in e.params})
            raise UsageError(
                f"--param {name}: no experiment of this run has that parameter (known: {', '.join(known) or 'none'})"
            )
    planned: list[PlannedRun] = []
    skipped: list[Skipped] = []
    for t, exp in zip(targets, exps):
        control = getattr(t, "control", None)
        try:
            planned.extend(_seed_runs(_plan_one(t, exp, options, raw, machine), exp, options))
        except RequirementUnmet as exc:
            skipped.append(Skipped(exp.id, list(t.claims), str(exc), exc.needs, dict(t.claim_spec), control))
        except _BadClaimSpec as exc:
            skipped.append(Skipped(exp.id, list(t.claims), str(exc), "", dict(t.claim_spec), control))
    return planned, skipped


def _seed_runs(run: PlannedRun, exp: Any, options: RunOptions) -> list[PlannedRun]:
    """``run`` at each of the experiment's declared seeds for the preset, sharing one seed set
    (they decide a claim together, by the experiment's rule); with ``--seed N`` one run at N,
    marked explicit: recorded and shown, never deciding."""
    from dataclasses import replace

    if options.seed is not None:
        return [replace(run, seed=options.seed, seed_set={"explicit": True})]
    seeds = list(exp.seeds_for(options.preset))
    group = uuid.uuid4().hex[:16]
    seed_set = {
        "group": group,
        "seeds": seeds,
        "need": exp.seed_rule.needed(len(seeds)),
        "rule": exp.rule_text(options.preset),
    }
    return [replace(run, seed=s, seed_set=dict(seed_set)) for s in seeds]


@dataclass
class _ControlTarget(Target):
    control: str | None = None


def _control_targets(targets: list[Target], exps: list[Any], options: RunOptions) -> tuple[list, list]:
    """The control runs for ``targets``: each target (an experiment under one claim spec)
    once per control, with that spec's own params:: and expect::, so that a control shows
    that the configuration the claim is judged on can fail."""
    out_t: list[Target] = []
    out_e: list[Any] = []
    for t, exp in zip(targets, exps):
        names = (
            [c.name for c in exp.controls]
            if options.controls
            else [options.control]
            if any(c.name == options.control for c in exp.controls)
            else []
        )
        for name in names:
            out_t.append(_ControlTarget(exp.id, list(t.claims), dict(t.claim_spec or {}), name))
            out_e.append(exp)
    if not out_t:
        known = sorted({c.name for e in exps for c in e.controls})
        raise UsageError(
            f"--control {options.control}: no experiment of this run has that control "
            f"(known: {', '.join(known) or 'none'})"
        )
    return out_t, out_e


class _BadClaimSpec(PaperkbError):
    """A claim's params:: do not fit its experiment (unknown name, wrong type)."""


def _plan_one(t: Target, exp: Any, options: RunOptions, raw: dict[str, str], machine: Any) -> PlannedRun:
    if options.preset not in exp.presets:  # only "paper" is optional
        from repro.paper import paper_needs

        needs = paper_needs(exp.id)
        raise RequirementUnmet(f"{exp.id}: no {options.preset!r} preset: it needs {needs}", needs)
    preset = exp.presets[options.preset]
    req = preset.requires
    overrides: dict[str, Any] = {}
    claim_params = dict((t.claim_spec or {}).get("params") or {})
    try:
        for name, text in raw.items():
            if name in {p.name for p in exp.params}:
                overrides[name] = exp.param(name).parse(text)
        params = exp.resolve_params(options.preset, overrides)
    except registry.RegistryError as exc:  # a --param value of the wrong type
        raise UsageError(f"{exp.id}: {exc}") from None
    if claim_params:
        # The claim's own parameters come before --param: both are recorded apart (the run's
        # ``claim_spec`` and ``overrides``), and only the claim's decide its status.
        try:
            params = exp.resolve_params(options.preset, {**claim_params, **overrides})
        except registry.RegistryError as exc:
            raise _BadClaimSpec(f"claim {', '.join(t.claims)}: params:: for {exp.id}: {exc}") from None
    # Every requirement is checked, so that "needs ..." names all that is missing at once.
    unmet: list[RequirementUnmet] = []
    device = "cpu"
    try:
        device = _choose_device(exp.id, options, req, machine)
    except RequirementUnmet as exc:
        unmet.append(exc)
    nproc = options.nproc if options.nproc is not None else max(1, req.nproc)
    if device == "cuda":
        count = machine.cuda["count"]
        if options.nnodes == 1 and nproc > count:
            unmet.append(
                RequirementUnmet(
                    f"{exp.id}: --nproc {nproc} needs {nproc} GPUs; this machine has {count}", f"{nproc} GPUs"
                )
            )
        elif req.min_gpu_memory_gb:
            have = min(machine.cuda["memory_gb"][:nproc] or [0.0])
            if have < req.min_gpu_memory_gb:
                unmet.append(
                    RequirementUnmet(
                        f"{exp.id}: preset {options.preset!r} needs {req.min_gpu_memory_gb:g} GB of GPU memory; "
                        f"the GPU has {have:.1f} GB",
                        f"a GPU with {req.min_gpu_memory_gb:g} GB of memory",
                    )
                )
    elif req.device == "cuda" and unmet and unmet[-1].needs == "a CUDA GPU":
        # name the whole requirement: "a CUDA GPU with 16 GB of memory", "4 CUDA GPUs"
        gpus = f"{req.nproc} CUDA GPUs" if req.nproc > 1 else "a CUDA GPU"
        memory = f" with {req.min_gpu_memory_gb:g} GB of memory" if req.min_gpu_memory_gb else ""
        unmet[-1].needs = f"{gpus}{memory}"
    control = getattr(t, "control", None)
    control_needs_triton = any(c.name == control and c.triton for c in exp.controls)
    if req.triton or control_needs_triton:
        from repro.environment import triton_available

        if not triton_available():
            what = f"control {control}" if control_needs_triton and not req.triton else f"preset {options.preset!r}"
            unmet.append(
                RequirementUnmet(
                    f"{exp.id}: {what} needs the triton package (pip install 'paperkb[gpu]')",
                    "the triton package",
                )
            )
    inputs = {}
    for exc_or_path in _check_inputs(exp.id, options, req):
        if isinstance(exc_or_path, RequirementUnmet):
            unmet.append(exc_or_path)
        else:
            inputs[exc_or_path[0]] = exc_or_path[1]
    from repro.budget import memory_refusal, preset_timeout

    if not unmet:  # before anything is allocated; a run that cannot start here anyway says why not first
        why = memory_refusal(exp.id, params, device, options.max_memory)
        if why is not None:
            unmet.append(RequirementUnmet(f"{exp.id}: {why}", "more memory"))
    if unmet:
        if len(unmet) == 1:
            raise unmet[0]
        reasons = [unmet[0].args[0]] + [str(u.args[0]).removeprefix(f"{exp.id}: ") for u in unmet[1:]]
        raise RequirementUnmet("; ".join(reasons), " and ".join(u.needs for u in unmet if u.needs))
    return PlannedRun(
        experiment=exp.id,
        claims=list(t.claims),
        preset=options.preset,
        params=params,
        overrides=overrides,
        device=device,
        seed=options.seed if options.seed is not None else 0,
        nproc=nproc,
        nnodes=options.nnodes,
        rdzv_endpoint=options.rdzv_endpoint,
        timeout_s=options.timeout_s
        if options.timeout_s is not None
        else preset_timeout(preset, exp.scale_of(options.preset)),
        control=getattr(t, "control", None),
        scale=exp.scale_of(options.preset),
        claim_spec=dict(t.claim_spec or {}),
        inputs=inputs,
    )


def _check_inputs(exp_id: str, options: RunOptions, req: registry.Requirements) -> list[Any]:
    """For each named input of the preset: ``(name, path)`` when it is given and holds what
    its form asks for, else a RequirementUnmet naming what to get or what is wrong."""
    if not req.inputs:
        return []
    from repro.inputs import InputProblem, declared, validate

    specs = declared()
    out: list[Any] = []
    for name in req.inputs:
        spec = specs.get(name)
        if spec is None:
            out.append(RequirementUnmet(f"{exp_id}: needs the undeclared input {name!r}", f"the input {name}"))
            continue
        path = options.inputs.get(name)
        if path is None:
            out.append(
                RequirementUnmet(
                    f"{exp_id}: preset {options.preset!r} needs the input {name} ({spec.description}); "
                    f"name its path in .paperkb/inputs.yaml or with --input {name}=PATH",
                    spec.needs(),
                )
            )
            continue
        try:
            validate(spec, path)
        except InputProblem as exc:
            out.append(RequirementUnmet(f"{exp_id}: {exc}", f"a valid input {name} ({exc})"))
            continue
        out.append((name, path))
    return out


def _choose_device(exp_id: str, options: RunOptions, req: registry.Requirements, machine: Any) -> str:
    needs_cuda = req.device == "cuda"
    if options.device == "cpu":
        if needs_cuda:
            raise RequirementUnmet(
                f"{exp_id}: preset {options.preset!r} needs a CUDA GPU but --device cpu was given", "a CUDA GPU"
            )
        return "cpu"
    if options.device == "cuda" or needs_cuda:
        if not machine.cuda["available"]:
            why = f"preset {options.preset!r} needs a CUDA GPU" if needs_cuda else "--device cuda was given"
            hint = " (try --preset smoke)" if needs_cuda and options.preset != "smoke" else ""
            raise RequirementUnmet(f"{exp_id}: {why} and none is available{hint}", "a CUDA GPU")
        return "cuda"
    return "cuda" if machine.cuda["available"] else "cpu"


# --------------------------------------------------------------------------------------
# 3. Execute
# --------------------------------------------------------------------------------------
class MonitorLike(Protocol):
    """What :func:`execute` calls as runs go (a live display, a log): :class:`Monitor`'s methods."""

    def queued(self, runs: list[Run]) -> None: ...

    def started(self, run: Run) -> None: ...

    def progress(self, run: Run, done: float, total: float, message: str) -> None: ...

    def metric(self, run: Run, metric: dict[str, Any]) -> None: ...

    def finished(self, run: Run) -> None: ...


class Monitor:
    """Callbacks for a live display; the default does nothing (subclass it, or write any
    class with these methods)."""

    def queued(self, runs: list[Run]) -> None: ...

    def started(self, run: Run) -> None: ...

    def progress(self, run: Run, done: float, total: float, message: str) -> None: ...

    def metric(self, run: Run, metric: dict[str, Any]) -> None: ...

    def finished(self, run: Run) -> None: ...


class MonitorGroup(Monitor):
    """Hands every callback to each of ``monitors`` (a live display and a log, say)."""

    def __init__(self, *monitors: MonitorLike) -> None:
        self.monitors = monitors

    def queued(self, runs: list[Run]) -> None:
        for m in self.monitors:
            m.queued(runs)

    def started(self, run: Run) -> None:
        for m in self.monitors:
            m.started(run)

    def progress(self, run: Run, done: float, total: float, message: str) -> None:
        for m in self.monitors:
            m.progress(run, done, total, message)

    def metric(self, run: Run, metric: dict[str, Any]) -> None:
        for m in self.monitors:
            m.metric(run, metric)

    def finished(self, run: Run) -> None:
        for m in self.monitors:
            m.finished(run)


class LogMonitor(Monitor):
    """Plain lines for a log or a pipe, where a live progress bar cannot be drawn: one when
    a run starts, one when it ends, and a progress line at most every ``every_s`` seconds
    (so that ``paperkb run ... 2>run.log`` shows where a long run stands). Each line is
    flushed at once. ``clean`` makes a line safe to print (the CLI drops terminal escapes)."""

    def __init__(
        self,
        stream: Any,
        every_s: float = 30.0,
        *,
        clean: Callable[[str], str] = str,
        clock: Callable[[], float] = time.monotonic,
        finish_lines: bool = True,
    ) -> None:
        self.stream = stream
        self.clean = clean
        self.finish_lines = finish_lines
        self.every_s = every_s
        self.clock = clock
        self.last_progress: dict[str, float] = {}

    def _line(self, text: str) -> None:
        self.stream.write(self.clean(text) + "\n")
        self.stream.flush()

    def started(self, run: Run) -> None:
        self.last_progress[run.id] = self.clock()
        self._line(f"started  {run_label(run)}  run {run.id}")

    def progress(self, run: Run, done: float, total: float, message: str) -> None:
        now = self.clock()
        if now - self.last_progress.get(run.id, now) < self.every_s:
            return
        self.last_progress[run.id] = now
        share = f"{done:g}/{total:g}" if total else f"{done:g}"
        self._line(f"progress {run_label(run)}  {share}" + (f"  {message}" if message else ""))

    def finished(self, run: Run) -> None:
        if not self.finish_lines:
            return
        took = f"{run.duration_s:.1f}s" if run.duration_s is not None else "-"
        self._line(f"finished {run_label(run)}  run {run.id}  {run.status} ({took})")


def run_label(run: Any) -> str:
    """``experiment [preset]``, with the negative control when the run is one."""
    label = f"{run.experiment} [{run.preset}]"
    return f"{label} control {run.control}" if getattr(run, "control", None) else label


class _EventReader:
    """Reads whole JSON lines appended to the events file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.buffer = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        events = []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                events.append(ev)
        return events


def worker_command(spec_path: Path, p: PlannedRun, run_id: str) -> list[str]:
    if p.nproc == 1 and p.nnodes == 1:
        return [sys.executable, "-m", "repro.worker", str(spec_path)]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={p.nproc}", f"--nnodes={p.nnodes}"]
    if p.nnodes > 1:
        # Every node runs the same `paperkb run`, so the rendezvous id comes from the
        # experiment, not from this node's run id.
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={p.rdzv_endpoint}", f"--rdzv-id=paperkb-{p.experiment}"]
    else:
        cmd += ["--standalone"]
    cmd += ["--max-restarts=0", "-m", "repro.worker", str(spec_path)]
    return cmd


def kill_tree(proc: Any, grace_s: float = KILL_GRACE_S) -> None:
    """End ``proc`` and every process below it, including ones that started their own
    session (torchrun's workers do): SIGTERM, then SIGKILL after ``grace_s``."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = []
    own_group = os.getpgrp()
    groups = {proc.pid}
    for p in procs:
        try:
            groups.add(os.getpgid(p.pid))
        except OSError:
            pass
    groups.discard(own_group)

    def signal_all(sig: int) -> None:
        for g in groups:
            try:
                os.killpg(g, sig)
            except OSError:
                pass
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass

    signal_all(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    if alive:
        signal_all(signal.SIGKILL)
        psutil.wait_procs(alive, timeout=grace_s)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL always ends it
        pass


@dataclass
class _Outcome:
    result: dict[str, Any] | None = None
    error: str | None = None
    artifacts: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)


def _with_source(environment: dict, source: dict | None) -> dict:
    """The environment plus where a third-party experiment's code comes from (its package,
    version and git checkout: ``repro.provenance``); paperkb's own experiments add nothing."""
    return environment if source is None else {**environment, "experiment_source": source}


def record_planned(planned: list[PlannedRun], tracker: Tracker, argv: list[str] | None = None) -> tuple[list[Run], str]:
    """Record ``planned`` as queued runs in one batch, each with the environment, the
    experiment code's provenance, its seed set and its inputs' fingerprints; return them with
    the working tree's diff. Local runs and cluster runs (``repro.slurm``) are recorded alike,
    so a claim is decided the same way wherever its runs ran."""
    from repro.environment import capture
    from repro.provenance import experiment_source

    inputs = _fingerprint_inputs(planned, tracker)  # before any run is recorded: a vanished file stops here
    environment, diff = capture(argv)
    batch = uuid.uuid4().hex[:12]
    runs = [
        tracker.create_run(
            p.experiment,
            preset=p.preset,
            params=p.params,
            overrides=p.overrides,
            claims=p.claims,
            seed=p.seed,
            device=p.device,
            nproc=p.nproc,
            nnodes=p.nnodes,
            timeout_s=p.timeout_s,
            environment=_with_source(environment, experiment_source(p.experiment)),
            command=environment["command"],
            batch=batch,
            control=p.control,
            scale=p.scale,
            claim_spec=p.claim_spec,
            seed_set=p.seed_set,
        )
        for p in planned
    ]
    for run, recorded in zip(runs, inputs):
        if recorded:
            tracker.update_environment(run.id, {"inputs": recorded})
    return runs, diff


def execute(
    planned: list[PlannedRun],
    tracker: Tracker,
    *,
    monitor: MonitorLike | None = None,
    argv: list[str] | None = None,
    jobs: int = 1,
) -> list[Run]:
    """Run ``planned``, up to ``jobs`` side by side (0: one per CPU this process may use);
    return their final records in planned order. Runs are independent (each its own process,
    folder and tracker rows), so only the machine bounds how many go at once: a run on a GPU
    or with several processes runs alone, and side-by-side children get an equal share of the
    CPUs as their thread count (``OMP_NUM_THREADS``).

    KeyboardInterrupt ends the running children, marks them and the remaining queued runs
    ``interrupted`` and is raised again.
    """
    monitor = monitor or Monitor()
    runs, diff = record_planned(planned, tracker, argv)
    monitor.queued(runs)
    done: dict[str, Run] = {}
    width = resolve_jobs(jobs)
    queue = list(zip(planned, runs))
    if width > 1:  # side by side: the longest first, so that no long run is left alone at the end
        queue = longest_first(queue, tracker)
    active: list[_Child] = []
    server = _prefork_server([p for p, _ in queue])
    try:
        while queue or active:
            while queue and _may_start(queue[0][0], active, width):
                p, run = queue.pop(0)
                child = _start(p, run, tracker, diff, monitor, width, server)
                if isinstance(child, Run):
                    done[run.id] = child
                else:
                    active.append(child)
            for child in list(active):
                final = child.step(tracker, monitor)
                if final is not None:
                    done[child.run.id] = final
                    active.remove(child)
            if active:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        for child in active:
            child.interrupt(tracker, monitor)
        for _, rest in queue:
            tracker.finish(rest.id, INTERRUPTED, error="interrupted before it started (Ctrl-C)")
        raise
    finally:
        if server is not None:
            server.close()
    return [done[r.id] for r in runs if r.id in done]


def _fingerprint_inputs(planned: list[PlannedRun], tracker: Tracker) -> list[dict[str, Any]]:
    """Each planned run's inputs with their fingerprints (hashed once, then cached), so that
    two runs on different weights never look alike."""
    from repro.inputs import InputProblem, record

    done: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for p in planned:
        recorded = {}
        for name, path in p.inputs.items():
            if (name, path) not in done:
                try:
                    done[(name, path)] = record([name], {name: path}, tracker.home)[name]
                except (InputProblem, OSError) as exc:
                    raise PaperkbError(f"{p.experiment}: input {name}: {exc}") from None
            recorded[name] = done[(name, path)]
        out.append(recorded)
    return out


def longest_first(queue: list[tuple[PlannedRun, Run]], tracker: Tracker) -> list[tuple[PlannedRun, Run]]:
    """``queue`` ordered by how long the same experiment, preset and control took last time
    (a run never timed before goes first); ties keep their order."""
    took: dict[tuple[str, str, str | None], float] = {}
    for r in tracker.runs(light=True):  # newest first: keep each key's latest duration
        key = (r.experiment, r.preset, r.control)
        if key not in took and r.status in (PASSED, FAILED) and r.duration_s is not None:
            took[key] = r.duration_s
    return sorted(
        queue, key=lambda item: -took.get((item[0].experiment, item[0].preset, item[0].control), float("inf"))
    )


def resolve_jobs(jobs: int) -> int:
    """How many runs may go side by side: ``jobs``, or (0) the CPUs this process may use."""
    if jobs and jobs > 0:
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _may_start(p: PlannedRun, active: list[_Child], width: int) -> bool:
    """A run starts when a slot is free; one that needs the whole machine (a GPU, several
    processes) runs alone."""
    if not active:
        return True
    alone = p.device != "cpu" or p.nproc > 1 or p.nnodes > 1
    if alone or any(c.alone for c in active):
        return False
    return len(active) < width


class _Child:
    """One started experiment process being watched: its events copied into the tracker,
    its heartbeat beaten, its timeout enforced."""

    def __init__(self, p: PlannedRun, run: Run, proc: Any, run_dir: Path, events: Path, files: list):
        self.p, self.run, self.proc, self.run_dir, self.files = p, run, proc, run_dir, files
        self.reader = _EventReader(events)
        self.outcome = _Outcome()
        self.t0 = self.last_beat = time.monotonic()
        self.alone = p.device != "cpu" or p.nproc > 1 or p.nnodes > 1

    def step(self, tracker: Tracker, monitor: MonitorLike) -> Run | None:
        """Copy what the child reported; its final record once it has ended, else None."""
        rc = self.proc.poll()
        _consume(self.reader.read(), self.run, tracker, monitor, self.outcome)
        now = time.monotonic()
        if now - self.last_beat >= HEARTBEAT_EVERY_S:
            tracker.beat(self.run.id)
            self.last_beat = now
        ended: tuple[str, str | None] | None = None
        if rc is not None:
            _end_leftovers(self.proc)
            _consume(self.reader.read(), self.run, tracker, monitor, self.outcome)
            ended = _judge(self.proc.returncode, self.outcome, self.run_dir)
        elif self.p.timeout_s is not None and now - self.t0 > self.p.timeout_s:
            kill_tree(self.proc)
            _consume(self.reader.read(), self.run, tracker, monitor, self.outcome)
            ended = TIMEOUT, f"timed out after {self.p.timeout_s:g} s; the process tree was ended"
        if ended is None:
            return None
        self._close()
        _finish(self.run, tracker, ended[0], ended[1], self.outcome, self.run_dir)
        return _announce_finished(tracker, self.run, monitor)

    def interrupt(self, tracker: Tracker, monitor: MonitorLike) -> None:
        kill_tree(self.proc, grace_s=1.0)
        _consume(self.reader.read(), self.run, tracker, monitor, self.outcome)
        self._close()
        _finish(self.run, tracker, INTERRUPTED, "interrupted (Ctrl-C)", self.outcome, self.run_dir)
        _announce_finished(tracker, self.run, monitor)

    def _close(self) -> None:
        for fh in self.files:
            fh.close()


def _forkable(p: PlannedRun) -> bool:
    """A run the prefork server may start: one process on the CPU (no CUDA context crosses
    a fork; torchrun starts its own processes)."""
    return p.device == "cpu" and p.nproc == 1 and p.nnodes == 1


def _forked(p: PlannedRun) -> bool:
    """Whether ``p`` starts from the prefork server (see ``repro.prefork.mode``)."""
    how = prefork.mode()
    if how == "off" or not _forkable(p):
        return False
    if how == "always":
        return True
    try:
        return registry.get(p.experiment).module in registry.BUILTIN_MODULES
    except registry.RegistryError:
        return False


def _prefork_server(planned: list[PlannedRun]) -> PreforkServer | None:
    """A prefork server when two or more runs can share its imports (``repro.prefork``)."""
    if sum(1 for p in planned if _forked(p)) < 2:
        return None
    from repro.environment import SOURCE_ROOT

    return PreforkServer.start(_worker_env(), cwd=SOURCE_ROOT)


def _start(
    p: PlannedRun,
    run: Run,
    tracker: Tracker,
    diff: str,
    monitor: MonitorLike,
    width: int,
    server: PreforkServer | None = None,
) -> _Child | Run:
    """Start ``run``'s child process (forked from ``server`` when it can be); its final
    record when it could not start."""
    run_dir = tracker.run_dir(run.id)
    spec_path, events_path = _prepare_run_dir(p, run, tracker, diff, run_dir)
    cmd = worker_command(spec_path, p, run.id)
    env = _worker_env(threads=_threads_each(width) if width > 1 else None)
    out = open(run_dir / "stdout.log", "wb")
    err = open(run_dir / "stderr.log", "wb")
    proc: Any = None
    if server is not None and _forked(p):
        try:
            proc = server.spawn(cmd, run_dir, env, run_dir / "stdout.log", run_dir / "stderr.log")
        except OSError:
            proc = None  # started as a plain process below
    tracker.update_environment(run.id, {"worker_command": cmd, "launcher": "prefork" if proc else "process"})
    try:
        if proc is None:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=run_dir, env=env, start_new_session=True
            )
    except OSError as exc:
        out.close()
        err.close()
        tracker.mark_running(run.id, None)
        tracker.finish(run.id, ERROR, error=f"could not start the experiment process: {exc}")
        return _announce_finished(tracker, run, monitor)
    tracker.mark_running(run.id, proc.pid)
    monitor.started(tracker.get(run.id))
    return _Child(p, run, proc, run_dir, events_path, [out, err])


def _threads_each(width: int) -> int:
    """CPU threads for each of ``width`` side-by-side runs, so together they fit the CPUs."""
    return max(1, resolve_jobs(0) // width)


def _prepare_run_dir(p: PlannedRun, run: Run, tracker: Tracker, diff: str, run_dir: Path) -> tuple[Path, Path]:
    """Create the run folder with its ``git.diff`` and the ``spec.json`` the worker reads;
    return the spec's path and that of the events file the worker will write."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if diff:
        _link_diff(tracker, diff, run_dir / "git.diff")
    events_path = run_dir / "events.jsonl"
    spec = {
        "run_id": run.id,
        "experiment": p.experiment,
        "params": p.params,
        "preset": p.preset,
        "device": p.device,
        "seed": p.seed,
        "run_dir": str(run_dir),
        "events": str(events_path),
        "control": p.control,
        "scale": p.scale,
        "expect": (p.claim_spec or {}).get("expect") or [],
        "inputs": p.inputs,
        # a claim that sets params:: is judged on its expect:: alone
        "expect_only": bool((p.claim_spec or {}).get("params")),
    }
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2, default=str), encoding="utf-8")
    return spec_path, events_path


def _worker_env(threads: int | None = None) -> dict[str, str]:
    from repro.environment import SOURCE_ROOT

    env = dict(os.environ)
    if threads is not None:  # side by side: each child its share of the CPUs
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    env[PARENT_PID_ENV] = str(os.getpid())
    env["PYTHONUNBUFFERED"] = "1"
    # The source tree first, so the child runs this checkout's repro even from the run folder.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH", "")]))
    return env


def _announce_finished(tracker: Tracker, run: Run, monitor: MonitorLike) -> Run:
    final = tracker.get(run.id)
    monitor.finished(final)
    return final


def _link_diff(tracker: Tracker, diff: str, dest: Path) -> None:
    """The diff is the same for every run of a checkout state: keep one copy per content
    under ``.paperkb/diffs/`` and hard-link it into the run folder (copy if links fail)."""
    import hashlib
    import shutil

    data = diff.encode("utf-8")
    store = tracker.home / "diffs" / (hashlib.sha256(data).hexdigest()[:32] + ".diff")
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, store)
    try:
        os.link(store, dest)
    except OSError:
        shutil.copyfile(store, dest)


def _end_leftovers(proc: Any) -> None:
    """After a normal exit, end what the experiment left behind in its process group
    (e.g. data-loader workers), so no run leaves processes running."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _consume(events: list[dict[str, Any]], run: Run, tracker: Tracker, monitor: MonitorLike, outcome: _Outcome) -> None:
    metrics = []
    for ev in events:
        kind = ev.get("type")
        if kind == "metric":
            m = {k: ev.get(k) for k in ("name", "value", "step", "time", "rank")}
            if m["name"] is None:
                continue
            metrics.append(m)
            monitor.metric(run, m)
        elif kind == "progress":
            monitor.progress(run, float(ev.get("done") or 0), float(ev.get("total") or 0), str(ev.get("message") or ""))
        elif kind == "started":
            tracker.update_environment(run.id, {"world_size": ev.get("world_size"), "worker_pid": ev.get("pid")})
        elif kind == "environment":
            tracker.update_environment(run.id, dict(ev.get("environment") or {}))
        elif kind == "artifact":
            name = str(ev.get("name") or "")
            if name and name not in outcome.artifacts:
                outcome.artifacts.append(name)
        elif kind == "result":
            outcome.result = ev.get("result")
        elif kind == "error":
            tb = str(ev.get("traceback") or "")
            rank = ev.get("rank") or 0
            outcome.error = (outcome.error + "\n" if outcome.error else "") + (f"[rank {rank}] " if rank else "") + tb
    if metrics:
        tracker.add_metrics(run.id, metrics)
        outcome.metrics.extend(metrics)


def _stderr_tail(run_dir: Path, n: int = 4000) -> str:
    try:
        data = (run_dir / "stderr.log").read_bytes()
    except OSError:
        return ""
    return data[-n:].decode("utf-8", "replace").strip()


def _judge(rc: int, outcome: _Outcome, run_dir: Path) -> tuple[str, str | None]:
    if outcome.result is not None and not outcome.error:
        verdict = outcome.result.get("verdict")
        return (PASSED if verdict == "supported" else FAILED), None
    if outcome.error:
        return ERROR, outcome.error
    tail = _stderr_tail(run_dir)
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        hint = " (out of memory, or kill -9)" if -rc == signal.SIGKILL else ""
        return INTERRUPTED, f"the experiment process was killed by {name}{hint}"
    if "SIGKILL" in tail or "Signal 9" in tail:  # torchrun reports a killed worker this way
        return INTERRUPTED, "a worker process was killed by SIGKILL (out of memory, or kill -9)\n" + tail
    if rc == 0:
        return ERROR, "the experiment process exited without a result\n" + tail
    return ERROR, f"the experiment process exited with code {rc}\n" + tail


def _finish(run: Run, tracker: Tracker, status: str, reason: str | None, outcome: _Outcome, run_dir: Path) -> None:
    result = outcome.result if status in (PASSED, FAILED) else None
    if run.control and status == PASSED:
        # The sabotaged implementation passed: the experiment's check cannot fail.
        reason = CONTROL_PASSED.format(control=run.control)
    metrics = tracker.metrics(run.id)
    record = {
        "run_id": run.id,
        "experiment": run.experiment,
        "preset": run.preset,
        "status": status,
        "verdict": result.get("verdict") if result else None,
        "checks": result.get("checks") if result else [],
        "summary": result.get("summary") if result else None,
        "params": run.params,
        "metrics": metrics,
        "error": reason,
    }
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2, default=str, allow_nan=True), encoding="utf-8")
    names = ["metrics.json", "spec.json", "events.jsonl", "stdout.log", "stderr.log", "git.diff"]
    try:
        from repro.plots import plot_metrics

        plots = [p.name for p in plot_metrics(metrics, run_dir, title=run.experiment)]
    except Exception as exc:  # a plot must never lose a run
        plots = []
        reason = (reason + "\n" if reason else "") + f"(plotting failed: {type(exc).__name__}: {exc})"
    for name in names + outcome.artifacts:
        if (run_dir / name).is_file():
            tracker.add_artifact(run.id, name, "log" if name.endswith((".log", ".jsonl")) else "file")
    for name in plots:
        tracker.add_artifact(run.id, name, "plot")
    tracker.finish(
        run.id,
        status,
        verdict=result.get("verdict") if result else None,
        checks=result.get("checks") if result else None,
        summary=result.get("summary") if result else None,
        error=reason,
    )


CONTROL_PASSED = (
    "negative control {control!r} passed: this check cannot fail (an error of the experiment, "
    "not evidence for the claim)"
)


def record_skipped(tracker: Tracker, skipped: list[Skipped], preset: str) -> list[Run]:
    """Record the targets this machine cannot run (``needs``), so that their claims read
    "needs a CUDA GPU" rather than "unverified"."""
    out = []
    for s in skipped:
        if not s.needs:
            continue
        try:
            scale = registry.get(s.experiment).scale_of(preset)
        except registry.RegistryError:
            scale = None
        out.append(
            tracker.record_skipped(
                s.experiment,
                preset=preset,
                needs=s.needs,
                reason=s.reason,
                claims=s.claims,
                scale=scale,
                claim_spec=s.claim_spec,
                control=s.control,
            )
        )
    return out


def refuse_if_nothing_runs(planned: list[PlannedRun], skipped: list[Skipped]) -> None:
    """Raise one line saying why nothing can run when every target was left out (exit 1:
    the machine lacks something, the command line is fine)."""
    if planned or not skipped:
        return
    if len(skipped) == 1:
        raise PaperkbError(skipped[0].reason)
    whys = {s.reason.removeprefix(f"{s.experiment}: ") for s in skipped}
    if len(whys) == 1:
        ids = [s.experiment for s in skipped]
        shown = ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
        raise PaperkbError(f"nothing can run: {shown}: {whys.pop()}")
    raise PaperkbError("nothing can run: " + "; ".join(s.reason for s in skipped))


def batch_summary(runs: list[Run], skipped: list[Skipped]) -> str:
    """``3 runs: 2 passed, 1 failed; 1 skipped (requirements not met)``."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if skipped:
        summary += f"; {len(skipped)} skipped (requirements not met)"
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''}: {summary}"


def controls_not_contradicted(runs: list[Run]) -> list[Run]:
    """The control runs whose decision did not end contradicted (each an error of the claims it
    ran for): a lone run that did not fail, or every run of a seed set that, under its rule,
    did not end contradicted."""
    from repro.status import CONTRADICTED, seed_set_word

    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault((r.seed_set or {}).get("group") or r.id, []).append(r)
    bad: list[Run] = []
    for members in groups.values():
        if len(members) == 1:
            ok = members[0].status == FAILED
        else:
            need = int((members[0].seed_set or {}).get("need") or len(members))
            ok = seed_set_word(members, need)[0] == CONTRADICTED
        if not ok:
            bad.extend(members)
    return bad


RUN_ERROR_EXIT = 3  # some run ended in error, timeout or was interrupted


def controls_exit_code(runs: list[Run]) -> int:
    """For ``run --controls``: 0 only when every control (over its seed set) ended contradicted."""
    return 0 if runs and not controls_not_contradicted(runs) else 1


def exit_code(runs: list[Run]) -> int:
    """0 when every run passed (a stochastic experiment's seed set: when it met its rule); 1
    when some claim was contradicted (failed); 3 when some run ended in error, timeout or
    interrupted. Never 2: that code means a malformed command line, for ``run`` as for every
    other command."""
    from repro.status import CONTRADICTED, seed_set_word

    statuses = {r.status for r in runs}
    if statuses & {ERROR, TIMEOUT, INTERRUPTED}:
        return RUN_ERROR_EXIT
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault((r.seed_set or {}).get("group") or r.id, []).append(r)
    for members in groups.values():
        need = int((members[0].seed_set or {}).get("need") or len(members))
        if len(members) > 1 and len(members) == len((members[0].seed_set or {}).get("seeds") or []):
            if seed_set_word(members, need)[0] == CONTRADICTED:  # the seed set fails its rule
                return 1
        elif any(m.status == FAILED for m in members):
            return 1
    return 0
