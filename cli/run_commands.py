"""``paperkb run``: plan the runs behind claims, execute them with live progress (or
submit them to Slurm) and report. Option parsing over ``repro.runner``; nothing here
imports torch: only the child process each run starts does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import find_note, print_json, require_vault, vault_of
from cli.repro_shared import check_table_json, count, esc, fmt_num, reap, run_label, styled, vault_claims, warn
from cli.repro_shared import console as make_console


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
            label = esc(run_label(r))
            # a still, empty bar while queued: only the running experiment's bar moves
            self.tasks[r.id] = self.bars.add_task("", total=1, start=False, label=label, info="[dim]queued[/]")

    def started(self, run) -> None:
        task = self.tasks[run.id]
        self.bars.start_task(task)
        self.bars.update(task, total=None, info=f"[cyan]running[/] {esc(run.id)}")

    def progress(self, run, done: float, total: float, message: str) -> None:
        task = self.tasks[run.id]
        self.bars.update(task, total=total or None, completed=done, info=esc(message) if message else None)

    def metric(self, run, m) -> None:
        value = m.get("value")
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        step = f" @ {m['step']:g}" if isinstance(m.get("step"), (int, float)) else ""
        self.bars.update(self.tasks[run.id], info=esc(f"{m['name']}={shown}{step}"))

    def finished(self, run) -> None:
        task = self.tasks[run.id]
        # a finished run stops its spinner: fill its bar (the status word says how it ended)
        total = next((t.total for t in self.bars.tasks if t.id == task), None) or 1
        self.bars.update(task, total=total, completed=total)
        self.bars.update(task, info=styled(run.status))
        self.bars.stop_task(task)
        took = f"{run.duration_s:.1f}s" if run.duration_s is not None else "-"
        pad = " " * max(1, 12 - len(run.status))
        label = run_label(run).ljust(self.label_width)
        line = f"{styled(run.status)}{pad}{esc(label)}  run {esc(run.id)}  ({took})"
        if run.summary:
            line += f"  {esc(run.summary)}"
        self.console.print(line, soft_wrap=True)
        if run.control:
            if run.status == "failed":
                self.console.print(f"    control {esc(run.control)} ended contradicted, as it must")
            elif run.status == "passed":
                self.console.print(f"    [red]control {esc(run.control)} passed: this check cannot fail[/]")
            return
        if run.status == "failed":
            for c in run.checks:
                if not c.get("passed"):
                    self.console.print(
                        f"    [red]check {esc(c['name'])}: {esc(fmt_num(c['value']))} {esc(c['op'])} "
                        f"{esc(fmt_num(c['threshold']))} not met[/]"
                    )
        elif run.error:
            last = [ln for ln in run.error.strip().splitlines() if ln.strip()]
            self.console.print(f"    [red]{esc(last[-1] if last else run.error)}[/]  (paperkb runs show {run.id})")


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
    from repro.run_session import set_aside_not_runnable
    from repro.runner import (
        RunOptions,
        batch_summary,
        exit_code,
        plan_runs,
        refuse_if_nothing_runs,
        resolve_targets,
    )

    check_table_json(fmt)
    if nproc is not None:
        from paperkb.limits import check_nproc

        check_nproc(nproc)  # a worker per CPU at most: 100,000 workers would exhaust the machine
    from paperkb.limits import parse_memory

    vault = require_vault(vault_of(ctx))
    claims = vault_claims(vault) if targets or all_claims else []
    aside: list = []
    if all_claims:  # the needs:: claims are deliberate: named once at the end, not warned about
        claims, aside = set_aside_not_runnable(claims, named=targets or [])
    resolved = resolve_targets(
        list(targets or []), all_claims=all_claims, claims=claims, notes_lookup=_note_lookup(vault), warn=warn
    )
    reap(vault)
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
        _run_on_slurm(vault, resolved, options, launch, fmt, controls=bool(control or controls), aside=aside)
        return
    planned, skipped = plan_runs(resolved, options)
    _record_skipped(vault, skipped, preset)
    refuse_if_nothing_runs(planned, skipped)
    console = make_console(stderr=fmt == "json")
    for s in skipped:
        console.print(f"[yellow]skipped[/]     {esc(s.reason)}", soft_wrap=True)
    runs = _execute_live(vault, planned, console, fmt, options.jobs)
    console.print(batch_summary(runs, skipped), soft_wrap=True)
    _say_not_runnable(console, aside)
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


def _say_not_runnable(console: Any, aside: list) -> None:
    """The claims ``run --all`` set aside (``needs::``, no experiment), once, at the end."""
    from repro.run_session import not_runnable_line

    line = not_runnable_line(aside)
    if line:
        console.print(esc(line), soft_wrap=True)


def _run_on_slurm(vault: Path, resolved: list, options, launch, fmt: str, controls: bool, aside: list) -> None:
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
    console = make_console(stderr=fmt == "json")
    for s in skipped:
        console.print(
            f"[yellow]skipped[/]     {esc(s.reason)} (--on slurm: ask for GPUs with --gpus N)", soft_wrap=True
        )
    with Tracker(vault) as tracker:
        runs = slurm.submit(planned, tracker, chosen, launch, argv=["paperkb", *sys.argv[1:]])
        for r in runs:
            console.print(f"submitted   {esc(run_label(r))}  run {r.id}  {esc(slurm.describe(r))}", soft_wrap=True)
        if launch.detach:
            if fmt == "json":
                print_json([{**r.brief(), "slurm": slurm.slurm_of(r)} for r in runs])
            console.print(f"{count(len(runs), 'run')} submitted; `paperkb runs` follows them", soft_wrap=True)
            _say_not_runnable(console, aside)
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
            print_json([{**r.brief(), "error": r.error, "slurm": slurm.slurm_of(r)} for r in runs])
    console.print(batch_summary(runs, skipped), soft_wrap=True)
    _say_not_runnable(console, aside)
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
    from repro.run_session import StopSignalsInterrupt
    from repro.runner import LogMonitor, MonitorGroup, MonitorLike, execute
    from repro.tracker import Tracker

    argv = ["paperkb", *sys.argv[1:]]
    with Tracker(vault) as tracker, StopSignalsInterrupt():
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
                        **r.brief(),
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

    return sink_for(vault, tracker, warn=warn)


def _report_controls(runs: list, console) -> int:
    """Say whether every negative control ended contradicted; the exit status for --controls."""
    from repro.runner import controls_exit_code, controls_not_contradicted

    bad = controls_not_contradicted(runs)
    if bad:
        console.print(
            f"[red]{count(len(bad), 'negative control')} did not end "
            "contradicted[/]: " + esc(", ".join(f"{r.experiment} [{r.control}] {r.status}" for r in bad)),
            soft_wrap=True,
        )
    else:
        console.print(f"every negative control ended contradicted ({len(runs)})", soft_wrap=True)
    return controls_exit_code(runs)
