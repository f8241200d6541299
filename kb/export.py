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
from typing import Any, Iterator, TextIO

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


# The fields export reads from each note's stored JSON, in the export's order.
_FIELDS = ("path", "title", "aliases", "citekey", "authors", "year", "tags", "frontmatter", "links", "callouts",
           "questions", "claims")
_LINK_KEYS = ("target", "resolved", "kind", "heading", "block", "display", "line")
_CALLOUT_KEYS = ("type", "title", "fold", "line")
_QUESTION_KEYS = ("text", "answered", "line")
_CLAIM_KEYS = ("id", "statement", "experiments", "line")


def iter_note_json(vault) -> Iterator[dict[str, Any]]:
    """``note_json`` of every note, sorted by path, one at a time: SQLite's JSON functions
    pick the exported fields out of each stored note (the body text, lists and headings
    that make up most of it are never decoded in Python)."""
    conn = vault._ensure()
    paths = ", ".join(f"'$.{name}'" for name in _FIELDS)
    for (row,) in conn.execute(f"SELECT json_extract(data, {paths}) FROM notes ORDER BY path"):
        values = json.loads(row)
        d = dict(zip(_FIELDS, values))
        d["aliases"] = d["aliases"] or []
        d["authors"] = d["authors"] or []
        d["tags"] = [t.lstrip("#") for t in d["tags"] or ()]
        d["frontmatter"] = d["frontmatter"] or {}
        d["links"] = [{k: link.get(k) for k in _LINK_KEYS} for link in d["links"] or ()]
        d["callouts"] = [{k: c.get(k) for k in _CALLOUT_KEYS} for c in d["callouts"] or ()]
        d["questions"] = [{k: q.get(k) for k in _QUESTION_KEYS} for q in d["questions"] or ()]
        d["claims"] = [{k: c.get(k) for k in _CLAIM_KEYS} for c in d["claims"] or ()]
        yield d


_encode_str = json.encoder.encode_basestring  # C speed-up; non-ASCII kept as in ensure_ascii=False


def _pretty(value: Any, pad: str) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)`` for JSON data, nested at ``pad``
    (several times faster: Python's json module has no C encoder for indented output)."""
    if value.__class__ is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = pad + "  "
        items = [f"{inner}{_encode_str(str(k))}: {_pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = pad + "  "
        return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in value) + "\n" + pad + "]"
    if isinstance(value, str):
        return _encode_str(value)
    return json.dumps(value)  # int and float, as json writes them


def write_json(vault, out: TextIO) -> None:
    """Write ``export_json(vault)`` to ``out`` as ``json.dumps(..., indent=2,
    ensure_ascii=False)`` would, one note at a time (memory stays flat)."""
    vault._ensure()  # index first: an index error must come before any output
    out.write('{\n  "notes": [')
    first = True
    for note in iter_note_json(vault):
        out.write("\n    " if first else ",\n    ")
        out.write(_pretty(note, "    "))
        first = False
    out.write("]" if first else "\n  ]")
    problems = [{"path": p.path, "line": p.line, "severity": p.severity, "message": p.message}
                for p in vault.problems()]
    out.write(',\n  "problems": ' + _pretty(problems, "  ") + "\n}\n")


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
