"""Dataview inline fields as markdown-it inline rules.

``key:: value`` at the start of a line (the value runs to the end of the line),
``[key:: value]`` and ``(key:: value)`` anywhere in a line (the parenthesised form hides
its key when rendered). Values are parsed as Markdown as well, so a ``[[link]]`` in a
value is still a link.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline

LINE_KEY_RE = re.compile(r"[ \t]*([^\s:*\[\]()`#>|][^:\n\[\]()`|]{0,100}?)[ \t]*")
BRACKET_KEY_RE = re.compile(r"([^\s:\[\]()`][^:\n\[\]()`]{0,100}?)[ \t]*::[ \t]*")
# the lookbehind lets only the first space of a run start a match: without it a long run
# of spaces is tried from each of its positions (quadratic)
TRAILING_BLOCK_ID_RE = re.compile(r"(?<!\s)\s+\^[A-Za-z0-9-]+\s*$")


def line_field_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if not src.startswith("::", pos):
        return False
    # keys are short: look back a bounded distance (many "::" on one long line stay linear)
    window = max(0, pos - 128)
    line_start = src.rfind("\n", window, pos) + 1
    if line_start == 0 and window > 0:
        return False
    m = LINE_KEY_RE.fullmatch(src, line_start, pos)
    if not m:
        return False
    if not silent:
        line_end = src.find("\n", pos)
        if line_end < 0 or line_end > state.posMax:
            line_end = state.posMax
        value = TRAILING_BLOCK_ID_RE.sub("", src[pos + 2 : line_end]).strip()
        token = state.push("inline_field", "", 0)
        token.meta = {"key": m.group(1), "value": value, "style": "line", "pos": line_start}
        token.markup = "::"
    state.pos = pos + 2
    return True


_PAIR_RES = {"[": re.compile(r"[\[\]\\\n]"), "(": re.compile(r"[()\\\n]")}


def _closing(state: StateInline, start: int, opener: str, closer: str) -> int:
    """Index of the ``closer`` that balances the ``opener`` at ``start`` on the same line,
    or -1. All pairs of a paragraph are matched in one pass (then looked up), so many
    unbalanced openers stay linear."""
    attr = "_paperkb_pairs_" + ("square" if opener == "[" else "round")
    pairs = getattr(state, attr, None)
    if pairs is None:
        pairs = {}
        stack: list[int] = []
        escaped = -1
        for m in _PAIR_RES[opener].finditer(state.src):
            pos = m.start()
            if pos == escaped:
                continue
            ch = state.src[pos]
            if ch == "\\":
                escaped = pos + 1
            elif ch == "\n":
                stack.clear()
            elif ch == opener:
                stack.append(pos)
            elif stack:
                pairs[stack.pop()] = pos
        setattr(state, attr, pairs)
    return pairs.get(start, -1)


def _make_wrapped_field(opener: str, closer: str, style: str):
    def rule(state: StateInline, silent: bool) -> bool:
        src, pos = state.src, state.pos
        if src[pos] != opener:
            return False
        inner = pos  # the bracket that opens the field
        m = BRACKET_KEY_RE.match(src, pos + 1, state.posMax)
        if not m and opener == "[" and src.startswith("[[[", pos):
            # "[[[[key:: value]]": the field is in the innermost bracket, as Dataview finds
            # it; the brackets before it go with the field (the wikilink rule declined them)
            run = pos
            while run < state.posMax and src[run] == "[" and run - pos < 64:
                run += 1
            inner = run - 1
            m = BRACKET_KEY_RE.match(src, run, state.posMax)
        if not m:
            return False
        end = _closing(state, inner, opener, closer)
        if end < 0 or end >= state.posMax:
            return False
        if not silent:
            token = state.push("inline_field", "", 0)
            token.meta = {
                "key": m.group(1).strip(),
                "value": src[m.end() : end].strip(),
                "style": style,
                "pos": inner,
            }
            token.markup = opener
            old_max = state.posMax
            state.pos, state.posMax = m.end(), end
            state.md.inline.tokenize(state)
            state.posMax = old_max
        state.pos = end + 1
        return True

    rule.__name__ = f"_{style}_field"
    return rule


bracket_field_rule = _make_wrapped_field("[", "]", "bracket")
paren_field_rule = _make_wrapped_field("(", ")", "paren")


def inline_field_plugin(md: MarkdownIt) -> None:
    # "(" lets the paren rule fire; ")" must stop the text rule too, or text inside a
    # "(key:: value)" would run past the closing parenthesis during the nested parse
    md.inline.add_terminator_char("(")
    md.inline.add_terminator_char(")")
    md.inline.ruler.before("link", "dataview_bracket_field", bracket_field_rule)
    md.inline.ruler.before("link", "dataview_paren_field", paren_field_rule)
    md.inline.ruler.before("link", "dataview_line_field", line_field_rule)
