"""``paperkb watch``: keep the index (and a static site) current while the user edits.

A thin layer over :func:`kb.watch.watch_vault`; the site comes from ``kb.publish.site``
with the claim statuses of ``repro.status`` (as ``paperkb export site`` writes it)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from cli.common import require_vault, vault_of
from cli.output import echo


def watch_cmd(
    ctx: typer.Context,
    site: Optional[Path] = typer.Option(
        None, "--site", help="Also keep the static site in this folder current (as `export site` writes it)."
    ),
    debounce: int = typer.Option(
        300, "--debounce", min=0, max=60_000, help="Gather changes that arrive within this many ms into one update."
    ),
    poll: bool = typer.Option(
        False, "--poll", help="Look for changes by polling (network or other disks where change events do not arrive)."
    ),
    poll_delay: int = typer.Option(500, "--poll-delay", min=10, max=60_000, help="With --poll: ms between looks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
) -> None:
    """Keep the index (and with --site, the static site) current while you edit the vault.

    One update on start, then one after each batch of saves (renames and deletions
    included). A failing update is reported in one line and watching goes on. Stop it
    with Ctrl-C (exit status 130).

    Example: paperkb --vault notes watch --site site/
    """
    from kb.vault import Vault
    from kb.watch import WatchUpdate, watch_vault

    root = require_vault(vault_of(ctx))
    vault = Vault(root)
    write_site = None
    ignore: list[Path] = []
    if site is not None:
        from cli.export_commands import _claim_statuses, _runs_dir
        from kb.publish.site import export_site

        out = site

        def write_site():  # type: ignore[no-untyped-def]
            return export_site(
                vault,
                out,
                status_of=lambda claims: _claim_statuses(vault.root, claims=claims),
                runs_dir=_runs_dir(vault.root),
                workers=1,
            )

        ignore.append(site.resolve())

    def report(update: WatchUpdate) -> None:
        stamp = time.strftime("%H:%M:%S")
        if update.error:
            echo(f"{stamp} error: {update.error}", err=True)
            return
        if quiet:
            return
        s = update.stats
        what = f"{s.notes} notes indexed" if update.first else f"{s.parsed} notes re-read, {s.deleted} removed"
        line = f"{stamp} {what} in {update.seconds:.2f} s"
        if update.site is not None:
            line += f"; site: {update.site.written} files written"
        if update.first:
            line += "; watching for changes (Ctrl-C stops)"
        elif update.changes:
            shown = ", ".join(update.changes[:3]) + (
                f" and {len(update.changes) - 3} more" if len(update.changes) > 3 else ""
            )
            line += f" ({shown})"
        echo(line, err=True)
        sys.stderr.flush()

    try:
        watch_vault(
            vault,
            on_update=report,
            site=write_site,
            ignore=ignore,
            debounce_ms=debounce,
            poll=poll,
            poll_delay_ms=poll_delay,
        )
    except KeyboardInterrupt:
        echo("stopped watching", err=True)
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_cmd)
