"""``==highlighted text==`` (Obsidian's mark) as a markdown-it inline rule.

The marked text is parsed as inline Markdown too, so links and tags inside count.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline


_CLOSER_RE = re.compile(r"(?<=\S)==")


def _closers(state: StateInline) -> list[int]:
    """Offsets of every "==" that can close a mark (not after a space), found once per
    paragraph, so that a thousand unclosed "==" cost one scan, not a thousand."""
    closers = getattr(state, "_paperkb_mark_closers", None)
    if closers is None:
        closers = [m.start() for m in _CLOSER_RE.finditer(state.src)]
        state._paperkb_mark_closers = closers  # type: ignore[attr-defined]  # our per-paragraph cache on markdown-it's state
    return closers


def mark_rule(state: StateInline, silent: bool) -> bool:
    src, pos, maximum = state.src, state.pos, state.posMax
    if not src.startswith("==", pos) or pos + 2 >= maximum:
        return False
    first = src[pos + 2]
    if first.isspace() or first == "=":
        return False
    closers = _closers(state)
    k = bisect_left(closers, pos + 3)
    if k == len(closers) or closers[k] >= maximum:
        return False
    end = closers[k]
    if not silent:
        state.push("mark_open", "mark", 1).markup = "=="
        old_max = state.posMax
        state.pos, state.posMax = pos + 2, end
        state.md.inline.tokenize(state)
        state.posMax = old_max
        state.push("mark_close", "mark", -1).markup = "=="
    state.pos = end + 2
    return True


def mark_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.before("emphasis", "obsidian_mark", mark_rule)
