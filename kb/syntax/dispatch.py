"""Dispatch markdown-it rules on the character they start at (a speed-up, same tokens).

markdown-it tries every enabled rule, in order, at each block (line) and at each inline
position that is not plain text, and each try is a Python call; most rules give up at
once because the first character is not theirs (a heading needs ``#``, a blockquote
``>``). With 14 block and 15 inline rules those calls are a good share of the parse
time of an ordinary note. ``dispatch_by_first_char`` replaces a ruler's rules with one rule per chain that
looks the character up and calls, in the original order, only the rules that can start
with it (and those that can start with anything). Rules not in the tables below are
treated as "can start with anything", so an unknown rule is never skipped.

It also silences markdown-it's per-rule ``LOGGER.debug`` calls (about 500 per 2 KB note,
each a Python call even when nothing is logged) when debug logging is off, as it is in
paperkb. Together: parse_note about 15-25% faster (bench/parse_speed.py).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# The characters a block rule can start at: the first non-blank character of its first
# line, ``state.src[state.bMarks[line] + state.tShift[line]]`` (each rule checks exactly
# that before anything else, after the indented-code test).
BLOCK_FIRST_CHARS: dict[str, str] = {
    "math_block": "$",
    "obsidian_comment": "%",
    "fence": "`~",
    "blockquote": ">",
    "hr": "*-_",
    "list": "*-+0123456789",
    "footnote_def": "[",
    "reference": "[",
    "html_block": "<",
    "heading": "#",
}

# The characters an inline rule can start at, ``state.src[state.pos]``. ``text`` takes
# any character that is not one of the parser's terminators (and only those).
INLINE_FIRST_CHARS: dict[str, str] = {
    "newline": "\n",
    "math_inline": "$",
    "escape": "\\",
    "backticks": "`",
    "strikethrough": "~",
    "emphasis": "_*",
    "link": "[",
    "image": "!",
    "footnote_inline": "^",
    "footnote_ref": "[",
    "autolink": "<",
    "html_inline": "<",
    "entity": "&",
}

# Rules that need two characters: the call is skipped unless both are there. (The
# footnote reference rule, tried at every "[", also creates the footnote table in the
# environment as a side effect, which makes the footnote plugin walk every token of
# the note afterwards; no tokens differ.)
INLINE_PREFIXES: dict[str, str] = {"footnote_ref": "[^", "footnote_inline": "^["}

# markdown-it modules whose rules log at debug level on every call
_LOGGING_MODULES = [
    f"markdown_it.rules_block.{name}"
    for name in (
        "blockquote",
        "code",
        "fence",
        "heading",
        "hr",
        "html_block",
        "lheading",
        "list",
        "paragraph",
        "reference",
    )
]


class _QuietLogger:
    """Stands in for a module's logger: ``debug`` does nothing, anything else is passed on."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def debug(self, *args, **kwargs) -> None:
        pass

    def __getattr__(self, name: str):
        return getattr(self._logger, name)


def silence_debug_logging() -> None:
    """Replace the loggers of markdown-it's block rules by ones whose ``debug`` is a no-op
    (only where debug logging is off: nothing that would be printed is lost)."""
    for name in _LOGGING_MODULES:
        try:
            module: Any = importlib.import_module(name)  # a third-party module: LOGGER is looked up by name
        except ImportError:
            continue
        logger = getattr(module, "LOGGER", None)
        if isinstance(logger, logging.Logger) and not logger.isEnabledFor(logging.DEBUG):
            module.LOGGER = _QuietLogger(logger)


def restore_debug_logging() -> None:
    """Undo :func:`silence_debug_logging` (for benchmarks that compare the two)."""
    for name in _LOGGING_MODULES:
        module: Any = sys.modules.get(name)
        logger = getattr(module, "LOGGER", None)
        if isinstance(logger, _QuietLogger):
            module.LOGGER = logger._logger


def _table(rules: list[tuple[str, Callable]], first_chars: dict[str, str]) -> tuple[dict[str, tuple], tuple]:
    """char -> rules to try there (in order), and the rules for any other character."""
    anywhere = tuple(fn for name, fn in rules if name not in first_chars)
    chars = {c for name, _ in rules for c in first_chars.get(name, "")}
    table = {c: tuple(fn for name, fn in rules if name not in first_chars or c in first_chars[name]) for c in chars}
    return table, anywhere


def _block_dispatcher(rules: list[tuple[str, Callable]]) -> Callable:
    table, anywhere = _table(rules, BLOCK_FIRST_CHARS)

    def block_dispatch(state, start_line: int, end_line: int, silent: bool) -> bool:
        pos = state.bMarks[start_line] + state.tShift[start_line]
        src = state.src
        for rule in table.get(src[pos], anywhere) if pos < len(src) else anywhere:
            if rule(state, start_line, end_line, silent):
                return True
        return False

    return block_dispatch


def _with_prefix(rule: Callable, prefix: str) -> Callable:
    def guarded(state, silent: bool) -> bool:
        return state.src.startswith(prefix, state.pos) and rule(state, silent)

    guarded.__name__ = f"{getattr(rule, '__name__', 'rule')}_after_{prefix!r}"
    return guarded


def _inline_dispatcher(
    rules: list[tuple[str, Callable]], first_chars: dict[str, str], terminators: Callable[[str], bool]
) -> Callable:
    rules = [(name, _with_prefix(fn, INLINE_PREFIXES[name]) if name in INLINE_PREFIXES else fn) for name, fn in rules]
    names = [name for name, _ in rules]
    if names[:1] != ["text"]:  # the shortcut below relies on "text" going first
        table, anywhere = _table(rules, {})
    else:
        table, anywhere = _table(rules, {**first_chars, "text": ""})
        text = rules[0][1]
        # a terminator no rule starts at: nothing matches there; any other character: text
        for c in "".join(chr(i) for i in range(128)):
            if terminators(c) and c not in table:
                table[c] = anywhere
        anywhere = (text, *anywhere)
        for c in table:
            if not terminators(c):
                table[c] = (text, *table[c])

    def inline_dispatch(state, silent: bool) -> bool:
        for rule in table.get(state.src[state.pos], anywhere):
            if rule(state, silent):
                return True
        return False

    return inline_dispatch


def _enabled(ruler) -> list:
    return [r for r in ruler.__rules__ if r.enabled]


def dispatch_by_first_char(md: MarkdownIt, inline_first_chars: dict[str, str] | None = None) -> None:
    """Rewire ``md``'s block and inline rulers (call it last, after every plugin);
    ``inline_first_chars`` adds the start characters of our own inline rules."""
    silence_debug_logging()

    block = md.block.ruler
    rules = _enabled(block)
    chains = sorted({alt for r in rules for alt in r.alt})
    main = _block_dispatcher([(r.name, r.fn) for r in rules])
    per_chain = {alt: _block_dispatcher([(r.name, r.fn) for r in rules if alt in r.alt]) for alt in chains}
    # "code" stays enabled: StateBlock.is_code_block asks whether it is (it is never
    # reached in the main chain, where the dispatcher, which holds it, always matches)
    block.disable([r.name for r in rules if r.name != "code"])
    first = rules[0].name
    block.before(first, "paperkb_block_dispatch", main)
    # a chain of terminators ("paragraph", "list" ...) gets its own dispatcher, reached
    # through getRules(chain) only, as the main one matches first (paragraph always does)
    for alt, fn in per_chain.items():
        block.before(first, f"paperkb_block_dispatch_{alt}", fn, {"alt": [alt]})

    terminator_re = getattr(md.inline, "terminator_re", None)
    if terminator_re is None:  # markdown-it-py < 4: the text rule's stop set is not exposed
        return
    inline = md.inline.ruler
    rules = _enabled(inline)
    first_chars = {**INLINE_FIRST_CHARS, **(inline_first_chars or {})}
    fn = _inline_dispatcher([(r.name, r.fn) for r in rules], first_chars, lambda c: terminator_re.match(c) is not None)
    inline.disable([r.name for r in rules])
    inline.push("paperkb_inline_dispatch", fn)
