"""Write each claim's status into its note, as an inline field Dataview can query.

``paperkb status --write-notes`` puts one managed line at the end of each claim callout::

    > [!claim] The extra memory of FlashAttention grows linearly with the sequence length.
    > experiment:: flash-attention/linear-memory
    > status:: supported at small scale · run 20261207-101500-ab12 · 2026-12-07

``status::`` inside a claim callout belongs to paperkb: it is rewritten when the status
changes and taken out by ``--remove``. The parser never reads it as part of the claim
(only ``experiment::``, ``params::``, ``expect::`` and ``needs::`` are), so it cannot change
a verdict.

Every other byte of the note stays as it was: the line is inserted (or replaced) as
bytes, with the callout's own quote prefix and the note's own line ending. A note is
written only when

* it is a regular file inside the vault (never through a symbolic link), in UTF-8;
* its bytes are those the index parsed (a note edited since the last index is left
  alone and reported: the user's edit wins);
* the note parsed again after the change has the same claims (id, statement,
  experiments, parameters, expectations) and the new field where it belongs;

and it is written whole or not at all (a temporary file in the same folder, then a
rename), keeping its permissions. Nothing changes in a note whose fields already read
right.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIELD_KEY = "status"
SEPARATOR = " · "
_FIELD_RE = re.compile(rb"^[ \t]*(?:>[ \t]?)+[ \t]*status[ \t]*::", re.I)
_CALLOUT_RE = re.compile(rb"^([ \t]*(?:>[ \t]?)+)[ \t]*\[!claim\]", re.I)
_BLOCK_ID_TAIL_RE = re.compile(rb"(?:^|[ \t])\^[A-Za-z0-9-]+[ \t]*\r?\n?$")


@dataclass
class WriteReport:
    written: list[str] = field(default_factory=list)  # vault paths of notes changed
    unchanged: list[str] = field(default_factory=list)  # notes whose fields already read right
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) left alone
    fields: int = 0  # managed fields written (or, with remove, taken out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "unchanged": self.unchanged,
            "skipped": [{"path": p, "why": w} for p, w in self.skipped],
            "fields": self.fields,
        }


def field_value(entry: dict[str, Any]) -> str:
    """``supported at small scale · run 20261207-… · 2026-12-07`` from a claim's status
    entry (``repro.status.claim_statuses``); the word alone when no run decided it."""
    parts = [" ".join(str(entry.get("status") or "unverified").split())]
    if entry.get("run_id"):
        parts.append(f"run {entry['run_id']}")
    ended = str(entry.get("ended") or "")[:10]
    if re.fullmatch(r"\d{4}-\d\d-\d\d", ended):
        parts.append(ended)
    return _one_line(SEPARATOR.join(parts))


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)[:500]


def write_status_fields(vault: Any, values: dict[tuple[str, str], str] | None, *, remove: bool = False) -> WriteReport:
    """Write ``values`` (``(note path, claim id) -> field value``) into the claim
    callouts of ``vault`` (a ``kb.vault.Vault``, its index current); with ``remove``, take
    every managed field out instead (``values`` is then ignored)."""
    from kb.index import content_hash

    report = WriteReport()
    conn = vault.connect()
    root = Path(vault.root)
    by_note: dict[str, dict[str, str]] = {}
    for (path, claim_id), value in (values or {}).items():
        by_note.setdefault(path, {})[claim_id] = value
    if remove:
        paths = [p for (p,) in conn.execute("SELECT path FROM notes ORDER BY path")]
    else:
        paths = sorted(by_note)
    for path in paths:
        row = conn.execute("SELECT hash FROM notes WHERE path=?", (path,)).fetchone()
        if row is None:
            report.skipped.append((path, "not in the index"))
            continue
        try:
            target = _note_file(root, path)
            data = _read(target)
        except _Skip as why:
            report.skipped.append((path, str(why)))
            continue
        if content_hash(data) != row[0]:
            report.skipped.append((path, "changed since the last index; left alone (run the command again)"))
            continue
        if remove and b"status" not in data.lower():
            continue  # no managed field can be in it
        note = vault.note_at(path)
        try:
            new, count = _rewrite(data, note, by_note.get(path, {}), remove)
            if new != data:
                _check_same_claims(data, new, path, note, by_note.get(path, {}), remove)
        except _Skip as why:
            report.skipped.append((path, str(why)))
            continue
        if new == data:
            if not remove:
                report.unchanged.append(path)
            continue
        try:
            _replace(target, data, new)
        except _Skip as why:
            report.skipped.append((path, str(why)))
            continue
        report.written.append(path)
        report.fields += count
    return report


class _Skip(Exception):
    """Why a note is left alone (one line)."""


def _note_file(root: Path, rel: str) -> Path:
    """The note's file, refused when it (or a folder on the way) is a symbolic link or
    it is not a regular file inside ``root``."""
    if "\x00" in rel or rel.startswith("/") or any(part in ("", ".", "..") for part in rel.split("/")):
        raise _Skip("not a path inside the vault")
    here = root
    for part in rel.split("/"):
        here = here / part
        try:
            st = os.lstat(here)
        except OSError as exc:
            raise _Skip(f"cannot read: {exc.strerror or exc}") from None
        if stat.S_ISLNK(st.st_mode):
            raise _Skip("a symbolic link; paperkb never writes through one")
    if not stat.S_ISREG(st.st_mode):
        raise _Skip("not a regular file")
    return here


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _Skip(f"cannot read: {exc.strerror or exc}") from None


def _rewrite(data: bytes, note: Any, values: dict[str, str], remove: bool) -> tuple[bytes, int]:
    """The note's bytes with each claim callout's managed line set (or removed)."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Skip("not UTF-8; left alone") from None
    bom = data[: len(data) - len(body)]
    lines = body.splitlines(keepends=True)
    if b"\r" in body.replace(b"\r\n", b""):
        raise _Skip("lines end in a lone CR; left alone")
    edits: list[tuple[int, int, list[bytes]]] = []  # (first, last exclusive, new lines), 0-based
    count = 0
    for claim in note.claims:
        if claim.source != "callout":
            continue
        callout = next((c for c in note.callouts if c.line == claim.line and c.type == "claim"), None)
        if callout is None:
            continue
        first, last = callout.line - 1, callout.end_line - 1
        if not (0 <= first <= last < len(lines)):
            raise _Skip(f"line {callout.line}: the claim callout is not where the index says")
        m = _CALLOUT_RE.match(lines[first])
        if m is None:
            raise _Skip(f"line {callout.line}: the claim callout is not where the index says")
        prefix = _field_prefix(m.group(1), lines[first + 1 : last + 1])
        managed = [k for k in range(first + 1, last + 1) if _FIELD_RE.match(lines[k])]
        if remove:
            for k in managed:
                if k == len(lines) - 1 and not lines[k].endswith(b"\n") and k - 1 not in managed:
                    # ours was the last line, with no ending: the line before gets its ending back off
                    edits.append((k - 1, k + 1, [lines[k - 1].rstrip(b"\r\n")]))
                else:
                    edits.append((k, k + 1, []))
            count += len(managed)
            continue
        value = values.get(claim.id)
        if value is None:
            continue
        eol = _eol(lines, first)
        new_line = prefix + f"{FIELD_KEY}:: {value}".encode() + eol
        if managed:
            k = managed[0]
            if lines[k] != new_line or len(managed) > 1:
                edits.append((k, k + 1, [new_line]))
                for extra in managed[1:]:
                    edits.append((extra, extra + 1, []))
                count += 1
            continue
        at = last + 1
        if last > first and _BLOCK_ID_TAIL_RE.search(lines[last]):
            at = last  # the block id ends the callout's last line: it must stay last
        if at == len(lines) and not lines[-1].endswith(b"\n"):
            # the callout is the file's last line, without a line ending: end that line
            # with the note's own ending, and give ours none
            edits.append((at - 1, at, [lines[-1] + eol, new_line[: -len(eol)]]))
        else:
            edits.append((at, at, [new_line]))
        count += 1
    if not edits:
        return data, 0
    out = list(lines)
    for start, end, repl in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        out[start:end] = repl
    return bom + b"".join(out), count


def _field_prefix(opening: bytes, body_lines: list[bytes]) -> bytes:
    """The quote prefix of the callout's body lines (``> `` or ``>``), else its opening's."""
    depth = opening.count(b">")
    for line in body_lines:
        m = re.match(rb"^[ \t]*(?:>[ \t]?)+", line)
        if m and m.group(0).count(b">") == depth:
            return m.group(0)  # the callout's own style: `> ` or `>`
    return opening if opening.endswith((b" ", b"\t")) else opening + b" "


def _eol(lines: list[bytes], k: int) -> bytes:
    for line in lines[k:] + lines[:k]:
        if line.endswith(b"\r\n"):
            return b"\r\n"
        if line.endswith(b"\n"):
            return b"\n"
    return b"\n"


def _claim_key(claim: Any) -> tuple:
    return (claim.id, claim.statement, tuple(claim.experiments), repr(claim.params), repr(claim.expect), claim.needs)


def _check_same_claims(old: bytes, new: bytes, path: str, note: Any, values: dict[str, str], remove: bool) -> None:
    """Parse the new bytes: the claims must read exactly as before, and every managed field
    stand inside its claim's callout (else the note is left alone)."""
    from kb.parse import parse_note

    before = parse_note(old, path)
    after = parse_note(new, path)
    if [_claim_key(c) for c in before.claims] != [_claim_key(c) for c in after.claims]:
        raise _Skip("the field would change how a claim reads; left alone")
    for claim in after.claims:
        want = None if remove else values.get(claim.id)
        if claim.source != "callout" or want is None:
            continue
        callout = next((c for c in after.callouts if c.line == claim.line and c.type == "claim"), None)
        found = [
            f.value.strip()
            for f in after.inline_fields
            if callout is not None
            and callout.line <= f.line <= callout.end_line
            and f.key.strip().casefold() == FIELD_KEY
        ]
        if found != [want]:
            raise _Skip(f"line {claim.line}: the field would not land inside the claim's callout; left alone")


def _replace(path: Path, old: bytes, new: bytes) -> None:
    """Write ``new`` over ``path`` whole or not at all, if the file still holds ``old``."""
    folder = path.parent
    try:
        st = os.lstat(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".paperkb-tmp", dir=folder)
    except OSError as exc:
        raise _Skip(f"cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        # the last look before the rename: an edit saved meanwhile wins
        if _read(path) != old or os.path.islink(path):
            raise _Skip("changed while paperkb was writing; left alone")
        os.replace(tmp, path)
    except OSError as exc:
        raise _Skip(f"cannot write: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
