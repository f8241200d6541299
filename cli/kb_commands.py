"""Knowledge-base commands: index, show, links, backlinks, path, tags, questions, graph, check.

A thin layer over ``kb.vault.Vault``. Imports stay light at module level (no
markdown-it, networkx or rich): ``paperkb show`` must answer in a fraction of a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from cli.common import (
    OUTPUT_OPT,
    check_output,
    declared_experiments,
    find_path,
    find_path_or_ghost,
    ghost_line,
    print_json,
    vault_of,
)
from cli.output import Progress, clean, clean_text, echo, emit, format_option, no_header_option, on_terminal


def _vault(ctx: typer.Context, *, refresh: bool = True):
    from kb.vault import Vault

    return Vault(vault_of(ctx), refresh=refresh)


def _short_list(items: list[str], limit: int = 6) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])}, ... ({len(items)} in all)"


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------
def index_cmd(
    ctx: typer.Context,
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", min=1, help="Parser processes (default: one per CPU)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary line."),
    force: bool = typer.Option(False, "--force", help="Re-read and re-hash every note; check the database."),
    index_only: bool = typer.Option(
        False, "--index-only", help="Leave the query, search and claims tables to their first reader."
    ),
) -> None:
    """Index the vault (incremental: only new and changed notes are parsed), and bring the
    tables that query, search and claims read up to date with it.

    Example: paperkb --vault notes index
    """
    vault = _vault(ctx)
    stats = vault.index(progress=not quiet, workers=workers, force=force)
    # the query, search and claims tables too: else the first of each after a big change
    # would build its own (seconds on a large vault)
    prepared_s = 0.0
    if not index_only:
        from kb.read_tables import READ_TABLES, prepare_reads

        with Progress("preparing", total=len(READ_TABLES)) as progress:
            prepared_s = prepare_reads(vault, stage=None if quiet else progress.advance, after=stats)
    for name in stats.bad_names:
        echo(f"warning: {name}: left out: its name is not valid UTF-8 (rename the file)", err=True)
    if quiet:
        return
    counts = vault.problem_counts()
    errors, warnings = counts.get("error", 0), counts.get("warning", 0)
    print(
        f"{stats.notes} notes, {stats.attachments} attachments in {vault.root} "
        f"(parsed {stats.parsed}, unchanged {stats.notes - stats.parsed}, deleted {stats.deleted}) "
        f"in {stats.seconds:.2f} s"
        + (f" (+{prepared_s:.2f} s for the query, search and claims tables)" if prepared_s >= 0.05 else "")
        + f"; {errors} errors, {warnings} warnings"
        + (" (see: paperkb check)" if errors or warnings else "")
    )


def show_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="File name, path, alias, citekey or title."),
    fmt: str = format_option(only=("table", "json")),
) -> None:
    """Show one note: metadata, questions, claims, links and problems.

    Example: paperkb --vault notes show touvronLlamaOpenFoundation2023
    """
    from kb.lookup import backlink_count

    vault = _vault(ctx)
    path, ghost = find_path_or_ghost(vault, note)
    if path is None:
        _show_ghost(note, ghost, fmt)
        return
    n = vault.note_at(path)
    n_back = backlink_count(vault.connect(), n.path)
    if fmt == "json":
        data = n.to_dict()
        data.pop("body_text", None)
        data["backlinks"] = n_back
        print_json(data)
        return
    unresolved = sum(1 for link in n.links if link.resolved is None)
    answered = sum(1 for q in n.questions if q.answered)
    prompts = sum(1 for q in n.questions if q.prompt)
    lines = [clean(n.title or n.name)]
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
        (
            "questions",
            f"{len(n.questions)} ({answered} answered" + (f", {prompts} empty template prompts)" if prompts else ")"),
        ),
        ("claims", len(n.claims)),
        ("problems", len(n.problems)),
    ]
    lines += [f"  {key:<10}{clean(value)}" for key, value in rows if value not in (None, "")]
    if n.questions:
        lines += ["", "Questions"]
        lines += [
            f"  {n.path}:{q.line}  [{'x' if q.answered else ('-' if q.prompt else ' ')}] {_one_line(q.text)}"
            for q in n.questions
        ]
    if n.claims:
        lines += ["", "Claims"]
        for c in n.claims:
            exps = ", ".join(c.experiments) or "no experiment"
            lines.append(f"  {n.path}:{c.line}  {c.id}: {_one_line(c.statement)}  -> {clean(exps)}")
    if n.problems:
        lines += ["", "Problems"]
        lines += [f"  {clean(p.format())}" for p in n.problems]
    sys.stdout.write("\n".join(lines) + "\n")


def _show_ghost(name: str, rows: list, fmt: str) -> None:
    """``show`` of a work that has no note: who links to it, and how."""
    sources = sorted({r.src for r in rows})
    if fmt == "json":
        print_json({"name": name, "note": None, "ghost": True, "backlinks": len(sources), "linked_from": sources})
        return
    lines = [clean(name), f"  {'note':<10}no note yet (a work other notes link to)"]
    lines += [f"  {'links':<10}{len(sources)} notes link here"]
    lines += ["", "Linked from"]
    lines += [f"  {clean(r.src)}:{r.line}  {r.edge}  {clean(_link_label(r))}" for r in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def _one_line(text: str, width: int = 100) -> str:
    text = clean(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def _quoted(name: str) -> str:
    import shlex

    return shlex.quote(name)


def _link_label(row) -> str:
    from kb.resolve import describe

    return describe(row)


def links_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="File name, path, alias, citekey or title."),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List the links written in a note and where each resolves.

    Example: paperkb --vault notes links touvronLlamaOpenFoundation2023 --format tsv
    """
    vault = _vault(ctx)
    path, ghost = find_path_or_ghost(vault, note)
    if path is None:  # a ghost has no links of its own: say so, list nothing
        echo(ghost_line(note, ghost) + f" (paperkb backlinks {_quoted(note)})", err=True)
    rows = vault.outgoing(path) if path is not None else []
    if fmt in ("json", "jsonl"):
        emit([r.to_dict() for r in rows], [], fmt)
        return
    emit(
        [
            {"line": r.line, "edge": r.edge, "link": _link_label(r), "resolves to": r.resolved or "(unresolved)"}
            for r in rows
        ],
        ["line", "edge", "link", "resolves to"],
        fmt,
        no_header=no_header,
        wrap="link",
    )


def backlinks_cmd(
    ctx: typer.Context,
    note: str = typer.Argument(..., help="File name, path, alias, citekey or title."),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List the notes that link to a note, or to a work that has no note yet (a ghost).

    Example: paperkb --vault notes backlinks vaswaniAttentionAllYou2017
    """
    vault = _vault(ctx)
    path, rows = find_path_or_ghost(vault, note)
    if path is None:
        echo(ghost_line(note, rows), err=True)
    else:
        rows = vault.backlinks(path)
    if fmt in ("json", "jsonl"):
        emit([r.to_dict() for r in rows], [], fmt)
        return
    emit(
        [{"from": r.src, "line": r.line, "edge": r.edge, "link": _link_label(r)} for r in rows],
        ["from", "line", "edge", "link"],
        fmt,
        no_header=no_header,
        wrap="link",
    )


def path_cmd(
    ctx: typer.Context,
    a: str = typer.Argument(..., help="Start note."),
    b: str = typer.Argument(..., help="End note."),
    fmt: str = format_option(only=("table", "json")),
) -> None:
    """The shortest chain of links from note A to note B (undirected when no directed one).

    Example: paperkb --vault notes path touvronLlamaOpenFoundation2023 vaswaniAttentionAllYou2017
    """
    from kb import graph as G

    vault = _vault(ctx)
    pa, pb = find_path(vault, a), find_path(vault, b)
    g = vault.graph()
    nodes, directed = G.citation_path(g, pa, pb)
    if fmt == "json":
        print_json({"from": pa, "to": pb, "path": nodes, "directed": directed})
        return
    if not nodes:
        print(f"no path between {pa} and {pb}")
        raise typer.Exit(1)
    how = "following links" if directed else "no directed path; ignoring link direction"
    print(f"{len(nodes) - 1} step(s), {how}:")
    for i, node in enumerate(nodes):
        echo(f"  {i}. {g.nodes[node].get('label', node)}  ({node})")


def tags_cmd(
    ctx: typer.Context,
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List every tag with the number of notes carrying it.

    Example: paperkb --vault notes tags --format json
    """
    emit([{"tag": t, "notes": n} for t, n in _vault(ctx).tags()], ["notes", "tag"], fmt, no_header=no_header)


def questions_cmd(
    ctx: typer.Context,
    open_only: bool = typer.Option(
        False, "--open", help="Only questions without an answer (a template's empty prompts are not open)."
    ),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List the question callouts of every note, answered or not.

    An answer is an `Answer:` line (or `answer::` field) in the callout, or the text below
    it. A template's question left empty by an import is a prompt (done column: "prompt"),
    not an open question.

    Example: paperkb --vault notes questions --open
    """
    rows = [
        {
            "path": path,
            "line": q.line,
            "answered": q.answered,
            "prompt": q.prompt,
            "text": q.text,
            "answer": q.answer,
        }
        for path, q in _vault(ctx).questions(open_only=open_only)
    ]
    if not rows and fmt == "table":
        print("no open questions" if open_only else "no question callouts in the vault", file=sys.stderr)
        return
    if fmt in ("json", "jsonl"):
        emit(rows, [], fmt)
        return
    emit(
        [
            {
                "where": f"{r['path']}:{r['line']}",
                "done": "x" if r["answered"] else ("prompt" if r["prompt"] else ""),
                "question": r["text"],
            }
            for r in rows
        ],
        ["where", "done", "question"],
        fmt,
        no_header=no_header,
        wrap="question",
    )


GRAPH_FORMATS = ("summary", "graphml", "gexf", "json", "mermaid", "dot", "svg", "png")


def graph_cmd(
    ctx: typer.Context,
    fmt: str = format_option(default="summary", only=GRAPH_FORMATS),
    output: Optional[Path] = OUTPUT_OPT,
    around: Optional[str] = typer.Option(None, "--around", help="svg/png: only this note's neighbourhood."),
    depth: int = typer.Option(1, "--depth", min=0, help="svg/png with --around: how many links away."),
) -> None:
    """The citation graph: a summary, the whole graph in an exchange format, or a picture
    of the papers and the works they cite (svg or png; no Graphviz needed).

    Example: paperkb --vault notes graph --format svg --around "Attention Is All You Need" --depth 2 -o a.svg
    """
    from kb import graph as G

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
        text = _summary_text(G.summary(g))
        if output is None:
            echo(text.rstrip("\n"))
        else:
            output.write_text(text, encoding="utf-8")
            print(f"wrote {output}", file=sys.stderr)
        return
    if output is None and on_terminal():  # labels come from notes: no escapes on a terminal
        import io

        buf = io.StringIO()
        G.write(g, fmt, buf)
        sys.stdout.write(clean_text(buf.getvalue()))
    elif output is None:
        G.write(g, fmt, sys.stdout)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            G.write(g, fmt, fh)
        print(f"wrote {output}", file=sys.stderr)


def _summary_text(s: dict) -> str:
    """The graph summary as plain lines (no box drawing: it reads the same piped)."""
    import io

    edges = s["edges"]
    out = io.StringIO()
    out.write(
        f"Citation graph: {s['notes']} notes, {s['ghosts']} ghost works (cited, no note yet), "
        f"{s['experiments']} experiments; {s['components']} connected component(s)\n"
    )
    out.write("edges: " + ", ".join(f"{edges[k]} {k}" for k in ("cites", "mentions", "embeds", "claims")) + "\n")
    if s["most_cited"]:
        out.write("\nMost cited\n")
        emit(
            [{"citations": r["citations"], "work": r["label"], "node": r["node"]} for r in s["most_cited"]],
            ["citations", "work", "node"],
            out=out,
            terminal=on_terminal(),
            wrap="work",
            key="node",
        )
    orphans = s["orphans"]
    out.write(
        f"\norphans (no link to or from another note): {len(orphans)}"
        + (f" - {_short_list(orphans)}" if orphans else "")
        + "\n"
    )
    return out.getvalue()


def check_cmd(
    ctx: typer.Context,
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
    no_experiments: bool = typer.Option(False, "--no-experiments", help="Skip the claims/experiments cross-check."),
    all_: bool = typer.Option(False, "--all", "-a", help="Also report experiments that no claim names."),
) -> None:
    """Report every problem as `path:line: severity: message`; exit 1 when any is an error.

    Checks notes (YAML, links, callouts), dataview blocks, and claims against the
    declared experiments.

    Example: paperkb --vault notes check --all
    """
    from kb.check import check, has_errors

    facts = None if no_experiments else declared_experiments()
    problems = check(
        _vault(ctx), experiments=facts[0] if facts else None, load_errors=facts[1] if facts else (), unnamed=all_
    )
    if facts is None and not no_experiments:
        print(
            "note: experiments not cross-checked (install the repro extra: pip install 'paperkb[repro]')",
            file=sys.stderr,
        )
    rows = [{"path": p.path, "line": p.line, "severity": p.severity, "message": p.message} for p in problems]
    if fmt == "table":
        for p in problems:
            echo(p.format())
    else:
        emit(rows, ["path", "line", "severity", "message"], fmt, no_header=no_header, wrap="message")
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
