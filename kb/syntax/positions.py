"""Remember where Markdown links and images start, so kb.parse can give their line.

markdown-it's own ``link``/``image`` rules record no position; this plugin wraps them and
stores the start offset (into the inline source) in ``link_open``/``image`` ``meta["pos"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline


def _with_position(rule, token_type: str):
    def wrapped(state: StateInline, silent: bool) -> bool:
        start, count = state.pos, len(state.tokens)
        ok = rule(state, silent)
        if ok and not silent:
            for token in state.tokens[count:]:
                if token.type == token_type:
                    token.meta = dict(token.meta or {})
                    token.meta["pos"] = start
                    break
        return ok

    wrapped.__name__ = f"{rule.__name__}_with_position"
    return wrapped


def position_plugin(md: MarkdownIt) -> None:
    ruler = md.inline.ruler
    for name, token_type in (("link", "link_open"), ("image", "image")):
        rule = next(r.fn for r in ruler.__rules__ if r.name == name)
        ruler.at(name, _with_position(rule, token_type))
