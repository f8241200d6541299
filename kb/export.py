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

from typing import Any

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
    """Every note of ``vault`` (a ``kb.vault.Vault``) and every problem, as plain data."""
    return {
        "notes": [note_json(n) for n in vault.notes()],
        "problems": [
            {"path": p.path, "line": p.line, "severity": p.severity, "message": p.message}
            for p in vault.problems()
        ],
    }
