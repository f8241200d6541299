"""One way for every command to print a listing: a table that fits the terminal, or
plain machine-readable lines when piped.

A listing is a list of dicts (one per row) and the columns to show. The user picks the
form with ``--format``:

* ``table`` (the default): on a terminal, aligned columns that fit its width (the long
  text column wraps; ids and paths never do), or one block per row when the terminal is
  narrow (< 70 columns); piped or redirected, tab-separated lines with no wrapping and no
  box drawing, so ``grep``/``cut``/``sort`` work;
* ``tsv``, ``csv``: always those, header first unless ``--no-header``;
* ``json``: one array; ``jsonl``: one object per line.

Text that came from notes is cleaned of terminal control characters (escape sequences,
bidi overrides) in every text form, so a note cannot retitle or clear the terminal.

Adopting it in a command (the whole recipe)::

    from cli.output import emit, format_option, no_header_option

    def tags_cmd(
        ctx: typer.Context,
        fmt: str = format_option(),                # table|tsv|csv|json|jsonl
        no_header: bool = no_header_option(),
    ) -> None:
        rows = [{"notes": n, "tag": t} for t, n in tags]
        emit(rows, ["notes", "tag"], fmt, no_header=no_header, wrap="tag")

A command with extra forms of its own lists them: ``format_option(extra=("markdown",))``
and handles them before calling :func:`emit`. An unknown ``--format`` is a usage error
(exit status 2) with one ``error:`` line.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

import typer

FORMATS: tuple[str, ...] = ("table", "tsv", "csv", "json", "jsonl")
NARROW = 70  # below this many columns a table becomes one block per row
MIN_WRAP = 16  # the wrapped column gets at least this many characters, else: blocks

# C0 and C1 controls (tab and newline handled apart) and the bidi overrides that can make
# text read differently from what it is ("Trojan source").
_CONTROL = str.maketrans(
    {c: "?" for c in [*range(0, 9), *range(11, 32), *range(127, 160), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
)
_ESCAPE_SEQ = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]{0,512}(\x07|\x1b\\)|[@-Z\\-_])")


def clean(text: Any) -> str:
    """``text`` as one printable line: escape sequences dropped, other control characters
    shown as ``?``, tabs and line breaks as spaces."""
    s = "" if text is None else str(text)
    if s.isprintable():
        # the common case, answered in C: every character cleaned below (controls, escape,
        # tab, line breaks, bidi overrides) is in a category isprintable() refuses
        return s
    s = _ESCAPE_SEQ.sub("", s)
    return " ".join(s.translate(_CONTROL).split()) if ("\n" in s or "\t" in s or "\r" in s) else s.translate(_CONTROL)


def clean_text(text: str) -> str:
    """Like :func:`clean` but keeps line breaks and tabs (for whole notes and reports)."""
    return _ESCAPE_SEQ.sub("", text).translate(_CONTROL)


def on_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width() -> int:
    """The terminal's width ($COLUMNS first, as shells and tests set it)."""
    return max(20, shutil.get_terminal_size((100, 24)).columns)


def _check_format(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"unknown --format {value!r} (use {', '.join(allowed)})")
        return value

    return check


def format_option(extra: Sequence[str] = (), default: str = "table", only: Sequence[str] | None = None) -> Any:
    """The ``--format/-f`` option: :data:`FORMATS` plus ``extra`` (or exactly ``only``)."""
    allowed = tuple(only) if only is not None else FORMATS + tuple(f for f in extra if f not in FORMATS)
    return typer.Option(
        default,
        "--format",
        "-f",
        help=f"Output: {', '.join(allowed)}.",
        callback=_check_format(allowed),
        show_default=True,
    )


def no_header_option() -> Any:
    """The ``--no-header`` option (tables, tsv and csv)."""
    return typer.Option(False, "--no-header", help="Leave out the header line (table, tsv, csv).")


def cell_text(value: Any) -> str:
    """A value as table text: lists joined with commas, None and False empty."""
    if value is None or value is False:
        return ""
    if value is True:
        return "yes"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def _cell(value: Any) -> str:
    """``clean(cell_text(value))``, with printable strings and lists of strings (most cells)
    answered at once."""
    t = type(value)
    if t is str:
        text = value
    elif t is list and all(type(v) is str for v in value):
        text = ", ".join(value)  # what cell_text gives a list of strings
    else:
        return clean(cell_text(value))
    return text if text.isprintable() else clean(text)


def emit(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: str = "table",
    *,
    no_header: bool = False,
    wrap: str | None = None,
    key: str | None = None,
    out: IO[str] | None = None,
    width: int | None = None,
    terminal: bool | None = None,
) -> None:
    """Write ``rows`` (dicts) as ``fmt``. Table and text forms show ``columns`` in that
    order; json/jsonl write each row whole. On a terminal, ``wrap`` names the column that
    may wrap (default: the last) and ``key`` the one that heads each row's block when the
    terminal is too narrow for columns (default: the first); ``terminal``/``width``
    override the detection (tests)."""
    out = out or sys.stdout
    rows = list(rows)
    if fmt == "json":
        out.write(to_json(rows, indent=2) + "\n")
        return
    if fmt == "jsonl":
        for row in rows:
            out.write(to_json(row) + "\n")
        return
    header = list(columns)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if fmt == "csv":
        import csv  # only for this form: most commands print tables or TSV

        from paperkb.csvsafe import spreadsheet_safe

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if not no_header:
            writer.writerow([spreadsheet_safe(h) for h in header])
        writer.writerows([spreadsheet_safe(c) for c in row] for row in cells)
        out.write(buf.getvalue())
        return
    if terminal is None:
        terminal = on_terminal(out)
    if fmt == "tsv" or not terminal:
        lines = ["\t".join(fields) + "\n" for fields in ([] if no_header else [header]) + cells]
        # a few large writes, not one per line (an unbuffered stdout makes each a system call)
        for start in range(0, len(lines), 1000):
            out.write("".join(lines[start : start + 1000]))
        return
    for line in table_lines(header, cells, width or terminal_width(), wrap=wrap, no_header=no_header, key=key):
        out.write(line + "\n")


def table_lines(
    header: list[str],
    cells: list[list[str]],
    width: int,
    *,
    wrap: str | None = None,
    no_header: bool = False,
    key: str | None = None,
) -> list[str]:
    """Aligned columns in at most ``width`` characters, wrapping only the ``wrap`` column
    (default: the last); when even that does not fit, one block per row."""
    if not header:
        return []
    wrap_at = header.index(wrap) if wrap in header else len(header) - 1
    natural = [max([len(header[i]) if not no_header else 0] + [len(r[i]) for r in cells]) for i in range(len(header))]
    gaps = 2 * (len(header) - 1)
    fixed = sum(w for i, w in enumerate(natural) if i != wrap_at) + gaps
    room = width - fixed
    if sum(natural) + gaps > width and (width < NARROW or room < MIN_WRAP):
        return block_lines(header, cells, width, wrap=wrap, key=key)
    widths = list(natural)
    widths[wrap_at] = max(1, min(natural[wrap_at], room))
    lines: list[str] = []
    if not no_header:
        lines.append(_join(header, widths))
        lines.append(_join(["-" * w for w in widths], widths))
    for row in cells:
        # a word longer than the column (an id, a path) runs past it rather than split
        pieces = textwrap.wrap(row[wrap_at], widths[wrap_at], break_on_hyphens=False, break_long_words=False) or [""]
        for n, piece in enumerate(pieces):
            line = [c if n == 0 else "" for c in row]
            line[wrap_at] = piece
            lines.append(_join(line, widths))
    return lines


def _join(values: list[str], widths: list[int]) -> str:
    return "  ".join(v.ljust(widths[i]) for i, v in enumerate(values)).rstrip()


def block_lines(
    header: list[str], cells: list[list[str]], width: int, *, wrap: str | None = None, key: str | None = None
) -> list[str]:
    """One block per row for narrow terminals: the ``key`` column (default: the first) as
    a heading, then ``name  value`` lines; only the ``wrap`` column (default: the last)
    wraps, ids and paths stay whole."""
    key_at = header.index(key) if key in header else 0
    wrap_at = header.index(wrap) if wrap in header else len(header) - 1
    others = [i for i in range(len(header)) if i != key_at]
    label_width = max((len(header[i]) for i in others), default=0)
    lines: list[str] = []
    for n, row in enumerate(cells):
        if n:
            lines.append("")
        lines.append(row[key_at])
        for i in others:
            if not row[i]:
                continue
            lead = f"  {header[i].ljust(label_width)}  "
            if i != wrap_at:
                lines.append(lead + row[i])
                continue
            pieces = textwrap.wrap(
                row[i], max(10, width - len(lead)), break_on_hyphens=False, break_long_words=False
            ) or [""]
            lines.append(lead + pieces[0])
            lines.extend(" " * len(lead) + p for p in pieces[1:])
    return lines


def echo(text: str = "", *, err: bool = False) -> None:
    """Print a line of free text that may contain note content, cleaned on a terminal."""
    stream = sys.stderr if err else sys.stdout
    stream.write((clean_text(text) if on_terminal(stream) else text) + "\n")


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def to_json(data: Any, indent: int | None = None) -> str:
    """JSON text (UTF-8 kept readable) with the control characters json leaves raw (C1,
    bidi overrides) written as ``\\uXXXX`` escapes, so printing it is safe too."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Progress:
    """A one-line progress counter on stderr for long commands (status, exports), drawn
    only when stderr is a terminal, so pipes and logs stay clean::

        with Progress("exporting", total=len(notes)) as progress:
            for note in notes:
                ...
                progress.advance(note.path)
    """

    def __init__(self, label: str, total: int | None = None, *, stream: IO[str] | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.shown = on_terminal(self.stream)

    def __enter__(self) -> Progress:
        return self

    def advance(self, detail: str = "", n: int = 1) -> None:
        self.done += n
        if self.shown:
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            line = clean(f"{self.label} {count} {detail}")[: terminal_width() - 1]
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        if self.shown and self.done:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(to_json(data, indent=2) + "\n")


__all__ = [
    "FORMATS",
    "emit",
    "format_option",
    "no_header_option",
    "clean",
    "clean_text",
    "cell_text",
    "table_lines",
    "block_lines",
    "echo",
    "print_json",
    "to_json",
    "Progress",
    "on_terminal",
    "terminal_width",
]
