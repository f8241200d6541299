"""``paperkb export json``: the whole vault as one JSON object.

The shape is a stable contract for scripts::

    {"notes": [{"path", "title", "aliases", "citekey", "authors", "year", "tags",
                "frontmatter",
                "links": [{"target", "resolved", "kind", "heading", "block", "display", "line"}],
                "callouts": [{"type", "title", "fold", "line"}],
                "questions": [{"text", "answered", "line"}],
                "claims": [{"id", "statement", "experiments", "line"}]}],
     "problems": [{"path", "line", "severity", "message"}]}

Paths are vault-relative with forward slashes; ``resolved`` is the target's path or
null; callout types are canonical; tags carry no ``#``; lines are 1-based, frontmatter
included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from kb.model import Note, json_safe


def note_json(note: Note) -> dict[str, Any]:
    return {
        "path": note.path,
        "title": note.title,
        "aliases": list(note.aliases),
        "citekey": note.citekey,
        "authors": list(note.authors),
        "year": note.year,
        "tags": [t.lstrip("#") for t in note.tags],
        "frontmatter": json_safe(note.frontmatter),
        "links": [
            {
                "target": link.target,
                "resolved": link.resolved,
                "kind": link.kind,
                "heading": link.heading,
                "block": link.block,
                "display": link.display,
                "line": link.line,
            }
            for link in note.links
        ],
        "callouts": [{"type": c.type, "title": c.title, "fold": c.fold, "line": c.line} for c in note.callouts],
        "questions": [{"text": q.text, "answered": q.answered, "line": q.line} for q in note.questions],
        "claims": [
            {"id": c.id, "statement": c.statement, "experiments": list(c.experiments), "line": c.line}
            for c in note.claims
        ],
    }


def export_json(vault) -> dict[str, Any]:
    """Every note of ``vault`` (a ``kb.vault.Vault``) and every problem, as plain data.
    (``write_json`` writes the same as JSON without holding it all in memory.)"""
    return {
        "notes": list(iter_note_json(vault)),
        "problems": [
            {"path": p.path, "line": p.line, "severity": p.severity, "message": p.message}
            for p in vault.problems()
        ],
    }


def _object(source: str, keys: tuple[str, ...]) -> str:
    return "json_object(" + ", ".join(f"'{k}', {source} -> '$.{k}'" for k in keys) + ")"


def _array_of_objects(field: str, keys: tuple[str, ...]) -> str:
    return f"(SELECT json_group_array({_object('value', keys)}) FROM json_each(x.{field}))"


# One note's export, built by SQLite's JSON functions from the stored note: the body text,
# lists and headings that make up most of it are never decoded in Python. The inner query
# parses each stored note once (SQLite caches the parse between the ``->``); the arrays to
# reshape are then parsed again on their own, small. ``->`` keeps each value's JSON text
# (true stays true, 1.50 stays 1.50); json() marks it as JSON again after the subquery.
_NOTE_SQL = (
    "SELECT json_object("
    "'path', json(x.path), 'title', json(x.title), 'aliases', json(x.aliases), 'citekey', json(x.citekey), "
    "'authors', json(x.authors), "
    "'year', json(x.year), 'tags', (SELECT json_group_array(ltrim(value, '#')) FROM json_each(x.tags)), "
    "'frontmatter', json(x.frontmatter), "
    f"'links', {_array_of_objects('links', ('target', 'resolved', 'kind', 'heading', 'block', 'display', 'line'))}, "
    f"'callouts', {_array_of_objects('callouts', ('type', 'title', 'fold', 'line'))}, "
    f"'questions', {_array_of_objects('questions', ('text', 'answered', 'line'))}, "
    f"'claims', {_array_of_objects('claims', ('id', 'statement', 'experiments', 'line'))}"
    ") FROM (SELECT "
    + ", ".join(f"data -> '$.{k}' AS {k}" for k in ("path", "title", "aliases", "citekey", "authors", "year", "tags",
                                                    "frontmatter", "links", "callouts", "questions", "claims"))
    + ", path AS sort_key FROM notes) AS x ORDER BY x.sort_key"
)


def _note_rows(vault) -> Iterator[str]:
    """Each note's export as JSON text, sorted by path, one at a time."""
    yield from (row for (row,) in vault._ensure().execute(_NOTE_SQL))


def iter_note_json(vault) -> Iterator[dict[str, Any]]:
    """``note_json`` of every note, sorted by path, one at a time."""
    return (json.loads(row) for row in _note_rows(vault))


def write_json(vault, out: TextIO) -> None:
    """Write ``export_json(vault)`` to ``out`` as JSON, one note a line, streamed (memory
    stays flat whatever the vault's size)::

        {"notes": [
        {"path": "a.md", ...},
        {"path": "b.md", ...}
        ],
        "problems": [
        {"path": "a.md", "line": 3, "severity": "warning", "message": "..."}
        ]}
    """
    rows = _note_rows(vault)
    first = next(rows, None)  # indexes the vault: an index error comes before any output
    out.write('{"notes": [')
    if first is not None:
        out.write("\n" + first)
        for row in rows:
            out.write(",\n")
            out.write(row)
    out.write('\n],\n"problems": [')
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    problems = vault.problems()
    for k, p in enumerate(problems):
        item = {"path": p.path, "line": p.line, "severity": p.severity, "message": p.message}
        out.write(("\n" if k == 0 else ",\n") + dumps(item))
    out.write("\n]}\n")


def write_json_file(vault, path) -> None:
    """``write_json`` into the file ``path``, atomically: a failed export leaves an existing
    file as it was."""
    import os
    import tempfile
    from pathlib import Path

    from kb.errors import PaperkbError

    path = Path(path)
    vault._ensure()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as exc:
        raise PaperkbError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with open(fd, "w", encoding="utf-8") as out:
            write_json(vault, out)
        os.replace(tmp, path)
    except OSError as exc:
        raise PaperkbError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
