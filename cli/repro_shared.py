"""Helpers shared by the reproduction command modules (run, runs, claims, status,
experiments): the console, status colours, the tracker of the chosen vault.

Nothing here imports torch or the command modules themselves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import check_format, find_note, require_vault, vault_of

FORMATS = ("table", "json")

STATUS_HELP = (
    "Only claims with this status: unverified, needs (any 'needs ...'), 'supported at small scale' "
    "(with its proxy form), proxy, reproduced, contradicted, error."
)


def table_json_option() -> Any:
    return typer.Option("table", "--format", "-f", help="Output format: table or json.")


def check_table_json(fmt: str) -> str:
    return check_format(fmt, FORMATS)


def console(stderr: bool = False) -> Any:
    """A rich console for live progress and coloured lines (never for listings)."""
    import os

    from rich.console import Console

    con = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con.width = 160  # pipes and logs: do not fold lines at 80 columns
    return con


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def reap(vault: Path) -> None:
    """Mark orphaned runs interrupted, if this vault has a tracker at all; bring runs
    submitted to Slurm up to date (and record those that ended)."""
    from repro.tracker import Tracker

    tracker = Tracker.open_existing(vault)
    if tracker is not None:
        with tracker:
            for run_id in tracker.reap_stale():
                warn(f"run {run_id} was left running by a paperkb process that is gone; marked interrupted")
            from repro.slurm import refresh, submitted_runs

            if submitted_runs(tracker):
                refresh(tracker)


def vault_claims(vault: Path) -> list:
    from repro.status import vault_claims as claims_of

    return claims_of(vault)


def open_tracker(vault: Path) -> Any:
    from repro.tracker import Tracker

    return Tracker.open_existing(vault)


def recorded_runs(ctx: typer.Context) -> Any:
    """The tracker of the chosen vault, after marking dead runs interrupted; an error when
    nothing was ever run there."""
    from kb.errors import PaperkbError

    vault = require_vault(vault_of(ctx))
    reap(vault)
    tracker = open_tracker(vault)
    if tracker is None:
        raise PaperkbError(f"no runs recorded in {vault} yet (see `paperkb run`)")
    return tracker


def note_path(vault: Any, note: Optional[str]) -> Optional[str]:
    """The vault path of ``note`` (``vault``: an open kb.vault.Vault), or None."""
    if not note:
        return None
    return find_note(vault, note).path


def run_label(run: Any) -> str:
    from repro.runner import run_label as label

    return str(label(run))


def status_style(word: str | None) -> str:
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


def styled(word: str | None) -> str:
    from rich.markup import escape

    if not word:
        return ""
    style = status_style(word)
    return f"[{style}]{escape(word)}[/]" if style else escape(word)


def esc(text: Any) -> str:
    from rich.markup import escape

    return escape("" if text is None else str(text))


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def short_time(iso_text: str | None) -> str:
    return (iso_text or "").replace("T", " ").replace("+00:00", "")


def fmt_num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def deciding_brief(entry: dict) -> str:
    """The runs a claim's word rests on: the newest one's id, with how many more."""
    ids = entry.get("deciding_runs") or []
    if not ids:
        return entry.get("run_id") or ""
    newest = entry.get("run_id") or ids[-1]
    return newest + (f" +{len(ids) - 1}" if len(ids) > 1 else "")
