"""Query commands: ``query`` (Dataview's DQL), ``render`` (a note with its query blocks
evaluated) and ``search`` (full text, FTS5).

A thin layer over ``kb.query`` and ``kb.search``; listings print through :mod:`cli.output`.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from cli.common import hand_in_claim_statuses, vault_of
from cli.output import clean_text, emit, format_option, no_header_option, on_terminal


def _vault(ctx: typer.Context):
    from kb.vault import Vault

    hand_in_claim_statuses()
    return Vault(vault_of(ctx))


def query_cmd(
    ctx: typer.Context,
    dql: str = typer.Argument(..., help="The query, e.g. 'TABLE year FROM #paper SORT year DESC'. '-' reads stdin."),
    fmt: str = format_option(extra=("markdown",)),
    no_header: bool = no_header_option(),
    this: Optional[str] = typer.Option(None, "--this", help="The note that `this` and [[]] refer to."),
) -> None:
    """Run a Dataview query (DQL) over the vault.

    Each example works on the bundled vault (from its folder: cd notes).

    Example: paperkb query 'TABLE year, length(claims) AS claims FROM #paper SORT year DESC'

    Example: paperkb query 'LIST FROM [[Llama 2 - Open Foundation and Fine-Tuned Chat Models]]'

    Example: paperkb query 'TABLE length(file.inlinks) AS cited FROM #paper SORT cited DESC' -f csv
    """
    from kb.query import run_query, to_csv, to_json_text, to_markdown, to_records

    if dql == "-":
        dql = sys.stdin.read()
    result = run_query(_vault(ctx), dql, this=this)
    if fmt == "json":
        sys.stdout.write(to_json_text(result))
    elif fmt == "jsonl":
        emit(to_records(result), [], "jsonl")
    elif fmt == "csv" and not no_header:
        sys.stdout.write(to_csv(result))
    elif fmt == "markdown":
        sys.stdout.write(to_markdown(result))
    else:
        header, rows = _result_table(result)
        emit([dict(zip(header, r)) for r in rows], header, fmt, no_header=no_header, wrap=_widest(header, rows))
        if fmt == "table" and on_terminal():
            n = len(result.rows)
            print(f"{n} result{'s' if n != 1 else ''}", file=sys.stderr)


def _result_table(result) -> tuple[list[str], list[list[str]]]:
    """A query result as a header and rows of display text (TABLE as is; LIST and TASK
    as one or two columns)."""
    from kb.query.render import display, task_line

    if result.type == "table":
        header = ([result.id_header] if result.id_header else []) + list(result.headers)
    elif result.type == "list":
        header = ([result.id_header] if result.id_header else []) + (["value"] if result.headers else [])
    else:
        header = [result.id_header or "File", "task"]
    header = header or ["File"]
    rows: list[list[str]] = []
    for r in result.rows:
        if result.type == "task":
            rows += [[display(r.id), task_line(m.task)[2:]] for m in (r.group if result.grouped else [r]) or []]
            continue
        cells = ([display(r.id)] if result.id_header else []) + [display(v) for v in r.values]
        if r.group is not None and result.type == "list" and not result.headers:
            cells.append(display([m.id for m in r.group]))
            if len(header) < len(cells):
                header.append("rows")
        rows.append(cells or [display(r.id)])
    return _unique(header), rows


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h} ({seen[h]})")
    return out


def _widest(header: list[str], rows: list[list[str]]) -> str | None:
    if not header:
        return None
    widths = [max([len(h)] + [len(r[i]) for r in rows if i < len(r)]) for i, h in enumerate(header)]
    return header[widths.index(max(widths))]


def render_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="The note: path, file name, alias, citekey or title."),
) -> None:
    """Print a note with each ```dataview block replaced by its result as Markdown.

    Example: paperkb --vault notes render "Attention Is All You Need"
    """
    from kb.query import render_note

    text = render_note(_vault(ctx), note)
    text = text if text.endswith("\n") else text + "\n"
    sys.stdout.write(clean_text(text) if on_terminal() else text)


def search_cmd(
    ctx: typer.Context,
    text: str = typer.Argument(
        ...,
        help='Words, "a phrase", prefix*, AND/OR/NOT; fields title:, author:, citekey:, heading:, body:, tag:, year:.',
    ),
    tag: Optional[str] = typer.Option(None, "--tag", "-t", help="Only notes with this tag (subtags included)."),
    year: Optional[str] = typer.Option(None, "--year", "-y", help="A year (2023) or a range (2020-2023, 2020-)."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1_000_000_000, help="At most this many results."),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """Full-text search over titles, aliases, authors, headings and bodies (bm25 ranking).

    Example: paperkb search '"fine-tuned chat" llama*' --tag paper --year 2023 --limit 5

    Example: paperkb search 'author:Hoffmann compute tag:paper year:2020-'
    """
    from kb.search import search
    from kb.vault import Vault

    # no query runs here: claim statuses (and the query engine) are not needed
    hits = search(Vault(vault_of(ctx)), text, tag=tag, year=year, limit=limit)
    if fmt in ("json", "jsonl"):
        emit([h.to_dict() for h in hits], [], fmt)
        return
    # matched words stay marked as **word** (as in the JSON), readable in a pipe too
    rows = [
        {"path": h.path, "year": h.year, "score": f"{-h.score:.2f}", "snippet": h.to_dict()["snippet"]} for h in hits
    ]
    emit(rows, ["path", "year", "score", "snippet"], fmt, no_header=no_header, wrap="snippet", key="path")
    if fmt == "table" and on_terminal():
        print(f"{len(hits)} result{'s' if len(hits) != 1 else ''}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("query")(query_cmd)
    app.command("render")(render_cmd)
    app.command("search")(search_cmd)
