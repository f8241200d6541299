"""Turn the bytes of a note into text, reporting what was wrong with them.

Obsidian reads notes as UTF-8. Real vaults still hold files that are not: a Windows editor
that wrote a BOM or CRLF endings (harmless, fixed silently), a file synced through a tool
that re-encoded it (invalid UTF-8), a PDF or image renamed ``.md`` (binary), and text that
was once UTF-8 decoded as cp1252 and saved again, so that ``…`` became ``â€¦`` (mojibake).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# (line, severity, message) triples; kb.parse turns them into Problems with the note's path.
Issue = tuple[int, str, str]

MAX_DECODE_ISSUES = 10  # report at most this many bad lines per note, then a summary
MAX_MOJIBAKE_ISSUES = 20


@dataclass
class DecodedText:
    text: str  # "\n" line endings, no BOM
    binary: bool = False
    issues: list[Issue] = field(default_factory=list)


def decode_note(data: bytes | str) -> DecodedText:
    """Decode a note's bytes to text with ``\\n`` endings; never raises."""
    issues: list[Issue] = []
    if isinstance(data, str):
        text = data
        if "\x00" in text:
            return DecodedText("", True, [(1, "error", "binary file (NUL characters), not parsed")])
    else:
        data = bytes(data)
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                text = data.decode("utf-16")
            except UnicodeDecodeError:
                return DecodedText("", True, [(1, "error", "binary file (bad UTF-16), not parsed")])
            issues.append((1, "warning", "note is UTF-16 encoded; Obsidian expects UTF-8"))
        elif b"\x00" in data:
            return DecodedText("", True, [(1, "error", "binary file (NUL bytes), not parsed")])
        else:
            text, bad = _decode_utf8(data)
            issues.extend(bad)
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    issues.extend(mojibake_issues(text))
    return DecodedText(text, False, issues)


_NON_ASCII_LINE = re.compile(rb"[^\n]*[\x80-\xff][^\n]*")


def _decode_utf8(data: bytes) -> tuple[str, list[Issue]]:
    """UTF-8 with U+FFFD for bad bytes, plus one error per line that held bad bytes.

    One pass: no UTF-8 sequence spans a newline, so each line that holds a non-ASCII byte
    is checked on its own (in C), and line numbers are counted as we go."""
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    bad_lines: list[tuple[int, int]] = []  # (line, first bad byte)
    line, line_pos, more = 1, 0, 0
    for m in _NON_ASCII_LINE.finditer(data):
        try:
            m.group().decode("utf-8")
            continue
        except UnicodeDecodeError as exc:
            first_bad = m.group()[exc.start]
        line += data.count(b"\n", line_pos, m.start())
        line_pos = m.start()
        if len(bad_lines) < MAX_DECODE_ISSUES:
            bad_lines.append((line, first_bad))
        else:
            more += 1
    issues: list[Issue] = [
        (ln, "error", f"invalid UTF-8 (byte 0x{byte:02x}); bad bytes shown as U+FFFD") for ln, byte in bad_lines
    ]
    if more:
        issues.append((bad_lines[-1][0], "error", f"invalid UTF-8 on {more} more line(s)"))
    return data.decode("utf-8", "replace"), issues


# --- mojibake ---------------------------------------------------------------------------
# UTF-8 bytes read as cp1252: a lead byte 0xC2-0xF4 shows as a Latin-1 letter, each
# continuation byte 0x80-0xBF as a cp1252 symbol ("€", "¦", "™" ...) or, for the five bytes
# cp1252 leaves undefined, as the C1 control character of the same number.
def _cp1252_char(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)


_CONT = "".join(_cp1252_char(b) for b in range(0x80, 0xC0))
_TO_BYTE = {_cp1252_char(b): b for b in range(0x80, 0x100)}
_C = "[" + re.escape(_CONT) + "]"
_MOJIBAKE_RE = re.compile(f"(?:[\u00c2-\u00df]{_C}|[\u00e0-\u00ef]{_C}{{2}}|[\u00f0-\u00f4]{_C}{{3}})+")
# Python's re is slow at trying an alternation at every position; a two-character class
# pair finds the candidates first (about 20x faster on ordinary text).
_CANDIDATE_RE = re.compile(f"[\u00c2-\u00f4]{_C}")


def repair_mojibake(run: str) -> str | None:
    """The text ``run`` was before it was mis-decoded as cp1252, or None if it was not."""
    try:
        raw = bytes(_TO_BYTE[ch] if ch in _TO_BYTE else ord(ch) for ch in run)
        fixed = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return fixed if fixed != run else None


def mojibake_issues(text: str) -> list[Issue]:
    """One warning per suspicious run, showing the repaired text."""
    if text.isascii():
        return []
    issues: list[Issue] = []
    line, line_pos, pos = 1, 0, 0
    while True:
        candidate = _CANDIDATE_RE.search(text, pos)
        if candidate is None:
            break
        m = _MOJIBAKE_RE.match(text, candidate.start())
        if m is None:
            pos = candidate.start() + 1
            continue
        pos = m.end()
        fixed = repair_mojibake(m.group())
        if fixed is None:
            continue
        line += text.count("\n", line_pos, m.start())
        line_pos = m.start()
        issues.append((line, "warning", f"mojibake (UTF-8 read as cp1252): {m.group()!r} should read {fixed!r}"))
        if len(issues) >= MAX_MOJIBAKE_ISSUES:
            break
    return issues
