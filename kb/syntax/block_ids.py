"""Block identifiers ``^id`` as a markdown-it inline rule.

Obsidian takes ``^id`` (Latin letters, digits and ``-``) at the very end of a block: after
the text of a paragraph or list item (``text ^id``), or alone on a line right after a
list, quote, callout or table, with or without a blank line in between. This rule only
finds the id and notes whether it stood alone on its line; which block it names is
decided from the block structure by kb.parse.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline

BLOCK_ID_RE = re.compile(r"\^([A-Za-z0-9-]+)[ \t]*$")


def block_id_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] != "^" or (pos > 0 and src[pos - 1] not in " \t\n"):
        return False
    m = BLOCK_ID_RE.match(src, pos, state.posMax)
    if not m:
        return False
    if not silent:
        line_start = src.rfind("\n", 0, pos) + 1
        token = state.push("block_id", "", 0)
        token.content = m.group(1)
        token.meta = {"id": m.group(1), "pos": pos, "alone": not src[line_start:pos].strip()}
    state.pos = m.end()
    return True


def block_id_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.before("link", "obsidian_block_id", block_id_rule)
