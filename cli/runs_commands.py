"""``paperkb runs`` (the list), ``runs show``, ``runs compare``, ``runs export`` and
``runs cancel``: option parsing over ``repro.tracker`` and ``repro.run_queries``.

Listings go through :mod:`cli.output`: fitted columns on a terminal (ids and paths never
split), tab-separated lines with no box drawing in a pipe."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import print_json, require_vault, vault_of
from cli.output import Progress, cell_text, echo, emit, format_option, no_header_option, on_terminal
from cli.repro_shared import (
    check_table_json,
    console,
    count,
    esc,
    fmt_num,
    open_tracker,
    reap,
    recorded_runs,
    run_label,
    short_time,
    styled,
    table_json_option,
    vault_claims,
    warn,
)

runs_app = typer.Typer(
    help="List recorded runs; `runs show ID` and `runs compare ID ID` for details.\n\n"
    "Example: paperkb runs --experiment transformer/param-count --format json",
    invoke_without_command=True,
    no_args_is_help=False,
)


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
    from repro.run_queries import check_run_filters, run_remarks, runs_matching
    from repro.tracker import STATUSES

    if status is not None and status not in STATUSES:
        raise PaperkbError(f"--status must be one of {', '.join(STATUSES)}; got {status!r}", exit_code=2)
    if limit is not None and limit < 1:
        raise PaperkbError(f"--limit must be at least 1; got {limit}", exit_code=2)
    vault = require_vault(vault_of(ctx))
    reap(vault)
    _retry_mlflow(vault)
    tracker = open_tracker(vault)
    runs = []
    finals: dict[str, dict] = {}
    if tracker is not None:
        with tracker:
            claims = vault_claims(vault) if claim is not None else []
            runs = runs_matching(tracker, claim=claim, experiment=experiment, status=status, limit=limit, claims=claims)
            if fmt in ("json", "jsonl"):
                finals = {r.id: tracker.final_metrics(r.id) for r in runs}
    if not runs:
        check_run_filters(claim, experiment, vault_claims(vault) if claim is not None else [])
    if fmt in ("json", "jsonl"):
        emit([{**r.brief(), "metrics": finals.get(r.id, {})} for r in runs], [], fmt)
        return
    if not runs and fmt == "table" and on_terminal():
        echo("0 runs")  # on a terminal, say so; piped, the header line alone
        return
    rows = [
        {
            "id": r.id,
            "experiment": r.experiment,
            "preset": r.preset,
            "status": r.status,
            "verdict": r.verdict or "",
            "control / overrides": "; ".join(run_remarks(r)),
            "claims": r.claims,
            "started": short_time(r.to_dict()["started"]),
            "took": f"{r.duration_s:.1f}s" if r.duration_s is not None else "",
        }
        for r in runs
    ]
    emit(
        rows,
        ["id", "experiment", "preset", "status", "verdict", "control / overrides", "claims", "started", "took"],
        fmt,
        no_header=no_header,
        wrap="control / overrides",
    )


def _retry_mlflow(vault: Path) -> None:
    """Send the runs whose MLflow export waits (one warning line when the server still fails)."""
    from repro.mlflow_sink import retry_queued

    tracker = open_tracker(vault)
    if tracker is not None:
        with tracker:
            for sent in retry_queued(tracker, vault, warn):
                if sent.state == "exported":
                    print(f"sent run {sent.run_id} to MLflow: {sent.url or sent.mlflow_run_id}", file=sys.stderr)


@runs_app.command("show")
def runs_show_cmd(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="A run id (or an unambiguous prefix)."),
    fmt: str = table_json_option(),
) -> None:
    """Everything recorded about one run: parameters, checks, metrics, artifacts, environment.

    Piped, each section is a heading line and tab-separated lines.

    Example: paperkb runs show 20261126-151230-3fa9c1
    """
    from repro.mlflow_sink import export_record

    check_table_json(fmt)
    tracker = recorded_runs(ctx)
    with tracker:
        run = tracker.get(run_id)
        metrics = tracker.metrics(run.id)
        artifacts = tracker.artifacts(run.id)
        run_dir = tracker.run_dir(run.id)
        mlflow = export_record(tracker, run.id)
    for a in artifacts:
        a["path"] = str(run_dir / a["name"])
    if fmt == "json":
        print_json(
            {**run.to_dict(), "metrics": metrics, "artifacts": artifacts, "run_dir": str(run_dir), "mlflow": mlflow}
        )
        return
    _show_run(run, metrics, artifacts, run_dir, mlflow)


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


def _value(value: Any) -> str:
    """A recorded value as a cell: floats to 6 significant digits, lists joined."""
    return fmt_num(value) if isinstance(value, float) else cell_text(value)


def _heading(markup: str, plain: str) -> None:
    """A line of its own: coloured on a terminal (after a blank line), plain in a pipe."""
    if on_terminal():
        console().print(markup, soft_wrap=True)
    else:
        echo(plain)


def _section(title: str, rows: list[dict], columns: list[str], **how: Any) -> None:
    if on_terminal():
        echo()
    _heading(f"[bold]{title}[/]", title)
    emit(rows, columns, "table", **how)


def _show_run(run: Any, metrics: list[dict], artifacts: list[dict], run_dir: Path, mlflow: dict | None) -> None:
    """``runs show`` as text: a heading line, then sections of fitted columns (ids and paths
    whole) on a terminal, of tab-separated lines in a pipe."""
    from repro.tracker import environment_summary, last_metric_values

    verdict = f"  verdict: {run.verdict}" if run.verdict else ""
    _heading(
        f"[bold]run {esc(run.id)}[/]  {esc(run.experiment)} \\[{esc(run.preset)}]  {styled(run.status)}{esc(verdict)}",
        f"run {run.id}  {run.experiment} [{run.preset}]  {run.status}{verdict}",
    )
    if run.summary:
        echo(run.summary)
    d = run.to_dict()
    info = [{"field": key, "value": d[key] if d[key] not in ([], None) else "-"} for key in _RUN_FIELDS]
    info.append({"field": "params", "value": ", ".join(f"{k}={v}" for k, v in run.params.items()) or "-"})
    if run.overrides:
        info.append({"field": "overrides", "value": ", ".join(f"{k}={v}" for k, v in run.overrides.items())})
    info.append({"field": "command", "value": " ".join(run.command)})
    info.append({"field": "run folder", "value": str(run_dir)})
    if mlflow:
        where = mlflow["url"] or mlflow["mlflow_run_id"]
        if mlflow["state"] != "done":
            where = f"queued ({mlflow['error'] or 'not sent yet'})"
        info.append({"field": "mlflow", "value": where})
    emit(info, ["field", "value"], "table", no_header=True, wrap="value")
    if run.checks:
        checks = [
            {
                "check": c.get("name"),
                "value": fmt_num(c.get("value")),
                "op": c.get("op"),
                "threshold": fmt_num(c.get("threshold")),
                "scale": c.get("scale") or run.scale or "",
                "evidence": c.get("evidence", "direct"),
                "passed": "yes" if c.get("passed") else "no",
            }
            for c in run.checks
        ]
        _section(
            "checks", checks, ["check", "value", "op", "threshold", "scale", "evidence", "passed"], wrap="evidence"
        )
    if metrics:
        last = [
            {
                "metric": m["name"],
                "value": fmt_num(m["value"]),
                "step": "" if m["step"] is None else f"{m['step']:g}",
                "rank": str(m["rank"]),
                "points": str(m["points"]),
            }
            for m in last_metric_values(metrics)
        ]
        _section("metrics (last value)", last, ["metric", "value", "step", "rank", "points"], wrap="metric")
    env = [{"field": k, "value": "-" if v in (None, "") else v} for k, v in environment_summary(run.environment)]
    _section("environment", env, ["field", "value"], no_header=True, wrap="value")
    if artifacts:
        _section("artifacts", artifacts, ["kind", "path"], no_header=True, wrap="path", key="path")
    if run.error:
        if on_terminal():
            echo()
        _heading("[bold red]error[/]", "error")
        echo(run.error.rstrip())


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
    tracker = recorded_runs(ctx)
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
    print(f"{count(len(results), 'run')}: {summary}", file=sys.stderr)
    queued = [r for r in results if r.state == "queued"]
    if queued:
        warn(
            f"MLflow failed ({queued[0].error}); {count(len(queued), 'run')} queued in the vault, "
            "sent by the next `paperkb runs` or `paperkb runs export --to mlflow`"
        )
        raise typer.Exit(1)


@runs_app.command("compare")
def runs_compare_cmd(
    ctx: typer.Context,
    first: str = typer.Argument(..., help="A run id."),
    second: str = typer.Argument(..., help="Another run id."),
    all_rows: bool = typer.Option(False, "--all", help="Show rows that are equal too."),
    fmt: str = table_json_option(),
) -> None:
    """Put two runs side by side: parameters, metrics, checks and environment (differences first).

    Example: paperkb runs compare 20261126-151230-3fa9c1 20261126-152011-0be4d2
    """

    check_table_json(fmt)
    tracker = recorded_runs(ctx)
    with tracker:
        a, b = tracker.get(first), tracker.get(second)
        rows = tracker.compare(a, b)
    if fmt == "json":
        print_json({"a": a.id, "b": b.id, "rows": rows})
        return
    # the run's own fields always; other sections only where the two differ (unless --all)
    shown = [r for r in rows if all_rows or not r["same"] or r["section"] == "run"]
    columns = ["section", "key", a.id, b.id, "same"]
    table = [
        {
            "section": r["section"],
            "key": r["key"],
            a.id: _value(r["a"]),
            b.id: _value(r["b"]),
            "same": "yes" if r["same"] else "no",
        }
        for r in shown
    ]
    if on_terminal():
        echo(f"{a.id} vs {b.id}")
    emit(table, columns, "table", wrap=b.id, key="key")
    hidden = len(rows) - len(shown)
    if hidden:
        echo(f"{hidden} equal rows hidden (--all shows them)", err=not on_terminal())


def runs_cancel_cmd(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., metavar="RUN", help="Run ids (or unambiguous prefixes) to cancel."),
) -> None:
    """Cancel runs submitted to Slurm (scancel) and record them as cancelled.

    Queued and running jobs alike; what a running job wrote so far (metrics, logs) is kept.

    Example: paperkb runs cancel 20261207-131500-3fa9c1
    """
    from repro.slurm import cancel

    tracker = recorded_runs(ctx)
    with tracker:
        for run in cancel(tracker, run_ids):
            print(f"cancelled   {run.id}  {run_label(run)}  (Slurm job {run.environment['slurm']['job_id']})")


runs_app.command("cancel")(runs_cancel_cmd)
