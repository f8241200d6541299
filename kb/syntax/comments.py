"""Obsidian ``%%comments%%``: hidden text that yields no links, tags or fields.

Inline: ``text %%hidden%% text`` inside a paragraph (it may span the paragraph's lines;
an unclosed ``%%`` hides the rest of the paragraph). Block: a line that starts with
``%%`` and has no closing ``%%`` opens a comment that runs to the line holding the next
``%%`` (or, as in Obsidian, to the end of the note if there is none); it may interrupt a
paragraph, and works inside quotes and list items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_block import StateBlock
    from markdown_it.rules_inline import StateInline


def comment_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if not src.startswith("%%", pos):
        return False
    end = src.find("%%", pos + 2, state.posMax)
    new_pos = state.posMax if end < 0 else end + 2
    if not silent:
        token = state.push("comment", "", 0)
        token.content = src[pos + 2 : end if end >= 0 else state.posMax]
        token.meta = {"pos": pos}
    state.pos = new_pos
    return True


def comment_block_rule(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    begin = state.bMarks[start_line] + state.tShift[start_line]
    src = state.src
    if not src.startswith("%%", begin) or state.sCount[start_line] - state.blkIndent >= 4:
        return False
    line_end = state.eMarks[start_line]
    if src.find("%%", begin + 2, line_end) >= 0:
        return False  # "%%x%%" on one line: an inline comment, the paragraph handles it
    if silent:
        return True
    line = start_line + 1
    close_line = None
    while line < end_line:
        if state.sCount[line] < state.blkIndent and state.bMarks[line] + state.tShift[line] < state.eMarks[line]:
            break  # dedented out of the enclosing list item or quote
        if src.find("%%", state.bMarks[line], state.eMarks[line]) >= 0:
            close_line = line
            break
        line += 1
    last = close_line if close_line is not None else line - 1
    token = state.push("comment_block", "", 0)
    token.map = [start_line, last + 1]
    token.content = src[begin + 2 : state.eMarks[last]]
    state.line = last + 1
    return True


def comment_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.before("link", "obsidian_comment", comment_rule)
    md.block.ruler.before(
        "fence",
        "obsidian_comment",
        comment_block_rule,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
