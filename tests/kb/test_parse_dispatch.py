"""kb.syntax.dispatch is a speed-up only: the parser it rewires must produce exactly the
tokens of the parser it was built from, on real notes and on arbitrary Markdown."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.syntax import obsidian_markdown

ROOT = Path(__file__).resolve().parents[2]

# Pieces that start every block and inline rule (and some that start none), so that
# random concatenations reach each rule at line starts, mid-line and inside containers.
PIECES = [
    "a", "b c", "XY", "12", " ", "  ", "    ", "\t", "\n", "\n\n", "#", "# H\n", "## H2 #\n", ">", "> ", ">[!note]",
    "> [!faq]- Why?\n", "> > [!todo]\n", "-", "- ", "* ", "+ ", "1. ", "2) ", "- [ ] ", "- [x] ", "***\n", "---\n",
    "___", "=", "==x==", "~", "~~s~~", "`", "```\n", "~~~py\n", "$", "$$\n", "$x$", "%%", "%% c %%", "[[", "]]",
    "[[Note#H|shown]]", "![[img.png|100]]", "[", "]", "(", ")", "[x](My%20Note.md)", "[x]: /url", "[^1]", "[^1]: n",
    "^[inline]", "^id", " ^block-1\n", "#tag", "#1984", "key:: v", "[k:: v]", "(k:: v)", "<div>\n", "<b>", "&amp;",
    "<http://x.org>", "\\", "\\|", "*", "_", "**b**", "_e_", "| a | b |\n|---|---|\n| 1 | 2 |\n", "!", ":", "&",
]  # fmt: skip

PLAIN = obsidian_markdown(dispatch=False)
FAST = obsidian_markdown()


def tokens(md, text: str) -> list:
    def flat(toks) -> list:
        return [
            (t.type, t.tag, t.nesting, t.map, t.level, t.content, t.markup, t.info, repr(t.meta), t.attrs,
             t.block, t.hidden, flat(t.children) if t.children else None)
            for t in toks
        ]  # fmt: skip

    return flat(md.parse(text, {}))


def test_rules_are_dispatched() -> None:
    assert FAST.block.ruler.get_active_rules()[0] == "paperkb_block_dispatch"
    assert FAST.inline.ruler.get_active_rules() == ["paperkb_inline_dispatch"]
    # is_code_block asks whether "code" is enabled: it must stay so
    assert "code" in FAST.block.ruler.get_active_rules()


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("tests/data/*.md"), *ROOT.glob("notes/**/*.md")])
)
def test_same_tokens_on_real_notes(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8", errors="replace")
    assert tokens(FAST, text) == tokens(PLAIN, text)


def test_same_tokens_on_indented_code_and_lazy_lines() -> None:
    text = "    code\n\npara\n    lazy\n> quote\nlazy\n- item\n\n      code in item\n1. x\n   2. y\n"
    assert tokens(FAST, text) == tokens(PLAIN, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_same_tokens_on_arbitrary_markdown(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert tokens(FAST, text) == tokens(PLAIN, text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_same_tokens_on_arbitrary_text(text: str) -> None:
    assert tokens(FAST, text) == tokens(PLAIN, text)
