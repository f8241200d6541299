"""Pieces of a note's inline text shared by the markdown-it walk (kb.parse) and the fast
scanner (kb.scan): the Link of a wikilink or Markdown link, and the patterns both apply."""

from __future__ import annotations

import re
from urllib.parse import unquote

from kb.model import Link
from kb.syntax import is_attachment

SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")

HIGHLIGHTS_RE = re.compile(r"highlights?\s*:?", re.I)
# The lookbehind starts a match only at the first blank of a run: without it a long run of
# blanks is retried from each of its positions (quadratic), with the same matches otherwise.
TRAILING_BLOCK_ID_RE = re.compile(r"(?<!\s)\s+\^[A-Za-z0-9-]+\s*$")
WS_RE = re.compile(r"[ \t]*\n[ \t\n]*")


def strip_emphasis(text: str) -> str:
    return text.replace("*", "").replace("_", " ").strip() if ("*" in text or "_" in text) else text.strip()


def wikilink(meta: dict, line: int) -> Link:
    """The Link of a wikilink or embed token (its ``meta`` as kb.syntax.wikilinks sets it)."""
    return Link(
        target=meta["target"],
        kind=meta["kind"],
        line=line,
        heading=meta["heading"],
        block=meta["block"],
        subpath=meta["subpath"],
        display=meta["display"],
    )


def markdown_link(href: str | None, line: int) -> Link | None:
    """A Markdown link to a note or attachment; None for URLs (http:, zotero:, file: ...)."""
    if href is None:
        return None
    href = href.strip()
    if not href or href.startswith("//") or SCHEME_RE.match(href):
        return None
    dest, _, subpath = unquote(href).partition("#")
    heading = block = None
    subpath = subpath.strip()
    if subpath.startswith("^"):
        block = subpath[1:] or None
    elif subpath and not is_attachment(dest):
        heading = "#".join(p.strip() for p in subpath.split("#") if p.strip()) or None
    if not dest.strip() and heading is None and block is None:
        return None
    return Link(target=dest.strip(), kind="markdown", line=line, heading=heading, block=block, subpath=subpath or None)
