"""Obsidian ``#tags`` as a markdown-it inline rule.

A tag starts with ``#`` at the start of a line or after whitespace (so ``x.com/#frag`` and
``a#b`` are no tags), holds letters of any script, digits, ``_``, ``-`` and ``/`` (nesting),
must hold at least one character that is not a digit (``#1984`` is no tag), and ends at
whitespace or punctuation. Headings never reach this rule: ``# Title`` is a block.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline

# Everything but whitespace and the punctuation that ends a tag (ASCII and common Unicode).
TAG_BODY_RE = re.compile(r"[^\s!\"#$%&'()*+,.:;<=>?@\[\\\]^`{|}~\u2000-\u206f\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]+")


def clean_tag(body: str) -> str | None:
    """The tag name for ``body`` (text after ``#``), or None if Obsidian would not take it."""
    body = body.strip("/")
    if not body or body.isdigit() or not any(not c.isdigit() and c != "/" for c in body):
        return None
    return body


def tag_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] != "#":
        return False
    if pos > 0 and not src[pos - 1].isspace():
        return False
    m = TAG_BODY_RE.match(src, pos + 1, state.posMax)
    if not m:
        return False
    tag = clean_tag(m.group())
    if tag is None:
        return False
    if not silent:
        token = state.push("tag", "", 0)
        token.content = "#" + tag
        token.meta = {"tag": tag, "pos": pos}
    state.pos = m.end()
    return True


def tag_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.before("link", "obsidian_tag", tag_rule)
