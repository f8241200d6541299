"""``paperkb export ...``: the vault as data for other tools."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cli.common import check_output, fail, vault_of, write_output

export_app = typer.Typer(
    help="Export the vault as data.\n\nExample: paperkb --vault notes export json > vault.json",
    no_args_is_help=True,
)


@export_app.command("json")
def export_json_cmd(
    ctx: typer.Context,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print every note (metadata, links, callouts, questions, claims) and every problem as one JSON object.

    Example: paperkb --vault notes export json -o vault.json
    """
    from kb.errors import PaperkbError
    from kb.export import write_json, write_json_file
    from kb.vault import Vault

    check_output(output)
    try:
        vault = Vault(vault_of(ctx))
        if output is None:
            write_json(vault, sys.stdout)  # streamed: memory stays flat on a large vault
        else:
            write_json_file(vault, output)
            print(f"wrote {output}", file=sys.stderr)
    except PaperkbError as exc:
        raise fail(str(exc), exc.exit_code) from None


@export_app.command("summary")
def export_summary_cmd(
    ctx: typer.Context,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the Markdown to this file instead of stdout."
    ),
) -> None:
    """Write a reading summary in Markdown: for each paper its abstract, highlights, claims with their
    latest reproduction status, questions (open ones flagged), what it cites and what cites it.

    Example: paperkb --vault notes export summary -o reading-summary.md
    """
    from kb.errors import PaperkbError
    from kb.summary import write_summary

    check_output(output)
    try:
        text = write_summary(vault_of(ctx), None)
    except PaperkbError as exc:
        raise fail(str(exc), exc.exit_code) from None
    if output is None:
        sys.stdout.write(text)
    else:
        write_output(output, text)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
