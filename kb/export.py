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

import msgspec

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


def iter_note_json(vault) -> Iterator[dict[str, Any]]:
    """``note_json`` of every note, sorted by path, one at a time (decoded from the very
    lines ``write_json`` writes, so the two cannot disagree)."""
    loads = json.loads
    for row in _note_rows(vault):
        yield loads(row)


# The export's records, fields in the order of the output. Decoding a stored note (the
# index's ``notes.data``, ~10 KB) into these picks the exported fields out in C and skips
# the rest (body text, lists, tasks ...) unread; encoding them writes the compact line.
# Every field is optional (the dict-based path below treats a missing key as null).
class _Link(msgspec.Struct, gc=False):
    target: Any = None
    resolved: Any = None
    kind: Any = None
    heading: Any = None
    block: Any = None
    display: Any = None
    line: Any = None


class _Callout(msgspec.Struct, gc=False):
    type: Any = None
    title: Any = None
    fold: Any = None
    line: Any = None


class _Question(msgspec.Struct, gc=False):
    text: Any = None
    answered: Any = None
    line: Any = None


class _Claim(msgspec.Struct, gc=False):
    id: Any = None
    statement: Any = None
    experiments: Any = None
    line: Any = None


class _ExportNote(msgspec.Struct, gc=False):
    path: Any = None
    title: Any = None
    aliases: Any = None
    citekey: Any = None
    authors: Any = None
    year: Any = None
    tags: list[str] = []
    frontmatter: Any = None
    links: list[_Link] = []
    callouts: list[_Callout] = []
    questions: list[_Question] = []
    claims: list[_Claim] = []


def _python_float(literal: str) -> msgspec.Raw:
    """A float written as ``json.dumps`` writes it (``1e-07``, ``1e+16``), whoever stored it:
    msgspec and orjson would write ``1e-7`` and ``1e16``. Same value either way; this keeps
    the export's bytes what they always were."""
    return msgspec.Raw(repr(float(literal)).encode())


_decode_note = msgspec.json.Decoder(_ExportNote, float_hook=_python_float).decode
_encode = msgspec.json.Encoder().encode


def _note_line(data: bytes) -> bytes:
    """One stored note (``notes.data``) -> its export, as one line of compact JSON."""
    try:
        note = _decode_note(data)
    except msgspec.MsgspecError:  # not what the model writes (NaN, a null list ...)
        return _note_line_of_dict(json.loads(data))
    if not note.aliases:
        note.aliases = []
    if not note.authors:
        note.authors = []
    if not note.frontmatter:
        note.frontmatter = {}
    tags = note.tags
    for k, tag in enumerate(tags):
        if tag[:1] == "#":
            tags[k] = tag.lstrip("#")
    return _encode(note)


_LINK_KEYS = ("target", "resolved", "kind", "heading", "block", "display", "line")
_python_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _note_line_of_dict(d: dict[str, Any]) -> bytes:
    """``_note_line`` the slow way, for a stored note the typed decoder refuses."""

    def items(key: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{k: item.get(k) for k in keys} for item in d.get(key) or ()]

    out = {
        "path": d.get("path"),
        "title": d.get("title"),
        "aliases": d.get("aliases") or [],
        "citekey": d.get("citekey"),
        "authors": d.get("authors") or [],
        "year": d.get("year"),
        "tags": [t.lstrip("#") for t in d.get("tags") or ()],
        "frontmatter": d.get("frontmatter") or {},
        "links": items("links", _LINK_KEYS),
        "callouts": items("callouts", ("type", "title", "fold", "line")),
        "questions": items("questions", ("text", "answered", "line")),
        "claims": items("claims", ("id", "statement", "experiments", "line")),
    }
    return _python_dumps(out).encode("utf-8")


def _note_rows(vault) -> Iterator[str]:
    """Each note's export as one line of JSON, sorted by path."""
    for line in _note_lines(vault):
        yield line.decode("utf-8")


def _note_lines(vault) -> Iterator[bytes]:
    """Each note's export as one line of JSON (UTF-8), sorted by path."""
    rows = vault._ensure().execute("SELECT CAST(data AS BLOB) FROM notes ORDER BY path")
    note_line = _note_line
    for (data,) in rows:
        yield note_line(data)


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
    lines = _note_lines(vault)
    first = next(lines, None)  # indexes the vault: an index error comes before any output
    out.write('{"notes": [')
    write = _byte_writer(out)
    if first is not None:
        chunk = [b"\n" + first]
        for line in lines:
            chunk.append(line)
            if len(chunk) == _CHUNK:  # a write per note costs more than the note's encoding
                write(b",\n".join(chunk))
                chunk = [b""]
        write(b",\n".join(chunk))
    write(b'\n],\n"problems": [')
    problems = [
        _encode({"path": p.path, "line": p.line, "severity": p.severity, "message": p.message})
        for p in vault.problems()
    ]
    if problems:
        write(b"\n" + b",\n".join(problems))
    write(b"\n]}\n")
    if getattr(out, "buffer", None) is not None:
        out.buffer.flush()


_CHUNK = 256


def _byte_writer(out: TextIO):
    """A function writing UTF-8 bytes to ``out``: straight to its byte buffer when it has
    one and encodes to UTF-8 (a file, stdout), else decoded (``io.StringIO``)."""
    raw = getattr(out, "buffer", None)
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if raw is not None and encoding == "utf8":
        out.flush()  # what was written as text goes first
        return raw.write
    return lambda data: out.write(data.decode("utf-8"))


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
