"""Task list items ``- [ ] todo`` / ``- [x] done`` as a markdown-it core rule.

Obsidian accepts any single character between the brackets (``[/]`` in progress, ``[-]``
cancelled ...); only ``x``/``X`` count as completed here. The marker is removed from the
item's text before inline parsing and kept in ``list_item_open.meta["task"]``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_core import StateCore

TASK_RE = re.compile(r"\[([^\]\n])\](?:[ \t]+|$|(?=\n))")


def _tasks(state: StateCore) -> None:
    tokens = state.tokens
    for i, token in enumerate(tokens):
        if token.type != "list_item_open" or i + 2 >= len(tokens):
            continue
        if tokens[i + 1].type != "paragraph_open":
            continue
        inline = tokens[i + 2]
        if not inline.content.startswith("["):
            continue
        m = TASK_RE.match(inline.content)
        if not m:
            continue
        token.meta = dict(token.meta or {})
        token.meta["task"] = m.group(1)
        inline.content = inline.content[m.end() :]


def task_plugin(md: MarkdownIt) -> None:
    md.core.ruler.after("block", "obsidian_task", _tasks)
