"""Reproduction commands: ``experiments``, ``claims``, ``run``, ``runs`` (``show``, ``compare``), ``status``.

A thin layer over ``repro.runner``, ``repro.tracker`` and ``repro.status``. Nothing here
imports torch: only the child process started by ``paperkb run`` does. Every command
first marks runs whose paperkb process died as ``interrupted`` (heartbeat).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import check_format, find_note, print_json, require_vault, vault_of
from cli.output import Progress, echo, emit, format_option, no_header_option, on_terminal
from cli.pager import emit_paged

FORMATS = ("table", "json")


def _format_option() -> Any:
    return typer.Option("table", "--format", "-f", help="Output format: table or json.")


def _check_format(fmt: str) -> str:
    return check_format(fmt, FORMATS)


def _console(stderr: bool = False):
    import os

    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # pipes and logs: do not fold tables at 80 columns
    return console


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _reap(vault: Path) -> None:
    """Mark orphaned runs interrupted, if this vault has a tracker at all; bring runs
    submitted to Slurm up to date (and record those that ended)."""
    from repro.tracker import Tracker

    tracker = Tracker.open_existing(vault)
    if tracker is not None:
        with tracker:
            for run_id in tracker.reap_stale():
                _warn(f"run {run_id} was left running by a paperkb process that is gone; marked interrupted")
            from repro.slurm import refresh, submitted_runs

            if submitted_runs(tracker):
                refresh(tracker)


def _vault_claims(vault: Path) -> list:
    from repro.status import vault_claims

    return vault_claims(vault)


def _status_style(word: str | None) -> str:
    return {
        "passed": "green",
        "reproduced": "green",
        "supported at small scale": "yellow",
        "supported": "green",
        "failed": "red",
        "contradicted": "red",
        "error": "red",
        "timeout": "red",
        "interrupted": "magenta",
        "cancelled": "magenta",
        "running": "cyan",
        "queued": "dim",
        "unverified": "dim",
        "skipped": "dim",
        "supported at small scale (proxy)": "yellow",
    }.get(word or "", "magenta" if (word or "").startswith("needs ") else "")


def _styled(word: str | None) -> str:
    from rich.markup import escape

    if not word:
        return ""
    style = _status_style(word)
    return f"[{style}]{escape(word)}[/]" if style else escape(word)


def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape("" if text is None else str(text))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _short_time(iso_text: str | None) -> str:
    return (iso_text or "").replace("T", " ").replace("+00:00", "")


# --------------------------------------------------------------------------------------
# experiments
# --------------------------------------------------------------------------------------
def experiments_cmd(
    ctx: typer.Context,
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List the registered experiments: id, description, presets, requirements, controls, seeds, citing claims.

    JSON adds each experiment's parameters (with thresholds and bounds), declared metrics
    (name, unit, meaning), seeds per preset with the rule they decide by, and scope.

    Example: paperkb experiments --format json
    """
    from repro.registry import describe, load_errors, preset_summary
    from repro.worker import load_experiments

    vault = require_vault(vault_of(ctx))
    _reap(vault)
    exps = load_experiments()
    cited: dict[str, list[str]] = {}
    for c in _vault_claims(vault):
        for e in c.experiments:
            cited.setdefault(e, []).append(c.id)
    rows = [{**describe(exps[exp_id]), "claims": cited.get(exp_id, [])} for exp_id in sorted(exps)]
    for err in load_errors():
        _warn(f"could not load experiments from {err}")
    if fmt not in ("json", "jsonl"):
        for r in rows:
            r["presets (requirements)"] = preset_summary(r)
            r["control names"] = [c["name"] for c in r["controls"]]
            r["seeds"] = (
                "; ".join(f"{name} {len(p['seeds'])}" for name, p in r["presets"].items())
                + f" ({r['seed_rule']['text'].get('smoke', '')})"
                if r["stochastic"]
                else ""
            )
    emit(
        rows,
        ["id", "description", "presets (requirements)", "control names", "seeds", "claims"],
        fmt,
        no_header=no_header,
        wrap="description",
    )


# --------------------------------------------------------------------------------------
# claims
# --------------------------------------------------------------------------------------
def _note_path(vault, note: Optional[str]) -> Optional[str]:
    """The vault path of ``note`` (``vault``: an open kb.vault.Vault), or None."""
    if not note:
        return None
    return find_note(vault, note).path


_STATUS_HELP = (
    "Only claims with this status: unverified, needs (any 'needs ...'), 'supported at small scale' "
    "(with its proxy form), proxy, reproduced, contradicted, error."
)


def claims_cmd(
    ctx: typer.Context,
    note: Optional[str] = typer.Argument(None, help="Only the claims of this note (name, alias, citekey, title)."),
    note_opt: Optional[str] = typer.Option(None, "--note", "-n", help="Same as the NOTE argument."),
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Only claims of notes with this tag (or one below it)."
    ),
    status: Optional[str] = typer.Option(None, "--status", "-s", help=_STATUS_HELP),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List claims with the experiments they name, their status and the checks behind it.

    JSON gives each claim its status (with "reason" when it reads error), deciding_runs
    (the ids of the runs the word rests on: several for a stochastic experiment's seeds),
    its checks (name, value, op, threshold, scale, evidence, run_id, seed) and the negative
    controls run under its own parameters.

    Example: paperkb claims "Attention Is All You Need" --status unverified

    Example: paperkb claims --tag paper --format json
    """
    from repro.status import checks_brief, claim_rows, controls_brief, normalise_status

    vault = require_vault(vault_of(ctx))
    want = normalise_status(status) if status else None
    _reap(vault)
    from kb.vault import Vault

    with Vault(vault) as kb_vault:  # one index check for the note lookup and the claims
        rows = claim_rows(kb_vault, note_path=_note_path(kb_vault, note_opt or note), tag=tag, status=want)
    if fmt not in ("json", "jsonl"):
        for r in rows:
            r["where"] = f"{r['title']}:{r['line']}"
            r["behind"] = "; ".join(filter(None, [checks_brief(r), controls_brief(r)]))
            r["run"] = _deciding_brief(r)
    emit_paged(rows, ["id", "status", "experiments", "where", "behind", "run"], fmt, no_header=no_header, wrap="behind")


def _deciding_brief(entry: dict) -> str:
    """The runs a claim's word rests on: the newest one's id, with how many more."""
    ids = entry.get("deciding_runs") or []
    if not ids:
        return entry.get("run_id") or ""
    newest = entry.get("run_id") or ids[-1]
    return newest + (f" +{len(ids) - 1}" if len(ids) > 1 else "")


# --------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------
def run_label(run) -> str:
    from repro.runner import run_label as label

    return label(run)


class _LiveMonitor:
    """A ``repro.runner.Monitor`` drawing one rich progress line per run (state, progress
    bar, latest metric) and printing a line per finished run."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.bars = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("{task.fields[label]}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal,  # in logs, the per-run lines below say it all
        )
        self.tasks: dict[str, Any] = {}
        self.label_width = 0  # the per-run lines line up in columns

    def __enter__(self) -> _LiveMonitor:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def queued(self, runs) -> None:
        self.label_width = max((len(run_label(r)) for r in runs), default=0)
        for r in runs:
            label = _esc(run_label(r))
            # a still, empty bar while queued: only the running experiment's bar moves
            self.tasks[r.id] = self.bars.add_task("", total=1, start=False, label=label, info="[dim]queued[/]")

    def started(self, run) -> None:
        task = self.tasks[run.id]
        self.bars.start_task(task)
        self.bars.update(task, total=None, info=f"[cyan]running[/] {_esc(run.id)}")

    def progress(self, run, done: float, total: float, message: str) -> None:
        task = self.tasks[run.id]
        self.bars.update(task, total=total or None, completed=done, info=_esc(message) if message else None)

    def metric(self, run, m) -> None:
        value = m.get("value")
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        step = f" @ {m['step']:g}" if isinstance(m.get("step"), (int, float)) else ""
        self.bars.update(self.tasks[run.id], info=_esc(f"{m['name']}={shown}{step}"))

    def finished(self, run) -> None:
        task = self.tasks[run.id]
        # a finished run stops its spinner: fill its bar (the status word says how it ended)
        total = next((t.total for t in self.bars.tasks if t.id == task), None) or 1
        self.bars.update(task, total=total, completed=total)
        self.bars.update(task, info=_styled(run.status))
        self.bars.stop_task(task)
        took = f"{run.duration_s:.1f}s" if run.duration_s is not None else "-"
        pad = " " * max(1, 12 - len(run.status))
        label = run_label(run).ljust(self.label_width)
        line = f"{_styled(run.status)}{pad}{_esc(label)}  run {_esc(run.id)}  ({took})"
        if run.summary:
            line += f"  {_esc(run.summary)}"
        self.console.print(line, soft_wrap=True)
        if run.control:
            if run.status == "failed":
                self.console.print(f"    control {_esc(run.control)} ended contradicted, as it must")
            elif run.status == "passed":
                self.console.print(f"    [red]control {_esc(run.control)} passed: this check cannot fail[/]")
            return
        if run.status == "failed":
            for c in run.checks:
                if not c.get("passed"):
                    self.console.print(
                        f"    [red]check {_esc(c['name'])}: {_esc(c['value'])} {_esc(c['op'])} "
                        f"{_esc(c['threshold'])} not met[/]"
                    )
        elif run.error:
            last = [ln for ln in run.error.strip().splitlines() if ln.strip()]
            self.console.print(f"    [red]{_esc(last[-1] if last else run.error)}[/]  (paperkb runs show {run.id})")


class _stop_signals_interrupt:
    """While ``paperkb run`` runs, SIGTERM and SIGHUP (``kill``, a closed terminal or SSH
    session) take the Ctrl-C path: the child is ended and the current and queued runs are
    recorded as interrupted at once, instead of waiting for the next paperkb to reap them."""

    SIGNALS = ("SIGTERM", "SIGHUP")

    def __enter__(self) -> _stop_signals_interrupt:
        import signal
        import threading

        self.saved: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self.saved[sig] = signal.signal(sig, self._raise)
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def run_cmd(
    ctx: typer.Context,
    targets: Optional[list[str]] = typer.Argument(
        None,
        metavar="TARGET",
        help="Claim ids, experiment ids or notes (a note runs all of its claims).",
        show_default=False,
    ),
    all_claims: bool = typer.Option(False, "--all", help="Run the experiments of every claim of the vault."),
    preset: str = typer.Option(
        "smoke",
        "--preset",
        "-p",
        help="smoke (reduced, about a minute on a CPU), full (the largest setting this machine can run; may need a "
        "GPU) or paper (the paper's own setting and hardware: the only scale that can make a claim 'reproduced').",
    ),
    input_items: Optional[list[str]] = typer.Option(
        None,
        "--input",
        help="A named input for this run: NAME=PATH (repeatable; overrides .paperkb/inputs.yaml; see `paperkb inputs`).",
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu or cuda."),
    params: Optional[list[str]] = typer.Option(None, "--param", help="Override a parameter: NAME=VALUE (repeatable)."),
    seed: Optional[int] = typer.Option(
        None,
        "--seed",
        min=0,
        max=2**63 - 1,
        help="Run once at this seed: recorded and shown, but it decides no claim. Without it each experiment "
        "runs at its declared seeds (several for a stochastic one), and those runs decide together.",
    ),
    jobs: Optional[int] = typer.Option(
        None,
        "--jobs",
        "-j",
        help="Runs side by side at most (default: one per CPU with --all, else 1). GPU and multi-process runs go alone.",
    ),
    timeout: Optional[float] = typer.Option(
        None,
        "--timeout",
        help="Seconds before a run is ended and recorded as timeout (default: the preset's limit, if any).",
    ),
    nproc: Optional[int] = typer.Option(
        None, "--nproc", help="Processes per node (torchrun), at most this machine's CPUs; default: the preset's."
    ),
    nnodes: int = typer.Option(1, "--nnodes", help="Number of machines (torchrun)."),
    max_memory: Optional[str] = typer.Option(
        None,
        "--max-memory",
        help="Refuse runs whose parameters need more memory than this (e.g. 8G); default: the machine's.",
    ),
    rdzv_endpoint: Optional[str] = typer.Option(
        None, "--rdzv-endpoint", help="HOST:PORT of the rendezvous for --nnodes > 1."
    ),
    control: Optional[str] = typer.Option(
        None,
        "--control",
        help="Run this negative control (a sabotaged implementation) instead of the real code; it must end contradicted.",
    ),
    controls: bool = typer.Option(
        False, "--controls", help="Run every negative control of the targets' experiments instead of the real code."
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", help="table (live progress) or json (the finished runs, for scripts)."
    ),
    on: str = typer.Option("local", "--on", help="Where to run: local (this machine) or slurm (see docs/cluster.md)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="--on slurm: a profile of .paperkb/launch.yaml."),
    partition: Optional[str] = typer.Option(None, "--partition", help="--on slurm: the Slurm partition."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="--on slurm: GPUs per node (default: the preset's)."),
    nodes: Optional[int] = typer.Option(None, "--nodes", help="--on slurm: nodes per job."),
    time_limit: Optional[str] = typer.Option(
        None, "--time", help="--on slurm: the job's time limit (minutes, HH:MM:SS or D-HH:MM:SS)."
    ),
    max_parallel: Optional[int] = typer.Option(
        None, "--max-parallel", help="--on slurm: at most this many jobs of the array at once."
    ),
    detach: bool = typer.Option(False, "--detach", help="--on slurm: return after submitting; `paperkb runs` follows."),
) -> None:
    """Run the experiments behind claims, each in its own process, and record the results.

    TARGET is a claim id, an experiment id or a note (all of its claims). Options are
    checked before anything runs: a bad --param, --preset or --timeout is refused with one
    line. An experiment whose preset needs what this machine lacks (a CUDA GPU, GPU memory,
    triton) is skipped with one line saying why, and the others still run; when every
    experiment is skipped, nothing runs and the exit status is 1.

    A run with --param overrides, or with --seed N, is recorded and listed, but decides no
    claim's status (unless the claim's own params:: name exactly those values). A claim's own
    params:: and expect:: are applied when it is run by claim id, note or --all; a claim that
    cannot be judged as written (see `paperkb check`) is refused. A stochastic experiment runs
    once per declared seed, and the claim is decided over those runs by its stated rule.

    --control NAME / --controls run the experiments' negative controls (sabotaged
    implementations) under each claim's own params:: and expect::; each must end
    contradicted. A control that does not is an error of that claim ("this check cannot
    fail here"). See docs/verdicts.md.

    Exit status: 0 when every run passed (skipped ones do not count); 1 when a claim was
    contradicted (a run failed its thresholds) or nothing could run; 3 when a run ended in
    error, timeout or interrupted; 2 for a malformed command line (a bad option value, an
    unknown target, no target), refused before anything runs; 130 on Ctrl-C (the runs are
    recorded as interrupted). Piped, each run's start, sparse progress and end go to stderr.
    With --control/--controls: 0 only when every control that ran ended contradicted, else 1.

    Example: paperkb run transformer-param-count --preset smoke --param vocab_size=32000

    Example: paperkb run --all --preset full   (on a CPU-only machine: the CPU experiments)

    Example: paperkb run --all --controls --preset smoke

    Example: paperkb run llama2-kv-cache --preset paper --input llama-2-7b=/models/Llama-2-7b-hf

    Example: paperkb run --all --on slurm --preset smoke --max-parallel 2 --detach
    """
    from kb.errors import PaperkbError
    from repro.inputs import load_inputs
    from repro.runner import (
        RunOptions,
        batch_summary,
        exit_code,
        plan_runs,
        refuse_if_nothing_runs,
        resolve_targets,
    )

    _check_format(fmt)
    if nproc is not None:
        from paperkb.limits import check_nproc

        check_nproc(nproc)  # a worker per CPU at most: 100,000 workers would exhaust the machine
    from paperkb.limits import parse_memory

    vault = require_vault(vault_of(ctx))
    claims = _vault_claims(vault) if targets or all_claims else []
    resolved = resolve_targets(
        list(targets or []), all_claims=all_claims, claims=claims, notes_lookup=_note_lookup(vault), warn=_warn
    )
    _reap(vault)
    options = RunOptions(
        preset=preset,
        device=device,
        params=list(params or []),
        seed=seed,
        timeout_s=timeout,
        nproc=nproc,
        nnodes=nnodes,
        rdzv_endpoint=rdzv_endpoint,
        control=control,
        controls=controls,
        inputs=load_inputs(vault, input_items or []),
        max_memory=parse_memory(max_memory) if max_memory is not None else None,
        jobs=jobs if jobs is not None else (0 if all_claims else 1),
    )
    if options.jobs < 0:
        raise PaperkbError(f"--jobs must be 0 (one per CPU) or more; got {options.jobs}", exit_code=2)
    if on != "local":
        launch = _launch_options(on, profile, partition, gpus, nodes, time_limit, max_parallel, detach)
        _run_on_slurm(vault, resolved, options, launch, fmt, controls=bool(control or controls))
        return
    planned, skipped = plan_runs(resolved, options)
    _record_skipped(vault, skipped, preset)
    refuse_if_nothing_runs(planned, skipped)
    console = _console(stderr=fmt == "json")
    for s in skipped:
        console.print(f"[yellow]skipped[/]     {_esc(s.reason)}", soft_wrap=True)
    runs = _execute_live(vault, planned, console, fmt, options.jobs)
    console.print(batch_summary(runs, skipped), soft_wrap=True)
    code = _report_controls(runs, console) if control or controls else exit_code(runs)
    if code:
        raise typer.Exit(code)


def _launch_options(on, profile, partition, gpus, nodes, time_limit, max_parallel, detach):
    from kb.errors import UsageError
    from repro.slurm import LaunchOptions, check_options

    if on != "slurm":
        raise UsageError(f"--on must be local or slurm; got {on!r}")
    launch = LaunchOptions(profile, partition, gpus, nodes, time_limit, max_parallel, detach)
    check_options(launch)
    return launch


def _run_on_slurm(vault: Path, resolved: list, options, launch, fmt: str, controls: bool) -> None:
    """``run --on slurm``: plan against the job's resources, submit, then follow the jobs
    (or return at once with --detach). Ctrl-C stops following; the jobs keep running."""
    from cli.output import clean
    from repro import slurm
    from repro.runner import (
        LogMonitor,
        MonitorGroup,
        MonitorLike,
        batch_summary,
        exit_code,
        plan_runs,
        refuse_if_nothing_runs,
    )
    from repro.tracker import Tracker

    profiles = slurm.load_profiles(vault)
    chosen = slurm.choose_profile(profiles, launch.profile, str(slurm.launch_file(vault)))
    gpus = launch.gpus if launch.gpus is not None else chosen.gpus_per_node
    planned, skipped = plan_runs(resolved, options, machine=slurm.ClusterMachine(gpus))
    _record_skipped(vault, skipped, options.preset)
    refuse_if_nothing_runs(planned, skipped)
    console = _console(stderr=fmt == "json")
    for s in skipped:
        console.print(
            f"[yellow]skipped[/]     {_esc(s.reason)} (--on slurm: ask for GPUs with --gpus N)", soft_wrap=True
        )
    with Tracker(vault) as tracker:
        runs = slurm.submit(planned, tracker, chosen, launch, argv=["paperkb", *sys.argv[1:]])
        for r in runs:
            console.print(f"submitted   {_esc(run_label(r))}  run {r.id}  {_esc(slurm.describe(r))}", soft_wrap=True)
        if launch.detach:
            if fmt == "json":
                print_json([{**_brief(r), "slurm": slurm.slurm_of(r)} for r in runs])
            console.print(f"{_count(len(runs), 'run')} submitted; `paperkb runs` follows them", soft_wrap=True)
            return
        live = _LiveMonitor(console)
        monitor: MonitorLike = live
        if not console.is_terminal:
            monitor = MonitorGroup(live, LogMonitor(sys.stderr, clean=clean, finish_lines=not console.stderr))
        try:
            with live:
                live.queued(runs)
                runs = slurm.follow(tracker, runs, monitor)
        except KeyboardInterrupt:
            console.print("stopped following; the jobs keep running (`paperkb runs` picks up their results)")
            raise typer.Exit(130) from None
        if fmt == "json":
            print_json([{**_brief(r), "error": r.error, "slurm": slurm.slurm_of(r)} for r in runs])
    console.print(batch_summary(runs, skipped), soft_wrap=True)
    code = _report_controls(runs, console) if controls else exit_code(runs)
    if code:
        raise typer.Exit(code)


def _note_lookup(vault: Path):
    def lookup(name: str):
        from kb.vault import Vault

        return find_note(Vault(vault), name)

    return lookup


def _record_skipped(vault: Path, skipped: list, preset: str) -> None:
    from repro.runner import record_skipped
    from repro.tracker import Tracker

    if skipped:
        with Tracker(vault) as tracker:
            record_skipped(tracker, skipped, preset)


def _execute_live(vault: Path, planned: list, console, fmt: str, jobs: int = 1) -> list:
    """Run ``planned`` with live progress (plain lines on stderr when not on a terminal);
    print the finished runs as JSON for ``--format json``."""
    from cli.output import clean
    from repro.runner import LogMonitor, MonitorGroup, MonitorLike, execute
    from repro.tracker import Tracker

    argv = ["paperkb", *sys.argv[1:]]
    with Tracker(vault) as tracker, _stop_signals_interrupt():
        live = _LiveMonitor(console)
        monitor: MonitorLike = live
        if not console.is_terminal:  # no bar can be drawn: say when runs start, and how far they are
            monitor = MonitorGroup(live, LogMonitor(sys.stderr, clean=clean, finish_lines=not console.stderr))
        sink = _mlflow_sink(vault, tracker)
        if sink is not None:  # every run goes to MLflow too
            monitor = MonitorGroup(monitor, sink)
        try:
            with live:
                runs = execute(planned, tracker, monitor=monitor, argv=argv, jobs=jobs)
        except KeyboardInterrupt:
            console.print("[magenta]interrupted[/]: the current run and the queued ones are recorded as interrupted")
            raise typer.Exit(130) from None
        if fmt == "json":
            print_json(
                [
                    {
                        **_brief(r),
                        "checks": r.checks,
                        "error": r.error,
                        "metrics": tracker.final_metrics(r.id),
                        "run_dir": str(tracker.run_dir(r.id)),
                    }
                    for r in runs
                ]
            )
    return runs


def _mlflow_sink(vault: Path, tracker):
    from repro.mlflow_sink import sink_for

    return sink_for(vault, tracker, warn=_warn)


def _retry_mlflow(vault: Path) -> None:
    """Send the runs whose MLflow export waits (one warning line when the server still fails)."""
    from repro.mlflow_sink import retry_queued

    tracker = _open_tracker(vault)
    if tracker is not None:
        with tracker:
            for sent in retry_queued(tracker, vault, _warn):
                if sent.state == "exported":
                    print(f"sent run {sent.run_id} to MLflow: {sent.url or sent.mlflow_run_id}", file=sys.stderr)


def _report_controls(runs: list, console) -> int:
    """Say whether every negative control ended contradicted; the exit status for --controls."""
    from repro.runner import controls_exit_code, controls_not_contradicted

    bad = controls_not_contradicted(runs)
    if bad:
        console.print(
            f"[red]{_count(len(bad), 'negative control')} did not end "
            "contradicted[/]: " + _esc(", ".join(f"{r.experiment} [{r.control}] {r.status}" for r in bad)),
            soft_wrap=True,
        )
    else:
        console.print(f"every negative control ended contradicted ({len(runs)})", soft_wrap=True)
    return controls_exit_code(runs)


# --------------------------------------------------------------------------------------
# runs, runs show, runs compare
# --------------------------------------------------------------------------------------
runs_app = typer.Typer(
    help="List recorded runs; `runs show ID` and `runs compare ID ID` for details.\n\n"
    "Example: paperkb runs --experiment transformer/param-count --format json",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _open_tracker(vault: Path):
    from repro.tracker import Tracker

    return Tracker.open_existing(vault)


def _recorded_runs(ctx: typer.Context):
    """The tracker of the chosen vault, after marking dead runs interrupted; an error when
    nothing was ever run there."""
    from kb.errors import PaperkbError

    vault = require_vault(vault_of(ctx))
    _reap(vault)
    tracker = _open_tracker(vault)
    if tracker is None:
        raise PaperkbError(f"no runs recorded in {vault} yet (see `paperkb run`)")
    return tracker


@runs_app.callback()
def runs_cmd(
    ctx: typer.Context,
    claim: Optional[str] = typer.Option(
        None, "--claim", "-c", help="Only runs bearing on this claim (launched for it, or of an experiment it names)."
    ),
    experiment: Optional[str] = typer.Option(None, "--experiment", "-e", help="Only runs of this experiment."),
    status: Optional[str] = typer.Option(
        None,
        "--status",
        "-s",
        help="Only runs with this status: queued, running, passed, failed, error, interrupted or timeout.",
    ),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="At most this many (newest first)."),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List recorded runs, newest first.

    Example: paperkb runs --claim transformer-param-count
    """
    if ctx.invoked_subcommand is not None:
        return
    from kb.errors import PaperkbError
    from repro.slurm import describe as slurm_describe
    from repro.tracker import STATUSES

    if status is not None and status not in STATUSES:
        raise PaperkbError(f"--status must be one of {', '.join(STATUSES)}; got {status!r}", exit_code=2)
    if limit is not None and limit < 1:
        raise PaperkbError(f"--limit must be at least 1; got {limit}", exit_code=2)
    vault = require_vault(vault_of(ctx))
    _reap(vault)
    _retry_mlflow(vault)
    tracker = _open_tracker(vault)
    runs = []
    finals: dict[str, dict] = {}
    if tracker is not None:
        with tracker:
            runs = tracker.runs(claim=claim, experiment=experiment, status=status)
            if claim is not None:
                named = {e for c in _vault_claims(vault) if c.id == claim for e in c.experiments}
                for exp_id in sorted(named):
                    if experiment is None or exp_id == experiment:
                        runs += tracker.runs(experiment=exp_id, status=status)
                unique = {r.id: r for r in runs}
                runs = sorted(unique.values(), key=lambda r: (r.created, r.id), reverse=True)
            runs = runs[:limit] if limit is not None else runs
            if fmt in ("json", "jsonl"):
                finals = {r.id: tracker.final_metrics(r.id) for r in runs}
    if not runs:
        _refuse_unknown_filters(vault, claim, experiment)
    if fmt in ("json", "jsonl"):
        emit([{**_brief(r), "metrics": finals.get(r.id, {})} for r in runs], [], fmt)
        return
    if not runs and fmt == "table" and on_terminal():
        echo("0 runs")  # on a terminal, say so; piped, the header line alone
        return
    rows = []
    for r in runs:
        special = []
        if r.control:
            special.append(f"control {r.control}")
        if r.overrides:
            special.append(", ".join(f"{k}={v}" for k, v in r.overrides.items()))
        if (r.claim_spec or {}).get("params"):
            special.append("claim params: " + ", ".join(f"{k}={v}" for k, v in r.claim_spec["params"].items()))
        if r.needs:
            special.append(f"needs {r.needs}")
        if on_slurm := slurm_describe(r):
            special.append(on_slurm)
        if (r.seed_set or {}).get("explicit"):
            special.append(f"--seed {r.seed}: decides nothing")
        elif len((r.seed_set or {}).get("seeds") or []) > 1:
            special.append(f"seed {r.seed} of {','.join(map(str, r.seed_set['seeds']))}")
        rows.append(
            {
                "id": r.id,
                "experiment": r.experiment,
                "preset": r.preset,
                "status": r.status,
                "verdict": r.verdict or "",
                "control / overrides": "; ".join(special),
                "claims": r.claims,
                "started": _short_time(r.to_dict()["started"]),
                "took": f"{r.duration_s:.1f}s" if r.duration_s is not None else "",
            }
        )
    emit(
        rows,
        ["id", "experiment", "preset", "status", "verdict", "control / overrides", "claims", "started", "took"],
        fmt,
        no_header=no_header,
        wrap="control / overrides",
    )


def _refuse_unknown_filters(vault: Path, claim: Optional[str], experiment: Optional[str]) -> None:
    """No run matched: if that is because --claim or --experiment names nothing that
    exists (a typo), say so rather than print an empty table."""
    import difflib

    from kb.errors import PaperkbError

    if experiment is not None:
        from repro.worker import load_experiments

        known = list(load_experiments())
        if experiment not in known:
            close = difflib.get_close_matches(experiment, known, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else " (see: paperkb experiments)"
            raise PaperkbError(f"--experiment {experiment!r} is not a registered experiment{hint}", exit_code=2)
    if claim is not None:
        known = [c.id for c in _vault_claims(vault)]
        if claim not in known:
            close = difflib.get_close_matches(claim, known, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else " (see: paperkb claims)"
            raise PaperkbError(f"--claim {claim!r} is not a claim of this vault{hint}", exit_code=2)


def _brief(r) -> dict:
    d = r.to_dict()
    return {
        k: d.get(k)
        for k in (
            "id",
            "experiment",
            "claims",
            "preset",
            "scale",
            "control",
            "params",
            "overrides",
            "claim_spec",
            "seed",
            "seed_set",
            "device",
            "nproc",
            "status",
            "verdict",
            "needs",
            "summary",
            "created",
            "started",
            "ended",
            "duration_s",
        )
    } | {"slurm_job_id": ((d.get("environment") or {}).get("slurm") or {}).get("job_id")}


@runs_app.command("show")
def runs_show_cmd(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="A run id (or an unambiguous prefix)."),
    fmt: str = _format_option(),
) -> None:
    """Everything recorded about one run: parameters, checks, metrics, artifacts, environment.

    Example: paperkb runs show 20261126-151230-3fa9c1
    """

    _check_format(fmt)
    tracker = _recorded_runs(ctx)
    with tracker:
        run = tracker.get(run_id)
        metrics = tracker.metrics(run.id)
        artifacts = tracker.artifacts(run.id)
        run_dir = tracker.run_dir(run.id)
        mlflow = _mlflow_record(tracker, run.id)
    for a in artifacts:
        a["path"] = str(run_dir / a["name"])
    if fmt == "json":
        print_json(
            {**run.to_dict(), "metrics": metrics, "artifacts": artifacts, "run_dir": str(run_dir), "mlflow": mlflow}
        )
        return
    con = _console()
    _show_run_header(con, run, run_dir)
    if mlflow:
        where = mlflow["url"] or mlflow["mlflow_run_id"]
        if mlflow["state"] != "done":
            where = f"queued ({mlflow['error'] or 'not sent yet'})"
        con.print(f"[dim]mlflow[/]  {_esc(where)}", soft_wrap=True)
    if run.checks:
        _show_checks(con, run)
    if metrics:
        _show_metrics(con, metrics)
    _show_environment(con, run.environment)
    if artifacts:
        con.print("[bold]artifacts[/]")
        for a in artifacts:
            con.print(f"  {_esc(a['path'])}  [dim]{_esc(a['kind'])}[/]")
    if run.error:
        con.print("[bold red]error[/]")
        con.print(_esc(run.error.rstrip()))


def _mlflow_record(tracker, run_id: str):
    from repro.mlflow_sink import export_record

    return export_record(tracker, run_id)


EXPORT_DESTINATIONS = ("mlflow",)


@runs_app.command("export")
def runs_export_cmd(
    ctx: typer.Context,
    run_ids: Optional[list[str]] = typer.Argument(
        None, metavar="RUN", help="Run ids (or unambiguous prefixes) to send.", show_default=False
    ),
    to: str = typer.Option(
        ..., "--to", help="Where to send them: mlflow (MLFLOW_TRACKING_URI or .paperkb/config.yaml)."
    ),
    all_runs: bool = typer.Option(False, "--all", help="Every run that ran (and those whose export waits)."),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """Send recorded runs to an MLflow tracking server; sending one twice creates nothing twice.

    Each run becomes one MLflow run (the paperkb run id is its tag, looked up first): params,
    metric series, checks, claim ids and their word, environment tags, plots and logs.
    When the server is down or refuses, the runs stay queued in the vault (exit status 1)
    and the next `paperkb runs` or `runs export` sends them. docs/tracking.md has the set-up.

    Example: paperkb runs export --to mlflow --all

    Example: MLFLOW_TRACKING_URI=http://127.0.0.1:5000 paperkb runs export --to mlflow 20261126-151230-3fa9c1
    """
    from kb.errors import PaperkbError
    from repro.mlflow_sink import export_runs

    if to not in EXPORT_DESTINATIONS:
        raise PaperkbError(f"--to must be one of {', '.join(EXPORT_DESTINATIONS)}; got {to!r}", exit_code=2)
    if bool(run_ids) == all_runs:
        raise PaperkbError("name the runs to export, or give --all (not both)", exit_code=2)
    tracker = _recorded_runs(ctx)
    vault = require_vault(vault_of(ctx))
    with tracker, Progress("exporting", total=None if all_runs else len(run_ids or [])) as progress:
        results = export_runs(tracker, vault, None if all_runs else list(run_ids or []), progress=progress.advance)
    rows = [{**r.to_dict(), "mlflow": r.url or r.mlflow_run_id or "", "note": r.error or ""} for r in results]
    if fmt in ("json", "jsonl"):
        emit([r.to_dict() for r in results], [], fmt)
    else:
        emit(rows, ["run_id", "state", "mlflow", "note"], fmt, no_header=no_header, wrap="note")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.state] = counts.get(r.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "nothing to send"
    print(f"{_count(len(results), 'run')}: {summary}", file=sys.stderr)
    queued = [r for r in results if r.state == "queued"]
    if queued:
        _warn(
            f"MLflow failed ({queued[0].error}); {_count(len(queued), 'run')} queued in the vault, "
            "sent by the next `paperkb runs` or `paperkb runs export --to mlflow`"
        )
        raise typer.Exit(1)


_RUN_FIELDS = (
    "claims",
    "scale",
    "control",
    "needs",
    "seed",
    "device",
    "nproc",
    "nnodes",
    "timeout_s",
    "created",
    "started",
    "ended",
    "duration_s",
    "host",
    "batch",
)


def _show_run_header(con, run, run_dir: Path) -> None:
    from rich.table import Table

    con.print(
        f"[bold]run {_esc(run.id)}[/]  {_esc(run.experiment)} [{_esc(run.preset)}]  {_styled(run.status)}"
        + (f"  verdict: {_esc(run.verdict)}" if run.verdict else "")
    )
    if run.summary:
        con.print(_esc(run.summary))
    info = Table(show_header=False, box=None, pad_edge=False)
    info.add_column(style="dim")
    info.add_column(overflow="fold")
    d = run.to_dict()
    for key in _RUN_FIELDS:
        value = d[key]
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        info.add_row(key, _esc(value))
    info.add_row("params", _esc(", ".join(f"{k}={v}" for k, v in run.params.items()) or "-"))
    if run.overrides:
        info.add_row("overrides", _esc(", ".join(f"{k}={v}" for k, v in run.overrides.items())))
    info.add_row("command", _esc(" ".join(run.command)))
    info.add_row("run folder", _esc(run_dir))
    con.print(info)


def _show_checks(con, run) -> None:
    from rich.table import Table

    t = Table(title="checks", title_justify="left")
    for col in ("check", "value", "op", "threshold", "scale", "evidence", "passed"):
        t.add_column(col, overflow="fold")
    for c in run.checks:
        t.add_row(
            _esc(c.get("name")),
            _esc(_fmt_num(c.get("value"))),
            _esc(c.get("op")),
            _esc(c.get("threshold")),
            _esc(c.get("scale") or run.scale or ""),
            _esc(c.get("evidence", "direct")),
            "[green]yes[/]" if c.get("passed") else "[red]no[/]",
        )
    con.print(t)


def _show_metrics(con, metrics: list[dict]) -> None:
    from rich.table import Table

    from repro.tracker import last_metric_values

    t = Table(title="metrics (last value)", title_justify="left")
    for col in ("metric", "value", "step", "rank", "points"):
        t.add_column(col)
    for m in last_metric_values(metrics):
        step = "" if m["step"] is None else f"{m['step']:g}"
        t.add_row(_esc(m["name"]), _esc(_fmt_num(m["value"])), step, str(m["rank"]), str(m["points"]))
    con.print(t)


def _show_environment(con, environment: dict) -> None:
    from rich.table import Table

    from repro.tracker import environment_summary

    t = Table(title="environment", title_justify="left", show_header=False)
    t.add_column(style="dim")
    t.add_column(overflow="fold")
    for key, value in environment_summary(environment):
        t.add_row(key, _esc(value))
    con.print(t)


def _fmt_num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def compare_runs(a, b, metrics_a: dict, metrics_b: dict) -> list[dict]:
    """Rows (section, key, a, b, same) putting two runs side by side."""
    rows: list[dict] = []

    def add(section: str, key: str, x: Any, y: Any) -> None:
        rows.append({"section": section, "key": key, "a": x, "b": y, "same": x == y})

    for key in ("experiment", "preset", "status", "verdict", "seed", "device", "nproc", "claims"):
        add("run", key, getattr(a, key), getattr(b, key))
    add("run", "duration_s", a.duration_s and round(a.duration_s, 2), b.duration_s and round(b.duration_s, 2))
    for key in sorted(set(a.params) | set(b.params)):
        add("params", key, a.params.get(key), b.params.get(key))
    for key in sorted(set(metrics_a) | set(metrics_b)):
        add("metrics", key, metrics_a.get(key), metrics_b.get(key))
    checks_a = {c["name"]: c for c in a.checks}
    checks_b = {c["name"]: c for c in b.checks}
    for key in sorted(set(checks_a) | set(checks_b)):
        fa, fb = checks_a.get(key), checks_b.get(key)
        add("checks", key, fa and ("pass" if fa["passed"] else "fail"), fb and ("pass" if fb["passed"] else "fail"))
    ea, eb = a.environment, b.environment
    flat = {
        "git commit": lambda e: (e.get("git") or {}).get("commit"),
        "git dirty": lambda e: (e.get("git") or {}).get("dirty"),
        "python": lambda e: (e.get("python") or {}).get("version"),
        "torch": lambda e: (e.get("torch") or {}).get("version"),
        "cuda": lambda e: (e.get("torch") or {}).get("cuda"),
        "cudnn": lambda e: (e.get("torch") or {}).get("cudnn"),
        "devices": lambda e: [d.get("name") for d in (e.get("torch") or {}).get("devices", [])],
        "cpu": lambda e: (e.get("machine") or {}).get("cpu_model"),
        "ram_bytes": lambda e: (e.get("machine") or {}).get("ram_bytes"),
        "host": lambda e: (e.get("machine") or {}).get("host"),
    }
    for key, get in flat.items():
        add("environment", key, get(ea), get(eb))
    pa, pb = ea.get("packages") or {}, eb.get("packages") or {}
    for key in sorted(set(pa) | set(pb), key=str.lower):
        if pa.get(key) != pb.get(key):
            add("packages", key, pa.get(key), pb.get(key))
    return rows


@runs_app.command("compare")
def runs_compare_cmd(
    ctx: typer.Context,
    first: str = typer.Argument(..., help="A run id."),
    second: str = typer.Argument(..., help="Another run id."),
    all_rows: bool = typer.Option(False, "--all", help="Show rows that are equal too."),
    fmt: str = _format_option(),
) -> None:
    """Put two runs side by side: parameters, metrics, checks and environment (differences first).

    Example: paperkb runs compare 20261126-151230-3fa9c1 20261126-152011-0be4d2
    """

    _check_format(fmt)
    tracker = _recorded_runs(ctx)
    with tracker:
        a, b = tracker.get(first), tracker.get(second)
        rows = compare_runs(a, b, tracker.final_metrics(a.id), tracker.final_metrics(b.id))
    if fmt == "json":
        print_json({"a": a.id, "b": b.id, "rows": rows})
        return
    from rich.table import Table

    t = Table(title=f"{a.id} vs {b.id}", title_justify="left")
    for col in ("section", "key", a.id, b.id):
        t.add_column(_esc(col), overflow="fold")
    shown = 0
    for r in rows:
        if r["same"] and not all_rows and r["section"] != "run":
            continue
        shown += 1
        style = "" if r["same"] else "bold"
        t.add_row(_esc(r["section"]), _esc(r["key"]), _esc(_fmt_num(r["a"])), _esc(_fmt_num(r["b"])), style=style)
    con = _console()
    con.print(t)
    same = sum(1 for r in rows if r["same"] and r["section"] != "run")
    if same and not all_rows:
        con.print(f"[dim]{same} equal rows hidden (--all shows them)[/]")


# --------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------
def status_cmd(
    ctx: typer.Context,
    note: Optional[str] = typer.Option(
        None, "--note", "-n", help="Only the claims of this note (name, alias, citekey, title)."
    ),
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Only claims of notes with this tag (or one below it)."
    ),
    status: Optional[str] = typer.Option(None, "--status", "-s", help=_STATUS_HELP),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
    write_notes: bool = typer.Option(
        False, "--write-notes", help="Also write each claim's status into its callout as `status::` (for Dataview)."
    ),
    remove: bool = typer.Option(False, "--remove", help="With --write-notes: take every `status::` field out."),
) -> None:
    """Each paper's claims, their reproduction status and the checks behind it.

    --write-notes puts `status:: <word> · run <id> · <date>` inside each claim callout and
    changes no other byte; a note edited meanwhile is left alone and named on stderr.
    See docs/verdicts.md.

    JSON gives one entry per paper (note) with its claims, each with its status, checks
    and controls.

    Example: paperkb status --status contradicted

    Example: paperkb status --note "Llama 2" --format json

    Example: paperkb status --write-notes
    """
    from kb.vault import Vault
    from repro.status import STATUS_STAGES, checks_brief, controls_brief, filtered_status_table, normalise_status

    vault = require_vault(vault_of(ctx))
    if remove and not write_notes:
        raise typer.BadParameter("--remove goes with --write-notes", param_hint="--remove")
    if write_notes:
        _write_notes(vault, remove)
        if remove:
            return
    want = normalise_status(status) if status else None
    _reap(vault)
    with Vault(vault) as kb_vault, Progress("status:", total=len(STATUS_STAGES)) as progress:
        # one index check for the note lookup and the claims
        papers = filtered_status_table(
            kb_vault,
            note_path=_note_path(kb_vault, note),
            tag=tag,
            status=want,
            stage=_shown_after(progress, LONG_WORK_S),
        )
    if fmt == "json":
        print_json(papers)
        return
    if fmt == "jsonl":
        emit(papers, [], fmt)
        return
    if not papers and fmt == "table" and on_terminal():
        echo(
            "no claim matches these filters"
            if (note or tag or status)
            else "no claims in this vault (write `> [!claim] ...` with `experiment:: <id>` in a note)"
        )
        return
    rows = []
    for paper in papers:
        for c in paper["claims"]:
            rows.append(
                {
                    "paper": paper["title"],
                    "claim": c["id"],
                    "status": c["status"],
                    "behind": "; ".join(filter(None, [checks_brief(c), controls_brief(c)])),
                    "run": _deciding_brief(c),
                    "ended": _short_time(c["ended"]),
                }
            )
    emit_paged(rows, ["paper", "claim", "status", "behind", "run", "ended"], fmt, no_header=no_header, wrap="behind")


def _write_notes(vault: Path, remove: bool) -> None:
    """``status --write-notes``: the report on stderr, one line per note left alone."""
    from kb.vault import Vault
    from repro.notestatus import write_status_notes

    with Vault(vault) as kb_vault:
        report = write_status_notes(kb_vault, remove=remove)
    done = "took" if remove else "wrote"
    where = "out of" if remove else "into"
    echo(f"{done} {report.fields} status:: fields {where} {len(report.written)} notes", err=True)
    for path, why in report.skipped:
        echo(f"{path}: {why}", err=True)


LONG_WORK_S = 0.5  # status shows its progress only past this, so quick answers do not flicker


def _shown_after(progress: Progress, delay_s: float, clock=time.monotonic):
    """A stage callback for ``progress`` that draws nothing until ``delay_s`` have passed."""
    start = clock()

    def stage(name: str) -> None:
        if clock() - start >= delay_s:
            progress.advance(name)
        else:
            progress.done += 1  # counted, not drawn

    return stage


def register(app: typer.Typer) -> None:
    from cli.experiment_commands import experiments_app

    app.add_typer(experiments_app, name="experiments")
    app.command("claims")(claims_cmd)
    app.command("run")(run_cmd)
    app.add_typer(runs_app, name="runs")
    runs_app.command("cancel")(runs_cancel_cmd)
    app.command("status")(status_cmd)


def runs_cancel_cmd(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., metavar="RUN", help="Run ids (or unambiguous prefixes) to cancel."),
) -> None:
    """Cancel runs submitted to Slurm (scancel) and record them as cancelled.

    Queued and running jobs alike; what a running job wrote so far (metrics, logs) is kept.

    Example: paperkb runs cancel 20261207-131500-3fa9c1
    """
    from repro.slurm import cancel

    tracker = _recorded_runs(ctx)
    with tracker:
        for run in cancel(tracker, run_ids):
            print(f"cancelled   {run.id}  {run_label(run)}  (Slurm job {run.environment['slurm']['job_id']})")
