"""Turning query results into text: Markdown (what ``paperkb render`` burns into notes),
JSON, CSV and a rich terminal table; and rendering a note with its query blocks evaluated.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import re
from typing import Any

from kb.query.errors import QueryError
from kb.query.evaluate import Result, ResultRow, execute
from kb.query.values import Duration, Link, Record, naive_local, to_json, to_string

NULL_TEXT = "-"


def display(v: Any) -> str:
    """How a value shows in a table cell or list item (Dataview's defaults)."""
    if v is None:
        return NULL_TEXT
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, _dt.datetime):
        v = naive_local(v)  # a date written in another zone shows in local time, as in Dataview
        text = v.strftime("%B %d, %Y").replace(" 0", " ")
        return text if v.time() == _dt.time(0, 0) else text + v.strftime(" %H:%M")
    if isinstance(v, Link):
        return _link_md(v)
    if isinstance(v, list):
        return ", ".join(display(x) for x in v)
    if isinstance(v, Record) and v.path:
        return _link_md(Link(v.path))
    if isinstance(v, (dict, Record)):
        d = v.to_dict() if isinstance(v, Record) else v
        return ", ".join(f"{k}: {display(x)}" for k, x in d.items())
    if isinstance(v, Duration):
        return str(v)
    return to_string(v)


def _link_md(link: Link) -> str:
    """``[[path-without-.md|name]]``: the full path keeps the link unambiguous."""
    target = link.path[:-3] if link.path.lower().endswith(".md") else link.path
    if link.subpath:
        target += ("#^" if link.type == "block" else "#") + link.subpath
    shown = link.display or (link.name if "/" in link.path or link.subpath else None)
    text = f"[[{target}|{shown}]]" if shown and shown != target else f"[[{target}]]"
    return ("!" if link.embed else "") + text


def _cell(v: Any) -> str:
    return display(v).replace("|", "\\|").replace("\n", " ")


def task_line(task: dict[str, Any] | None) -> str:
    if not task:
        return "- [ ] "
    return f"- [{task.get('status', ' ') or ' '}] {task.get('text', '')}"


# ---- Markdown --------------------------------------------------------------------------


def to_markdown(result: Result) -> str:
    if result.type == "table":
        headers = (
            [f"{result.id_header} ({len(result.rows)})" if result.id_header == "File" else result.id_header]
            if result.id_header
            else []
        ) + result.headers
        if not headers:
            headers = ["File"]
        lines = [
            "| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |",
            "| " + " | ".join("---" for _ in headers) + " |",
        ]
        for r in result.rows:
            cells = ([_cell(r.id)] if result.id_header else []) + [_cell(v) for v in r.values]
            lines.append("| " + " | ".join(cells or [_cell(r.id)]) + " |")
        return "\n".join(lines) + "\n"
    if result.type == "list":
        lines = []
        for r in result.rows:
            if r.group is None:
                lines.append("- " + _list_item(result, r))
                continue
            # a group: its key, then its members (or the LIST expression's values)
            lines.append("- " + display(r.id))
            items = (
                [m.id for m in r.group]
                if not result.headers
                else (r.values[0] if isinstance(r.values[0], list) else [r.values[0]])
            )
            lines += ["    - " + display(x) for x in items]
        return "\n".join(lines) + ("\n" if lines else "")
    # task
    lines = []
    if result.grouped:
        for r in result.rows:
            lines.append(f"{display(r.id)}\n")
            lines += [task_line(m.task) for m in r.group or []]
            lines.append("")
    else:
        last = None
        for r in result.rows:
            if r.path != last:
                if last is not None:
                    lines.append("")
                lines.append(f"{display(r.id)}\n")
                last = r.path
            lines.append(task_line(r.task))
    return "\n".join(lines).rstrip("\n") + "\n" if lines else ""


def _list_item(result: Result, r: ResultRow) -> str:
    if not result.headers:
        return display(r.id)
    value = display(r.values[0])
    if result.id_header is None:
        return value
    return f"{display(r.id)}: {value}"


# ---- JSON and CSV -----------------------------------------------------------------------


def to_records(result: Result) -> list[dict[str, Any]]:
    """One JSON object per row: ``path`` plus one key per column (LIST: ``value``);
    GROUP BY rows carry ``key`` and ``rows`` (the member notes' paths)."""
    out = []
    for r in result.rows:
        rec: dict[str, Any] = {}
        if result.grouped:
            rec["key"] = to_json(r.id)
            rec["rows"] = [m.path for m in r.group or []]
            if result.type == "task":
                rec["rows"] = [{"path": m.path, **_task_json(m.task)} for m in r.group or []]
        else:
            # a CSV row has no note: its place in the file ("data/books.csv#0") stands in
            rec["path"] = r.path if r.path is not None or not isinstance(r.id, str) else r.id
            if result.type == "task":
                rec.update(_task_json(r.task))
        if result.type == "list":
            rec["value"] = to_json(r.values[0]) if r.values else (to_json(r.id) if not result.grouped else rec["key"])
        elif result.type == "table":
            for h, v in zip(result.headers, r.values):
                rec[h] = to_json(v)
        out.append(rec)
    return out


def _task_json(task: dict[str, Any] | None) -> dict[str, Any]:
    if not task:
        return {}
    return {k: to_json(task.get(k)) for k in ("text", "status", "completed", "line")}


def to_json_text(result: Result) -> str:
    return json.dumps(to_records(result), indent=2, ensure_ascii=False) + "\n"


def to_csv(result: Result) -> str:
    records = to_records(result)
    buf = io.StringIO()
    if not records:
        return ""
    headers: list[str] = []
    for rec in records:
        for k in rec:
            if k not in headers:
                headers.append(k)
    import csv  # only for this form

    from paperkb.csvsafe import spreadsheet_safe

    w = csv.writer(buf, lineterminator="\n")
    w.writerow([spreadsheet_safe(h) for h in headers])
    for rec in records:  # a cell of note text that a spreadsheet would run as a formula gets a "'"
        w.writerow([spreadsheet_safe(_csv_cell(rec.get(h))) for h in headers])
    return buf.getvalue()


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "; ".join(_csv_cell(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# ---- terminal -----------------------------------------------------------------------------


def print_rich(result: Result, console: Any = None) -> None:
    """A rich table (TABLE, and LIST/TASK as a one- or two-column table)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(show_lines=False, header_style="bold")
    if result.type == "table":
        cols = ([result.id_header] if result.id_header else []) + result.headers
    elif result.type == "list":
        cols = ([result.id_header] if result.id_header else []) + (["value"] if result.headers else [])
    else:
        cols = [result.id_header or "File", "task"]
    for c in cols or ["File"]:
        table.add_column(c, overflow="fold")
    for r in result.rows:
        if result.type == "task":
            members = r.group if result.grouped else [r]
            for m in members or []:
                table.add_row(Text(display(r.id)), Text(task_line(m.task)[2:]))
            continue
        cells = ([display(r.id)] if result.id_header else []) + [display(v) for v in r.values]
        if r.group is not None and result.type == "list" and not result.headers:
            cells.append(display([m.id for m in r.group]))
            if len(table.columns) < len(cells):
                table.add_column("rows", overflow="fold")
        table.add_row(*[Text(c) for c in cells] or [Text(display(r.id))])
    console.print(table)
    console.print(f"{len(result.rows)} result{'s' if len(result.rows) != 1 else ''}", style="dim")


# ---- notes with query blocks --------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*dataview[ \t]*$", re.I)
_INLINE = re.compile(r"(?<!`)`=\s*([^`\n]+?)\s*`(?!`)")


def find_blocks(text: str) -> list[tuple[int, int, str]]:
    """``(first line, last line, query)`` (0-based, fences included) of each dataview block."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m:
            fence = m.group("fence")
            j = i + 1
            while j < len(lines) and not (
                lines[j].strip().startswith(fence[0] * len(fence)) and lines[j].strip().strip(fence[0]) == ""
            ):
                j += 1
            query = "\n".join(
                ln[len(m.group("indent")) :] if ln.startswith(m.group("indent")) else ln for ln in lines[i + 1 : j]
            )
            out.append((i, min(j, len(lines) - 1), query))
            i = j + 1
            continue
        i += 1
    return out


def render_blocks(text: str, corpus: Any, this: Any, *, now: _dt.datetime | None = None, limits: Any = None) -> str:
    """``text`` with each dataview block replaced by its result as Markdown and each inline
    query (`` `= expr` ``) by its value; a failing block becomes a one-line error callout.

    All the note's queries share one budget (``limits``, else the defaults): a note
    someone else wrote cannot make ``render`` run longer than one query's time limit."""
    from kb.query.evaluate import Context
    from kb.query.limits import DEFAULT_LIMITS, Budget
    from kb.query.parser import parse_expression

    budget = Budget(limits or DEFAULT_LIMITS)

    lines = text.split("\n")
    blocks = find_blocks(text)
    in_block: set[int] = set()
    for start, end, _ in blocks:
        in_block.update(range(start, end + 1))
    out: list[str] = []
    ctx = Context(corpus, this, now or _dt.datetime.now(), budget)
    starts = {b[0]: b for b in blocks}
    fenced = False
    i = 0
    while i < len(lines):
        if i in starts:
            start, end, query = starts[i]
            try:
                md = to_markdown(execute(query, corpus, this=this, now=ctx.now, budget=budget)).rstrip("\n")
                out.extend(md.split("\n") if md else ["*No results.*"])
            except QueryError as exc:
                out.append(f"> [!warning] Dataview query failed: {exc}")
            i = end + 1
            continue
        line = lines[i]
        if re.match(r"^\s*(```|~~~)", line):
            fenced = not fenced
        if not fenced and "`=" in line:

            def inline(m: re.Match[str]) -> str:
                try:
                    return display(ctx.evaluate(parse_expression(m.group(1)), this))
                except QueryError as exc:
                    return f"(query error: {exc})"

            line = _INLINE.sub(inline, line)
        out.append(line)
        i += 1
    return "\n".join(out)
