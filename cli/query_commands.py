"""Query commands: ``query`` (Dataview's DQL), ``render`` (a note with its query blocks
evaluated) and ``search`` (full text, FTS5).

A thin layer over ``kb.query`` and ``kb.search``; rich is imported only to draw a table.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from cli.common import guard, fail, print_json, vault_of

QUERY_FORMATS = ("table", "json", "csv", "markdown")
SEARCH_FORMATS = ("table", "json")



def _vault(ctx: typer.Context):
    from kb.vault import Vault

    return Vault(vault_of(ctx))


def _check_format(fmt: str, allowed: tuple[str, ...]) -> str:
    if fmt not in allowed:
        raise fail(f"unknown --format {fmt!r} (use {', '.join(allowed)})", 2)
    return fmt


@guard
def query_cmd(
    ctx: typer.Context,
    dql: str = typer.Argument(..., help="The query, e.g. 'TABLE year FROM #paper SORT year DESC'. '-' reads stdin."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, csv or markdown."),
    this: Optional[str] = typer.Option(None, "--this", help="The note that `this` and [[]] refer to."),
) -> None:
    """Run a Dataview query (DQL) over the vault.

    Example: paperkb query 'TABLE year, length(file.inlinks) AS cited FROM #paper WHERE year >= 2020 SORT cited DESC LIMIT 10'
    """
    from kb.query import run_query, to_csv, to_json_text, to_markdown

    _check_format(fmt, QUERY_FORMATS)
    if dql == "-":
        dql = sys.stdin.read()
    result = run_query(_vault(ctx), dql, this=this)
    if fmt == "json":
        sys.stdout.write(to_json_text(result))
    elif fmt == "csv":
        sys.stdout.write(to_csv(result))
    elif fmt == "markdown":
        sys.stdout.write(to_markdown(result))
    else:
        from kb.query.render import print_rich

        print_rich(result)


@guard
def render_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="The note: path, file name, alias, citekey or title."),
) -> None:
    """Print a note with each ```dataview block replaced by its result as Markdown.

    Example: paperkb render "Reading list"
    """
    from kb.query import render_note

    text = render_note(_vault(ctx), note)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@guard
def search_cmd(
    ctx: typer.Context,
    text: str = typer.Argument(..., help='Words, "a phrase", prefix*, AND/OR/NOT, title:word.'),
    tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Only notes with this tag (subtags included)."),
    year: Optional[str] = typer.Option(None, "--year", "-y", help="A year (2023) or a range (2020-2023, 2020-)."),
    limit: int = typer.Option(20, "--limit", "-n", help="At most this many results."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Full-text search over titles, aliases, authors, headings and bodies (bm25 ranking).

    Example: paperkb search '"fine-tuned chat" llama*' --tag paper --year 2023 --limit 5
    """
    from kb.search import HIT_END, HIT_START, search

    _check_format(fmt, SEARCH_FORMATS)
    hits = search(_vault(ctx), text, tag=tag, year=year, limit=limit)
    if fmt == "json":
        print_json([h.to_dict() for h in hits])
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold")
    for col in ("path", "year", "score", "snippet"):
        table.add_column(col, overflow="fold")
    for h in hits:
        snippet = Text()
        for i, part in enumerate(h.snippet.replace(HIT_END, HIT_START).split(HIT_START)):
            snippet.append(part, style="bold yellow" if i % 2 else None)
        table.add_row(h.path, "" if h.year is None else str(h.year), f"{-h.score:.2f}", snippet)
    console = Console()
    console.print(table)
    console.print(f"{len(hits)} result{'s' if len(hits) != 1 else ''}", style="dim")


def register(app: typer.Typer) -> None:
    app.command("query")(query_cmd)
    app.command("render")(render_cmd)
    app.command("search")(search_cmd)
