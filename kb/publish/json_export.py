"""``paperkb export json``: the whole vault as one JSON object.

The shape is a stable contract for scripts, declared once, by the structs below (a note is an
``ExportNote``, with ``ExportLink``, ``ExportCallout``, ``ExportQuestion`` and ``ExportClaim`` items,
a problem an ``ExportProblem``; fields in the order they are written)::

    {"notes": [ExportNote, ...], "problems": [ExportProblem, ...]}

Paths are vault-relative with forward slashes; ``resolved`` is the target's path or
null; callout types are canonical; tags carry no ``#``; lines are 1-based, frontmatter
included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

import msgspec

from kb.model import Note


def note_json(note: Note) -> dict[str, Any]:
    """The export of one note of the model (what ``export_json`` lists for it)."""
    return json.loads(_note_line_of_dict(note.to_dict()))


def export_json(vault) -> dict[str, Any]:
    """Every note of ``vault`` (a ``kb.vault.Vault``) and every problem, as plain data.
    (``write_json`` writes the same as JSON without holding it all in memory.)"""
    return {
        "notes": list(iter_note_json(vault)),
        "problems": [msgspec.structs.asdict(_problem(p)) for p in vault.problems()],
    }


def iter_note_json(vault) -> Iterator[dict[str, Any]]:
    """``note_json`` of every note, sorted by path, one at a time (decoded from the very
    lines ``write_json`` writes, so the two cannot disagree)."""
    loads = json.loads
    for row in _note_rows(vault):
        yield loads(row)


# The export's records, fields in the order of the output: the one declaration of the shape.
# Decoding a stored note (the index's ``notes.data``, ~10 KB) into these picks the exported
# fields out in C and skips the rest (body text, lists, tasks ...) unread; encoding them
# writes the compact line. Every field is optional (the dict path below treats a missing key
# as null).
class ExportLink(msgspec.Struct, gc=False):
    target: Any = None
    resolved: Any = None
    kind: Any = None
    heading: Any = None
    block: Any = None
    display: Any = None
    line: Any = None


class ExportCallout(msgspec.Struct, gc=False):
    type: Any = None
    title: Any = None
    fold: Any = None
    line: Any = None


class ExportQuestion(msgspec.Struct, gc=False):
    text: Any = None
    answered: Any = None
    line: Any = None


class ExportClaim(msgspec.Struct, gc=False):
    id: Any = None
    statement: Any = None
    experiments: Any = None
    line: Any = None


class ExportNote(msgspec.Struct, gc=False):
    path: Any = None
    title: Any = None
    aliases: Any = None
    citekey: Any = None
    authors: Any = None
    year: Any = None
    tags: list[str] = []
    frontmatter: Any = None
    links: list[ExportLink] = []
    callouts: list[ExportCallout] = []
    questions: list[ExportQuestion] = []
    claims: list[ExportClaim] = []


class ExportProblem(msgspec.Struct, gc=False):
    path: str
    line: int
    severity: str
    message: str


# Fields written as an empty value when the stored note has none (a null or missing value).
_EMPTY_AS: dict[str, type] = {"aliases": list, "authors": list, "frontmatter": dict}
# The list fields whose items are records: field -> the names of the item's fields.
_ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "links": ExportLink.__struct_fields__,
    "callouts": ExportCallout.__struct_fields__,
    "questions": ExportQuestion.__struct_fields__,
    "claims": ExportClaim.__struct_fields__,
}


def _problem(p: Any) -> ExportProblem:
    return ExportProblem(p.path, p.line, p.severity, p.message)


def _python_float(literal: str) -> msgspec.Raw:
    """A float written as ``json.dumps`` writes it (``1e-07``, ``1e+16``), whoever stored it:
    msgspec and orjson would write ``1e-7`` and ``1e16``. Same value either way; this keeps
    the export's bytes what they always were."""
    return msgspec.Raw(repr(float(literal)).encode())


_decode_note = msgspec.json.Decoder(ExportNote, float_hook=_python_float).decode
_encode = msgspec.json.Encoder().encode


def _note_line(data: bytes) -> bytes:
    """One stored note (``notes.data``) -> its export, as one line of compact JSON."""
    try:
        note = _decode_note(data)
    except msgspec.MsgspecError:  # not what the model writes (NaN, a null list ...)
        return _note_line_of_dict(json.loads(data))
    for name, empty in _EMPTY_AS.items():
        if not getattr(note, name):
            setattr(note, name, empty())
    tags = note.tags
    for k, tag in enumerate(tags):
        if tag[:1] == "#":
            tags[k] = tag.lstrip("#")
    return _encode(note)


_python_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _note_line_of_dict(d: dict[str, Any]) -> bytes:
    """``_note_line`` the slow way, for a stored note the typed decoder refuses: the same
    fields (``ExportNote``'s), the same empty values."""
    out: dict[str, Any] = {}
    for name in ExportNote.__struct_fields__:
        value = d.get(name)
        if name in _ITEM_FIELDS:
            value = [{k: item.get(k) for k in _ITEM_FIELDS[name]} for item in value or ()]
        elif name == "tags":
            value = [t.lstrip("#") for t in value or ()]
        elif name in _EMPTY_AS and not value:
            value = _EMPTY_AS[name]()
        out[name] = value
    return _python_dumps(out).encode("utf-8")


def _note_rows(vault) -> Iterator[str]:
    """Each note's export as one line of JSON, sorted by path."""
    for line in _note_lines(vault):
        yield line.decode("utf-8")


def _note_lines(vault) -> Iterator[bytes]:
    """Each note's export as one line of JSON (UTF-8), sorted by path."""
    rows = vault.ensure_index().execute("SELECT CAST(data AS BLOB) FROM notes ORDER BY path")
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
    problems = [_encode(_problem(p)) for p in vault.problems()]
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
    vault.ensure_index()
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
