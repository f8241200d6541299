"""kb.scan is a speed-up only: on every note, ``parse_note(..., fast=True)`` (the scanner,
or markdown-it where the scanner declines) must give exactly the Note that the
markdown-it walk gives. Checked on the bundled vault, the seed note, every string the
test suite writes into its vaults, the benchmark's synthetic notes and generated notes."""

from __future__ import annotations

import ast
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.frontmatter import split_frontmatter
from kb.model import Note
from kb.parse import parse_note
from kb.scan import scan_body
from kb.text import decode_note

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import synth_vault  # noqa: E402


def both(data: str | bytes, path: str = "dir/Note.md") -> tuple[dict, dict]:
    return parse_note(data, path).to_dict(), parse_note(data, path, fast=True).to_dict()


def scanned(text: str) -> bool:
    """Whether the scanner (not markdown-it) handles ``text``."""
    raw, body_line, body_offset = split_frontmatter(text)
    source = "\n" * body_line + text[body_offset:] if raw is not None else text
    return scan_body(Note(path="x.md"), source) is not None


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("tests/data/*.md"), *ROOT.glob("notes/**/*.md")])
)
def test_same_note_on_real_notes(path: str) -> None:
    slow, fast = both((ROOT / path).read_bytes(), path)
    assert fast == slow


def _test_suite_strings() -> list[str]:
    """Every string literal of the test suite that could be a note (the vaults the tests
    write are literals in their modules)."""
    found: set[str] = set()
    for module in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(c in node.value for c in "\n[#>*_:^"):
                found.add(node.value)
    return sorted(found)


def test_same_note_on_every_note_text_of_the_test_suite() -> None:
    texts = _test_suite_strings()
    assert len(texts) > 300
    differ = [t for t, (slow, fast) in ((t, both(t)) for t in texts) if slow != fast]
    assert differ == []
    # the comparison exercises the scanner, not only its fallback
    assert sum(scanned(decode_note(t).text) for t in texts) > len(texts) // 2


def test_synthetic_benchmark_notes_take_the_scanner_and_match() -> None:
    rng = random.Random(7)
    for i in range(40):
        text = synth_vault.note_text(i, 1000, rng)
        assert scanned(text), i
        slow, fast = both(text.encode())
        assert fast == slow


ACCEPTED = [
    # lazy lines: a block id after a callout, a paragraph and a list item
    "> [!claim] Scaling helps\n> experiment:: a/b, [[exp-2]]\n^claim-1\n\ntext\n^p\n\n- item\n^i\n",
    # code spans hide links and tags, an unmatched backtick is text
    "`[[no]] #no` and ``a`b`` [[yes]] ` lone\n- `code` item #t\n",
    # callout with a blank quote line first, list items, highlights, tasks
    ">\n> [!note]- Highlights:\n> - **one** [[A|a]]\n> - [x] two #t/x\n\n- [ ] task ^t1\n- [/] doing\n",
    # emphasis that pairs, stray delimiters, in-word underscores, links and URLs
    "**bold** and *em* and _u_ a * b snake_case_word 2 * 3 [site](http://x.org) [n](Note%20B.md#H) [f](file:///p)\n",
    # fields, tags, headings, block ids alone after blocks, comments, embeds
    "# Title\n\nkey:: value [[L]]\n[k:: v #tag] (p:: q)\n\n## Sub\n- a\n- b\n\n^list-id\n\n%%hidden [[No]]%% ![[img.png|20]]\n",
    "---\ntags: [a]\n---\n***\n\n> quote\n> more\nlazy ^q\n\n+ x\n+ y\n* z\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_tricky_notes_are_scanned_and_match(text: str) -> None:
    assert scanned(text)
    slow, fast = both(text)
    assert fast == slow


@pytest.mark.parametrize(
    "text",
    [
        "`[[code]] #no`\n",
        "```\n[[fenced]] #no\n```\n",
        "    [[indented]] #no\n",
        "%%\n[[comment]] #no\n%%\n",
        "a %%[[c]] #no%% b\n",
    ],
)
def test_code_and_comments_never_yield_links_or_tags(text: str) -> None:
    note = parse_note(text, "n.md", fast=True)
    assert note.links == [] and note.tags == []


# Pieces that start every block and inline rule, so random concatenations reach the
# scanner's refusals as well as its accepted shapes.
PIECES = [
    "a", "b c", "XY", "12", " ", "  ", "    ", "\t", "\n", "\n\n", "#", "# H\n", "## H2 #\n", ">", "> ", ">[!note]",
    "> [!faq]- Why?\n", "> > [!todo]\n", "-", "- ", "* ", "+ ", "1. ", "2) ", "- [ ] ", "- [x] ", "***\n", "---\n",
    "___", "=", "==x==", "~", "~~s~~", "`", "```\n", "~~~py\n", "$", "$$\n", "$x$", "%%", "%% c %%", "[[", "]]",
    "[[Note#H|shown]]", "![[img.png|100]]", "[", "]", "(", ")", "[x](My%20Note.md)", "[x]: /url", "[^1]", "[^1]: n",
    "^[inline]", "^id", " ^block-1\n", "#tag", "#1984", "key:: v", "[k:: v]", "(k:: v)", "<div>\n", "<b>", "&amp;",
    "<http://x.org>", "\\", "\\|", "*", "_", "**b**", "_e_", "| a | b |\n|---|---|\n| 1 | 2 |\n", "!", ":", "&",
    "::", "a:b", "a#b", "a^b", "(a (k:: v))", "(k::", "![", "![x](i.png)", "a==b", "a%b", "[u](file:///x.pdf)",
    "[u](JavaScript:x)", "[u](data:image/png;x)",
]  # fmt: skip

# Lines of the shapes the scanner accepts, so that most generated notes reach it.
LINE_STARTS = ["", "", "", "# ", "## ", "> ", ">", "- ", "* ", "+ ", "- [ ] ", "- [x] ", "> - ", "> [!note] ",
               "> [!question]+ ", ">[!claim] ", "---", "***"]  # fmt: skip
WORDS = ["word", "two words", "**b**", "*e*", "_u_", "__s__", "*", "_", "a_b", "[[Note]]", "[[N#H|s]]", "![[i.png]]",
         "#tag", "#a/b", "#12", "key:: v", "[k:: v]", "(k:: v)", "^id", "[t](Note.md)", "[u](http://x)", ":", "(",
         ")", "[", "]", "!", "%%c%%", "x^y", "&", "=", "~", " ", "`c [[x]] #t`", "`", "``a`b``", "` s `"]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_same_note_on_random_markdown(text: str) -> None:
    slow, fast = both(text)
    assert fast == slow


line = st.tuples(st.sampled_from(LINE_STARTS), st.lists(st.sampled_from(WORDS), max_size=6)).map(
    lambda t: t[0] + " ".join(t[1])
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, max_size=14).map("\n".join))
def test_same_note_on_generated_notes(text: str) -> None:
    slow, fast = both(text)
    assert fast == slow


# --- frontmatter ---------------------------------------------------------------------------
FM_KEYS = ["a", "tags", "year", "yes", "2000", "date of note", "DOI", "x-y", "k.l", "a/b", "null", "a b", " a", "a ",
           "#c", "&x", "k"]  # fmt: skip
FM_VALUES = ["", "b", "2000", "+5", "-0", "0x1F", "1_000", "1.5", "yes", "No", "~", "null", "2023-01-02",
             "2023-01-02T10:00:00", '"#paper"', "'q'", '"a\\"b"', "'it''s'", "a: b", "a #c", "a#c", "[a, b]", "{a: 1}",
             "&x a", "*x", "!!str 1", "|", ">", "- a", "c:", "Ada Lovelace, Grace Hopper", "10.48550/arXiv.2000.00001",
             "é ✓", "a\u0001b", ".inf", "0o17", "012", "1e3", "true"]  # fmt: skip
fm_entry = st.one_of(
    st.tuples(st.sampled_from(FM_KEYS), st.sampled_from(FM_VALUES)).map(lambda kv: f"{kv[0]}: {kv[1]}".rstrip()),
    st.tuples(st.sampled_from(FM_KEYS), st.sampled_from(["", " ", "  ", "    "]),
              st.lists(st.sampled_from(FM_VALUES), max_size=4)).map(
        lambda t: "\n".join([f"{t[0]}:"] + [f"{t[1]}- {v}" for v in t[2]])),
    st.sampled_from(["", "  ", "# comment", "  c: d", "...", "a:b", "---"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(fm_entry, max_size=8).map("\n".join))
def test_fast_frontmatter_equals_pyyaml(raw: str) -> None:
    from kb.frontmatter import load_frontmatter
    from kb.scan import scan_frontmatter

    fast = scan_frontmatter(raw)
    if fast is not None:
        assert (fast, "yaml", []) == load_frontmatter(raw)


def test_fast_frontmatter_takes_the_usual_shapes() -> None:
    from kb.scan import scan_frontmatter

    raw = 'tags:\n  - "#paper"\n  - nlp\naliases:\n- key2020\nyear: 2020\nname: "A: title"\nauthors: A, B\nempty:\n'
    assert scan_frontmatter(raw) == {"tags": ["#paper", "nlp"], "aliases": ["key2020"], "year": 2020,
                                     "name": "A: title", "authors": "A, B", "empty": None}
    for raw in ("a: yes\n", "a: 1.5\n", "a: 2023-01-02\n", "a:\n  b: c\n", "a: [1]\n", "a: b # c\n", "a: 0x1\n"):
        assert scan_frontmatter(raw) is None, raw


@pytest.mark.parametrize(
    "text",
    [
        "[[a]] " * 10_000,  # many tokens in one paragraph
        "x [[a]]\n" * 10_000,  # many lines in one paragraph
        "[a " * 20_000 + "[b]",  # many "[" the scanner reads as text
        "![a " * 20_000,
        "**b** _c_ d * e " * 10_000,
        "a `` b ``` c ` " * 8_000,
        "> [!note] t\n> - [[a]] #t\n" * 5_000,
        "- [ ] [[a]] k:: v ^b\n" * 8_000,
    ],
)
def test_scanner_stays_linear_on_pathological_notes(text: str) -> None:
    import time

    assert scanned(text)
    start = time.process_time()
    parse_note(text, "big.md", fast=True)
    assert time.process_time() - start < 10  # a quadratic scan would take minutes


def test_scanning_leaves_no_reference_cycles() -> None:
    """Parse workers pause the cyclic garbage collector: a cycle per note would keep every
    note's scanner alive (it once doubled the cold index's peak memory)."""
    import gc

    text = synth_vault.note_text(3, 100, random.Random(3))
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(50):
            parse_note(text.encode(), "n.md", fast=True)
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert grown < 500, grown


def test_implicit_first_characters_cover_pyyaml_resolvers() -> None:
    """The frontmatter scanner skips PyYAML's resolver for plain scalars whose first
    character no implicit resolver is registered for: that set must cover PyYAML's."""
    import yaml

    from kb.scan import _FM_INDICATORS, _IMPLICIT_FIRST

    keys = set(yaml.resolver.Resolver.yaml_implicit_resolvers) - {""}
    assert keys <= _IMPLICIT_FIRST | _FM_INDICATORS
