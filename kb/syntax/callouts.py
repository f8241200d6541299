"""Obsidian callouts as a markdown-it core rule over blockquotes.

A blockquote whose first line is ``[!type]`` (optionally ``+``/``-`` for folding, then an
optional title) is a callout: ``> [!faq]- Why?``. Types are case-insensitive, custom
types (with hyphens) are allowed, aliases map to their base type, quotes nest
(``> > [!todo]`` is a callout at depth 2) and ``>[!note]`` needs no space.

The rule runs after block parsing and before inline parsing: it records the callout on the
``blockquote_open`` token (``token.meta["callout"]``) and removes the ``[!type]`` marker
from the first paragraph, so only the title is parsed as inline text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_core import StateCore

BASE_TYPES = (
    "note", "abstract", "info", "todo", "tip", "success", "question",
    "warning", "failure", "danger", "bug", "example", "quote",
)  # fmt: skip

CALLOUT_ALIASES: dict[str, str] = {
    "summary": "abstract",
    "tldr": "abstract",
    "hint": "tip",
    "important": "tip",
    "check": "success",
    "done": "success",
    "help": "question",
    "faq": "question",
    "caution": "warning",
    "attention": "warning",
    "fail": "failure",
    "missing": "failure",
    "error": "danger",
    "cite": "quote",
}

MARKER_RE = re.compile(r"\[!([^\]\n]+)\]([+-]?)[ \t]*([^\n]*)")


def canonical_type(raw_type: str) -> str:
    kind = raw_type.strip().lower()
    return CALLOUT_ALIASES.get(kind, kind)


def _callouts(state: StateCore) -> None:
    tokens = state.tokens
    depth = 0
    for i, token in enumerate(tokens):
        if token.type == "blockquote_open":
            depth += 1
            if i + 2 >= len(tokens) or tokens[i + 1].type != "paragraph_open":
                continue
            inline = tokens[i + 2]
            content = inline.content
            if not content.startswith("[!"):
                continue
            m = MARKER_RE.match(content)
            if not m or not m.group(1).strip():
                continue
            raw_type = m.group(1).strip()
            title = m.group(3).strip()
            token.meta = dict(token.meta or {})
            token.meta["callout"] = {
                "type": canonical_type(raw_type),
                "raw_type": raw_type,
                "title": title,
                "fold": m.group(2) or None,
                "depth": depth,
            }
            # keep the title (and every following line) so line offsets stay the same
            inline.content = title + content[m.end() :]
            tokens[i + 1].meta = {"callout_title": True}
        elif token.type == "blockquote_close":
            depth -= 1


def callout_plugin(md: MarkdownIt) -> None:
    md.core.ruler.after("block", "obsidian_callout", _callouts)
