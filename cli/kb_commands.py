"""Knowledge-base commands: index, show, links, backlinks, path, tags, questions, graph, check.

A thin layer over ``kb.vault.Vault``. Imports stay light at module level (no
markdown-it, networkx or rich): ``paperkb show`` must answer in a fraction of a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from cli.common import guard, check_output, fail, find_note, find_path, print_json, vault_of

FORMATS = ("table", "json")



def _vault(ctx: typer.Context, *, refresh: bool = True):
    from kb.vault import Vault

    return Vault(vault_of(ctx), refresh=refresh)


def _check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    if fmt not in allowed:
        raise fail(f"unknown --format {fmt!r} (use {', '.join(allowed)})", 2)
    return fmt


_CONTROL = str.maketrans({c: "?" for c in [*range(0, 9), *range(11, 32), *range(127, 160)]})


def _printable(text: str) -> str:
    """``text`` without terminal control characters: a note must not be able to send
    escape sequences (clear the screen, retitle the window) to the user's terminal."""
    return text.translate(_CONTROL)


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    """Aligned plain-text columns (rich tables cost a noticeable import on fast paths)."""
    cells = [[_printable(("" if v is None else str(v)).replace("\n", " ")) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(v))
    out = sys.stdout

    def line(values: list[str]) -> str:
        parts = [v.ljust(widths[i]) if i < len(values) - 1 else v for i, v in enumerate(values)]
        return "  ".join(parts).rstrip()

    out.write(line(headers) + "\n")
    out.write(line(["-" * w for w in widths[:-1]] + ["-" * max(len(headers[-1]), 4)]) + "\n")
    for row in cells:
        out.write(line(row) + "\n")


def _short_list(items: list[str], limit: int = 6) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])}, ... ({len(items)} in all)"


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------
@guard
def index_cmd(
    ctx: typer.Context,
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", min=1, help="Parser processes (default: one per CPU)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary line."),
) -> None:
    """Index the vault (incremental: only new and changed notes are parsed).

    Example: paperkb --vault notes index
    """
    vault = _vault(ctx)
    stats = vault.index(progress=not quiet, workers=workers)
    if quiet:
        return
    problems = vault.problems()
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = sum(1 for p in problems if p.severity == "warning")
    print(
        f"{stats.notes} notes, {stats.attachments} attachments in {vault.root} "
        f"(parsed {stats.parsed}, unchanged {stats.notes - stats.parsed}, deleted {stats.deleted}) "
        f"in {stats.seconds:.2f} s; {errors} errors, {warnings} warnings"
        + (" (see: paperkb check)" if errors or warnings else "")
    )


@guard
def show_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="File name, path, alias, citekey or title."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Show one note: metadata, questions, claims, links and problems.

    Example: paperkb --vault notes show touvronLlamaOpenFoundation2023
    """
    _check_format(fmt)
    vault = _vault(ctx)
    n = find_note(vault, note)
    conn = vault.connect()
    n_back = conn.execute(
        "SELECT COUNT(DISTINCT src) FROM links WHERE resolved=? AND src != ?", (n.path, n.path)
    ).fetchone()[0]
    if fmt == "json":
        data = n.to_dict()
        data.pop("body_text", None)
        data["backlinks"] = n_back
        print_json(data)
        return
    unresolved = sum(1 for link in n.links if link.resolved is None)
    answered = sum(1 for q in n.questions if q.answered)

    def w(text: str) -> None:  # titles, aliases, tags come from the note: no control characters
        sys.stdout.write(_printable(text))

    w(f"{n.title or n.name}\n")
    rows = [
        ("path", n.path),
        ("citekey", n.citekey),
        ("authors", _short_list(n.authors) if n.authors else None),
        ("year", n.year),
        ("doi", n.doi),
        ("aliases", ", ".join(n.aliases) if n.aliases else None),
        ("tags", ", ".join(t.lstrip("#") for t in n.tags) if n.tags else None),
        ("links", f"{len(n.links)} out ({unresolved} unresolved), {n_back} notes link here"),
        ("callouts", len(n.callouts)),
        ("questions", f"{len(n.questions)} ({answered} answered)"),
        ("claims", len(n.claims)),
        ("problems", len(n.problems)),
    ]
    for key, value in rows:
        if value not in (None, ""):
            w(f"  {key:<10}{value}\n")
    if n.questions:
        w("\nQuestions\n")
        for q in n.questions:
            w(f"  {n.path}:{q.line}  [{'x' if q.answered else ' '}] {_one_line(q.text)}\n")
    if n.claims:
        w("\nClaims\n")
        for c in n.claims:
            exps = ", ".join(c.experiments) or "no experiment"
            w(f"  {n.path}:{c.line}  {c.id}: {_one_line(c.statement)}  -> {exps}\n")
    if n.problems:
        w("\nProblems\n")
        for p in n.problems:
            w(f"  {p.format()}\n")


def _one_line(text: str, width: int = 100) -> str:
    text = _printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 3] + "..."


def _link_label(row) -> str:
    from kb.resolve import describe

    return describe(row)


@guard
def links_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="File name, path, alias, citekey or title."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List the links written in a note and where each resolves.

    Example: paperkb --vault notes links touvronLlamaOpenFoundation2023
    """
    _check_format(fmt)
    vault = _vault(ctx)
    rows = vault.outgoing(find_path(vault, note))
    if fmt == "json":
        print_json([r.to_dict() for r in rows])
        return
    _table(["line", "edge", "link", "resolves to"],
           [[r.line, r.edge, _link_label(r), r.resolved or "(unresolved)"] for r in rows])


@guard
def backlinks_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="File name, path, alias, citekey or title."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List the notes that link to a note.

    Example: paperkb --vault notes backlinks vaswaniAttentionAllYou2017
    """
    _check_format(fmt)
    vault = _vault(ctx)
    rows = vault.backlinks(find_path(vault, note))
    if fmt == "json":
        print_json([r.to_dict() for r in rows])
        return
    _table(["from", "line", "edge", "link"], [[r.src, r.line, r.edge, _link_label(r)] for r in rows])


@guard
def path_cmd(
    ctx: typer.Context,
    a: str = typer.Argument(..., help="Start note."),
    b: str = typer.Argument(..., help="End note."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """The shortest chain of links from note A to note B (undirected when no directed one).

    Example: paperkb --vault notes path touvronLlamaOpenFoundation2023 vaswaniAttentionAllYou2017
    """
    from kb import graph as G

    _check_format(fmt)
    vault = _vault(ctx)
    pa, pb = find_path(vault, a), find_path(vault, b)
    g = vault.graph()
    nodes, directed = G.citation_path(g, pa, pb)
    if fmt == "json":
        print_json({"from": pa, "to": pb, "path": nodes, "directed": directed})
    elif not nodes:
        print(f"no path between {pa} and {pb}")
    else:
        how = "following links" if directed else "no directed path; ignoring link direction"
        print(f"{len(nodes) - 1} step(s), {how}:")
        for i, node in enumerate(nodes):
            print(f"  {i}. {g.nodes[node].get('label', node)}  ({node})")
    if fmt != "json" and not nodes:
        raise typer.Exit(1)


@guard
def tags_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List every tag with the number of notes carrying it.

    Example: paperkb --vault notes tags --format json
    """
    _check_format(fmt)
    tags = _vault(ctx).tags()
    if fmt == "json":
        print_json([{"tag": t, "notes": n} for t, n in tags])
        return
    _table(["notes", "tag"], [[n, t] for t, n in tags])


@guard
def questions_cmd(
    ctx: typer.Context,
    open_only: bool = typer.Option(False, "--open", help="Only questions without an answer."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List the question callouts of every note, answered or not.

    Example: paperkb --vault notes questions --open
    """
    _check_format(fmt)
    rows = [
        {"path": path, "line": q.line, "answered": q.answered, "text": q.text, "answer": q.answer}
        for path, q in _vault(ctx).questions(open_only=open_only)
    ]
    if fmt == "json":
        print_json(rows)
        return
    if not rows:
        print("no open questions" if open_only else "no question callouts in the vault", file=sys.stderr)
        return
    _table(["where", "done", "question"],
           [[f"{r['path']}:{r['line']}", "x" if r["answered"] else "", _one_line(r["text"])] for r in rows])


GRAPH_FORMATS = ("summary", "graphml", "gexf", "json", "mermaid", "dot", "svg", "png")


@guard
def graph_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option("summary", "--format", "-f",
                            help="summary, graphml, gexf, json, mermaid, dot, or a picture: svg or png."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    around: Optional[str] = typer.Option(None, "--around", help="svg/png: only this note's neighbourhood."),
    depth: int = typer.Option(1, "--depth", min=0, help="svg/png with --around: how many links away."),
) -> None:
    """The citation graph: a summary, the whole graph in an exchange format, or a picture
    of the papers and the works they cite (svg or png; no Graphviz needed).

    Example: paperkb --vault notes graph --format svg --around "Llama 2" --depth 2 -o llama.svg
    """
    from kb import graph as G

    _check_format(fmt, GRAPH_FORMATS)
    check_output(output)
    if fmt in ("svg", "png"):
        from kb.publish.graph_draw import citation_picture

        vault = _vault(ctx)
        data = citation_picture(vault, fmt, around=find_path(vault, around) if around else None, depth=depth)
        if output is None:
            sys.stdout.buffer.write(data)
        else:
            output.write_bytes(data)
            print(f"wrote {output}", file=sys.stderr)
        return
    g = _vault(ctx).graph()
    if fmt == "summary":
        _print_summary(G.summary(g), output)
        return
    if output is None:
        G.write(g, fmt, sys.stdout)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            G.write(g, fmt, fh)
        print(f"wrote {output}", file=sys.stderr)


def _print_summary(s: dict, output: Optional[Path]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=open(output, "w", encoding="utf-8") if output else None, highlight=False,
                      soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # pipes and files: do not fold lines at 80 columns
    edges = s["edges"]
    console.print(
        f"[bold]Citation graph[/bold]: {s['notes']} notes, {s['ghosts']} ghost works (cited, no note yet), "
        f"{s['experiments']} experiments; {s['components']} connected component(s)"
    )
    console.print(
        "edges: " + ", ".join(f"{edges[k]} {k}" for k in ("cites", "mentions", "embeds", "claims"))
    )
    if s["most_cited"]:
        table = Table(title="Most cited", title_justify="left")
        table.add_column("citations", justify="right")
        table.add_column("work")
        table.add_column("node")
        for row in s["most_cited"]:
            # titles and paths come from notes: never read them as rich markup
            table.add_row(str(row["citations"]), escape(str(row["label"])), escape(str(row["node"])))
        console.print(table)
    orphans = s["orphans"]
    console.print(f"orphans (no link to or from another note): {len(orphans)}"
                  + (f" - {escape(_short_list(orphans))}" if orphans else ""))
    if output:
        console.file.close()
        print(f"wrote {output}", file=sys.stderr)


@guard
def check_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", "-f", help="table (path:line: severity: message) or json."),
    no_experiments: bool = typer.Option(False, "--no-experiments", help="Skip the claims/experiments cross-check."),
) -> None:
    """Report every problem as `path:line: severity: message`; exit 1 when any is an error.

    Example: paperkb --vault notes check
    """
    from kb.check import check, has_errors

    _check_format(fmt)
    problems = check(_vault(ctx), experiments=not no_experiments)
    if fmt == "json":
        print_json([{"path": p.path, "line": p.line, "severity": p.severity, "message": p.message}
                    for p in problems])
    else:
        for p in problems:
            print(p.format())
        counts = {s: sum(1 for p in problems if p.severity == s) for s in ("error", "warning", "info")}
        print(f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} info", file=sys.stderr)
    if has_errors(problems):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("index")(index_cmd)
    app.command("show")(show_cmd)
    app.command("links")(links_cmd)
    app.command("backlinks")(backlinks_cmd)
    app.command("path")(path_cmd)
    app.command("tags")(tags_cmd)
    app.command("questions")(questions_cmd)
    app.command("graph")(graph_cmd)
    app.command("check")(check_cmd)

