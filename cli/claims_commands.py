"""``paperkb claims`` (each claim with its status) and ``paperkb status`` (the same by
paper, and ``--write-notes``): option parsing over ``repro.status``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from cli.common import print_json, require_vault, vault_of
from cli.output import Progress, echo, emit, format_option, no_header_option, on_terminal
from cli.pager import emit_paged
from cli.repro_shared import STATUS_HELP, deciding_brief, note_path, reap, short_time


def no_claims_line(note: Optional[str], tag: Optional[str], status: Optional[str]) -> str:
    """What an empty listing of claims says instead of a bare header."""
    if not (note or tag or status):
        return "no claims in this vault (write `> [!claim] ...` with `experiment:: <id>` in a note)"
    where = [
        f"with status {status!r}" if status else "",
        f"in {note!r}" if note else "",
        f"tagged {tag}" if tag else "",
    ]
    return "no claims " + " ".join(w for w in where if w)


def claims_cmd(
    ctx: typer.Context,
    note: Optional[str] = typer.Argument(None, help="Only the claims of this note (name, alias, citekey, title)."),
    note_opt: Optional[str] = typer.Option(None, "--note", "-n", help="Same as the NOTE argument."),
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Only claims of notes with this tag (or one below it)."
    ),
    status: Optional[str] = typer.Option(None, "--status", "-s", help=STATUS_HELP),
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
    from kb.vault import Vault
    from repro.status import checks_brief, claim_rows, controls_brief, normalise_status

    vault = require_vault(vault_of(ctx))
    want = normalise_status(status) if status else None
    reap(vault)
    with Vault(vault) as kb_vault:  # one index check for the note lookup and the claims
        rows = claim_rows(kb_vault, note_path=note_path(kb_vault, note_opt or note), tag=tag, status=want)
    if not rows and fmt == "table":
        print(no_claims_line(note_opt or note, tag, status), file=sys.stderr)
        return
    if fmt not in ("json", "jsonl"):
        for r in rows:
            r["where"] = f"{r['title']}:{r['line']}"
            r["behind"] = "; ".join(filter(None, [checks_brief(r), controls_brief(r)]))
            r["run"] = deciding_brief(r)
    emit_paged(rows, ["id", "status", "experiments", "where", "behind", "run"], fmt, no_header=no_header, wrap="behind")


def status_cmd(
    ctx: typer.Context,
    note: Optional[str] = typer.Option(
        None, "--note", "-n", help="Only the claims of this note (name, alias, citekey, title)."
    ),
    tag: Optional[str] = typer.Option(
        None, "--tag", "-t", help="Only claims of notes with this tag (or one below it)."
    ),
    status: Optional[str] = typer.Option(None, "--status", "-s", help=STATUS_HELP),
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
    reap(vault)
    with Vault(vault) as kb_vault, Progress("status:", total=len(STATUS_STAGES)) as progress:
        # one index check for the note lookup and the claims
        papers = filtered_status_table(
            kb_vault,
            note_path=note_path(kb_vault, note),
            tag=tag,
            status=want,
            stage=shown_after(progress, LONG_WORK_S),
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
                    "run": deciding_brief(c),
                    "ended": short_time(c["ended"]),
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


def shown_after(progress: Progress, delay_s: float, clock=time.monotonic):
    """A stage callback for ``progress`` that draws nothing until ``delay_s`` have passed."""
    start = clock()

    def stage(name: str) -> None:
        if clock() - start >= delay_s:
            progress.advance(name)
        else:
            progress.done += 1  # counted, not drawn

    return stage
