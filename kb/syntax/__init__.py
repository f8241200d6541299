"""Obsidian's Markdown dialect as markdown-it-py plugins.

``obsidian_markdown()`` returns a CommonMark parser (plus GFM tables and strikethrough,
footnotes and ``$math$``) extended with wikilinks and embeds, tags, ``%%comments%%``,
``==marks==``, block ids, Dataview inline fields, callouts and task items. Everything is
a markdown-it rule, so code spans, fenced code and comments never yield links or tags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.syntax import block_ids, comments, inline_fields, marks, tags, wikilinks
from kb.syntax.callouts import BASE_TYPES, CALLOUT_ALIASES, callout_plugin, canonical_type
from kb.syntax.dispatch import dispatch_by_first_char
from kb.syntax.positions import position_plugin
from kb.syntax.tags import clean_tag
from kb.syntax.tasks import task_plugin
from kb.syntax.wikilinks import is_attachment, split_wikilink

if TYPE_CHECKING:  # markdown-it loads only when a parser is built (keeps `import kb.parse` cheap)
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline

__all__ = [
    "BASE_TYPES",
    "CALLOUT_ALIASES",
    "canonical_type",
    "clean_tag",
    "is_attachment",
    "obsidian_markdown",
    "split_wikilink",
]


# Each Obsidian inline rule fires on one character; one dispatching rule instead of eight
# separate ones saves markdown-it a Python call per rule at every punctuation character.
_DISPATCH = {
    "[": (wikilinks.wikilink_rule, inline_fields.bracket_field_rule),
    "!": (wikilinks.wikilink_rule,),
    "%": (comments.comment_rule,),
    "(": (inline_fields.paren_field_rule,),
    ":": (inline_fields.line_field_rule,),
    "#": (tags.tag_rule,),
    "^": (block_ids.block_id_rule,),
    "=": (marks.mark_rule,),
}


def obsidian_inline(state: StateInline, silent: bool) -> bool:
    rules = _DISPATCH.get(state.src[state.pos])
    if rules is None:
        return False
    for rule in rules:
        if rule(state, silent):
            return True
    return False


def obsidian_inline_plugin(md: MarkdownIt) -> None:
    """All of Obsidian's inline syntax as one markdown-it rule (before ``link``)."""
    md.inline.add_terminator_char("(")
    md.inline.add_terminator_char(")")  # see inline_fields.inline_field_plugin
    md.inline.ruler.before("link", "obsidian_inline", obsidian_inline)
    md.block.ruler.before(
        "fence",
        "obsidian_comment",
        comments.comment_block_rule,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )


def obsidian_markdown(*, dispatch: bool = True) -> MarkdownIt:
    """A new parser for Obsidian notes (build it once per process: it is not cheap).

    ``dispatch=False`` leaves markdown-it's rule chains as they are (same tokens, slower:
    see kb.syntax.dispatch); the benchmark and the tests compare the two."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.footnote import footnote_plugin

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.use(footnote_plugin)
    md.use(dollarmath_plugin, allow_space=True, allow_digits=False, double_inline=True)
    md.use(position_plugin)
    md.use(obsidian_inline_plugin)
    md.use(callout_plugin)
    md.use(task_plugin)
    if dispatch:
        dispatch_by_first_char(md, {"obsidian_inline": "".join(_DISPATCH)})
    return md
