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
            {"path": p.path, "line": p.line, "severity": p.severity, "message": p.message} for p in vault.problems()
        ],
    }


_FIELDS = (
    "path",
    "title",
    "aliases",
    "citekey",
    "authors",
    "year",
    "tags",
    "frontmatter",
    "links",
    "callouts",
    "questions",
    "claims",
)
# SQLite picks the exported fields out of each stored note in one pass (C code): the body
# text, lists, headings and fields that make up most of a note are never decoded in Python.
_NOTE_SQL = f"SELECT json_extract(data, {', '.join(repr('$.' + k) for k in _FIELDS)}) FROM notes ORDER BY path"
_LINK_KEYS = ("target", "resolved", "kind", "heading", "block", "display", "line")


def iter_note_json(vault) -> Iterator[dict[str, Any]]:
    """``note_json`` of every note, sorted by path, one at a time."""
    loads = json.loads
    for (row,) in vault._ensure().execute(_NOTE_SQL):
        path, title, aliases, citekey, authors, year, tags, frontmatter, links, callouts, questions, claims = loads(row)
        yield {
            "path": path,
            "title": title,
            "aliases": aliases or [],
            "citekey": citekey,
            "authors": authors or [],
            "year": year,
            "tags": [t.lstrip("#") for t in tags or ()],
            "frontmatter": frontmatter or {},
            "links": [{k: link.get(k) for k in _LINK_KEYS} for link in links or ()],
            "callouts": [
                {"type": c.get("type"), "title": c.get("title"), "fold": c.get("fold"), "line": c.get("line")}
                for c in callouts or ()
            ],
            "questions": [
                {"text": q.get("text"), "answered": q.get("answered"), "line": q.get("line")} for q in questions or ()
            ],
            "claims": [
                {
                    "id": c.get("id"),
                    "statement": c.get("statement"),
                    "experiments": c.get("experiments"),
                    "line": c.get("line"),
                }
                for c in claims or ()
            ],
        }


def _note_rows(vault) -> Iterator[str]:
    """Each note's export as one line of JSON, sorted by path."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # the C encoder
    return (dumps(note) for note in iter_note_json(vault))


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
        # mkstemp makes the file private: give it the mode a plain write would have
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with open(fd, "w", encoding="utf-8") as out:
            write_json(vault, out)
        os.replace(tmp, path)
    except OSError as exc:
        raise PaperkbError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
