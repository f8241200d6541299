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


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ_9- \t.é😀\u00a0")), max_size=12))
def test_canonical_key_fast_path(name):
    assert values.canonical_key(name) == values._canonical_pieces(name.strip())


def test_canonical_key_examples():
    assert values.canonical_key("Date of Note") == "date-of-note"
    assert values.canonical_key("  Time  Spent ") == "time-spent"
    assert values.canonical_key("Ünïcode Key") == "ünïcode-key"


def test_row_functions_equal_eval():
    """row_function gives what Context.eval gives, value or error, on every row."""
    import datetime as dt

    from kb.query import MemoryCorpus, QueryError, parse_expression
    from kb.query.evaluate import Context, Row, row_function

    notes = [
        {"path": "a.md", "frontmatter": {"year": 2020, "x": "b", "n": None, "l": [1, 2], "d": "2021-01-02"}},
        {"path": "b.md", "frontmatter": {"year": "2019", "x": 3, "flag": True, "o": {"k": 1}}},
        {"path": "c/d.md", "frontmatter": {}},
    ]
    corpus = MemoryCorpus(notes)
    ctx = Context(corpus, corpus.page("a.md"), dt.datetime(2024, 1, 1))
    rows = [Row(p) for p in corpus.pages(["a.md", "b.md", "c/d.md"])] + [Row(None)]
    exprs = [
        "year",
        "year >= 2015",
        "year > 1 and x",
        "x or flag or n or year",
        "!flag",
        "-year",
        "file.name",
        'file.folder = "c"',
        "this.year = year",
        "year + 1",
        "x * 2",
        "o.k",
        "l[0]",
        "d > date(2020-01-01)",
        "a and b and c and d",
        "n = null",
        "row.year",
        'row["x"]',
        "length(l) > 1",
        "year - x",
        "file.link",
        "[[a]] = file.link",
        "-x",
    ]

    def outcome(fn, row):
        try:
            return ("value", repr(fn(row)))
        except (QueryError, TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError) as exc:
            return ("error", type(exc).__name__, str(exc))

    for text in exprs:
        e = parse_expression(text)
        compiled = row_function(ctx, e)
        for row in rows:
            assert outcome(compiled, row) == outcome(lambda r: ctx.eval(e, r), row), (text, row)
