"""The query engine's fast paths give exactly what the general code gives.

Identifiers and field names made of ASCII are matched with stdlib ``re`` (the ``regex``
module is imported only for other text); these tests compare the two on tricky inputs and
on generated ones.
"""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.query import parser, values

TRICKY = [
    "a",
    "year",
    "date-of-note",
    "a-b",
    "a--b",
    "a-",
    "a- b",
    "a -b",
    "x_1",
    "_x",
    "a1-2b",
    "a-😀",
    "😀x",
    "x😀",
    "naïve",
    "na-ïve",
    "Ünïcode",
    "a\u0301b",
    "a.b",
    "a(b)",
    "a b",
    "9a",
    "a-\u200d",
    "a\u00a0b",
    "a·b",
    "ab-",
    "-a",
    "",
    " ",
    "a,b",
    "résumé-x",
    "a_b-c_d",
]


def _full_ident(text: str, pos: int = 0):
    return regex.compile(parser._IDENT_BODY).match(text, pos)


def _span(m):
    return None if m is None else (m.start(), m.end())


def test_identifier_fast_path_matches_the_full_pattern():
    for text in TRICKY:
        for pos in range(len(text) + 1):
            assert _span(parser._IDENT.match(text, pos)) == _span(_full_ident(text, pos)), (text, pos)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ_9- .(é😀\u200d\u0301")), max_size=12))
def test_identifier_fast_path_on_generated_text(text):
    for pos in range(len(text) + 1):
        assert _span(parser._IDENT.match(text, pos)) == _span(_full_ident(text, pos))


def test_lambda_head_needs_an_arrow():
    assert parser._LAMBDA_HEAD.match("(a, b) => a + b", 0).group(1) == "a, b"
    assert parser._LAMBDA_HEAD.match("(a + b)", 0) is None
    assert parser._LAMBDA_HEAD.match("(x)\n=> x", 0) is not None


def _canonical_slow(name: str) -> str:
    out = []
    for m in values._key_piece().finditer(name.strip()):
        emoji, word, space = m.groups()
        if emoji is not None:
            out.append(emoji)
        elif word is not None:
            out.append(word.lower())
        elif space is not None:
            out.append("-")
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ_9- \t.é😀\u00a0")), max_size=12))
def test_canonical_key_fast_path(name):
    assert values.canonical_key(name) == _canonical_slow(name)


def test_canonical_key_examples():
    assert values.canonical_key("Date of Note") == "date-of-note"
    assert values.canonical_key("  Time  Spent ") == "time-spent"
    assert values.canonical_key("Ünïcode Key") == "ünïcode-key"
