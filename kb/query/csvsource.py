"""``FROM csv("data/books.csv")``: the rows of a CSV file in the vault as query rows.

Reading a file that a note names is safe here because the name is held to the vault: the
path must resolve (symbolic links followed) to a regular ``.csv`` file inside the vault
root, of at most :data:`MAX_CSV_BYTES`; it is read as data by the ``csv`` module (nothing
in it runs) and its rows count against the query's row limit. A relative name is looked
up from the vault root, then from the folder of the note holding the query (as Dataview).
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from pathlib import Path
from typing import Any

from kb.query.errors import QueryError
from kb.query.limits import Budget
from kb.query.values import Record, canonical_key, parse_date

MAX_CSV_BYTES = 5_000_000
MAX_CSV_FIELD = 100_000  # characters in one cell


class CsvRow(Record):
    """One CSV row: its cells by header (and by sanitised header), typed as Dataview types them."""

    __slots__ = ("fields", "id", "path")

    def __init__(self, fields: dict[str, Any], row_id: str) -> None:
        self.fields = fields
        self.id = row_id
        self.path = None

    def get(self, name: str) -> Any:
        return self.fields.get(name)

    def keys(self) -> list[str]:
        return list(self.fields)


def csv_value(text: str) -> Any:
    """A cell as Papa Parse's dynamic typing plus Dataview's date parsing would give it."""
    s = text.strip()
    if s == "":
        return None
    if re.fullmatch(r"-?\d+", s) and len(s) <= 16:
        return int(s)
    if re.fullmatch(r"-?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", s) and len(s) <= 40:
        return float(s)
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    if s[:1].isdigit():
        d = parse_date(s)
        if d is not None:
            return d
    return text


def _locate(name: str, root: Path, origin: str | None) -> Path:
    root = root.resolve()
    candidates = [root / name.lstrip("/")]
    if origin:
        candidates.append(root / Path(origin).parent / name)
    for candidate in candidates:
        try:
            real = candidate.resolve()
        except (OSError, RuntimeError):
            continue
        if not real.is_relative_to(root):
            raise QueryError(f'csv("{name}"): outside the vault')
        if real.exists():
            return real
    raise QueryError(f'csv("{name}"): no such file in the vault')


def read_csv_rows(name: str, root: Path | None, origin: str | None, budget: Budget) -> list[CsvRow]:
    """The rows of the vault's CSV file ``name`` (``origin``: the note holding the query)."""
    if root is None:
        raise QueryError(f'csv("{name}"): this corpus has no vault folder to read from')
    if not name.lower().endswith(".csv"):
        raise QueryError(f'csv("{name}"): only .csv files can be read')
    path = _locate(name, Path(root), origin)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise QueryError(f'csv("{name}"): cannot open: {exc.strerror}') from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise QueryError(f'csv("{name}"): not a regular file')
        if info.st_size > MAX_CSV_BYTES:
            raise QueryError(f'csv("{name}"): {info.st_size:,} bytes is over the {MAX_CSV_BYTES:,}-byte limit')
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(MAX_CSV_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    text = data.decode("utf-8-sig", "replace")
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]  # Papa's comments: "#"
    previous = csv.field_size_limit()
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        reader = csv.reader(io.StringIO("\n".join(lines)))
        header = next(reader, None)
        if not header:
            return []
        keys = [(h, canonical_key(h)) for h in header]
        rows: list[CsvRow] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # skipEmptyLines
            budget.rows(len(rows) + 1, f'csv("{name}")')
            fields: dict[str, Any] = {}
            for (key, canon), cell in zip(keys, cells):
                value = csv_value(cell)
                fields[key] = value
                fields.setdefault(canon, value)
            rows.append(CsvRow(fields, f"{name}#{len(rows)}"))
        return rows
    except csv.Error as exc:
        raise QueryError(f'csv("{name}"): line {reader.line_num}: {exc}') from None
    finally:
        csv.field_size_limit(previous)
