"""Expressions and functions, checked against the examples in Dataview's documentation
(reference/functions.md and reference/expressions.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from kb.query import Context, MemoryCorpus, QueryError, parse_expression
from kb.query.values import Duration, Link

NOW = dt.datetime(2024, 3, 15, 10, 30)


def ev(text: str):
    return Context(MemoryCorpus([]), None, NOW).eval(parse_expression(text), None)


DOC_EXAMPLES = [
    # constructors
    ('object("a", 4, "c", "yes")', {"a": 4, "c": "yes"}),
    ("list(1, 2, 3)", [1, 2, 3]),
    ('array("a", "b", "c")', ["a", "b", "c"]),
    ('date("2020-04-18")', dt.datetime(2020, 4, 18)),
    ('date("12/31/2022", "MM/dd/yyyy")', dt.datetime(2022, 12, 31)),
    ('date("210313", "yyMMdd")', dt.datetime(2021, 3, 13)),
    ("dur(8 minutes)", Duration(0, 480)),
    ('dur("8 minutes, 4 seconds")', Duration(0, 484)),
    ("dur(dur(8 minutes))", Duration(0, 480)),
    ('number("18 years")', 18),
    ("number(34)", 34),
    ('number("hmm")', None),
    ("string(18)", "18"),
    ("string(dur(8 hours))", "8 hours"),
    ("string(date(2021-08-15))", "August 15th, 2021"),
    ("typeof(8)", "number"),
    ('typeof("text")', "string"),
    ("typeof([1, 2, 3])", "array"),
    ("typeof({ a: 1, b: 2 })", "object"),
    ("typeof(date(2020-01-01))", "date"),
    ("typeof(dur(8 minutes))", "duration"),
    ("typeof([[Some note]])", "link"),
    ("typeof(null)", "null"),
    ("typeof((x) => x)", "function"),
    # numbers
    ("round(16.555555)", 17),
    ("round(16.555555, 2)", 16.56),
    ("trunc(12.937)", 12),
    ("trunc(-93.33333)", -93),
    ("floor(-93.33333)", -94),
    ("ceil(-0.837764)", 0),
    ("min(1, 2, 3)", 1),
    ("min([1, 2, 3])", 1),
    ('min("a", "ab", "abc")', "a"),
    ("max(1, 2, 3)", 3),
    ('max("a", "ab", "abc")', "abc"),
    ("sum([1, 2, 3])", 6),
    ("sum([])", None),
    ("sum(nonnull([null, 1, 8]))", 9),
    ("product([1,2,3])", 6),
    ('reduce([100, 20, 3], "-")', 77),
    ('reduce([200, 10, 2], "/")', 10),
    ("average([1, 2, 3])", 2),
    ("average([])", None),
    ("average(nonnull([null, 1, 2]))", 1.5),
    ("minby([1, 2, 3], (k) => 0 - k)", 3),
    ("maxby([1, 2, 3], (k) => 0 - k)", 1),
    # contains and friends
    ('contains("Hello", "Lo")', False),
    ('contains("Hello", "lo")', True),
    ('icontains("Hello", "Lo")', True),
    ('econtains("Hello", "Lo")', False),
    ('econtains(["this","is","example"], "ex")', False),
    ('econtains(["this","is","example"], "is")', True),
    ('contains(["words"], "word")', True),
    ("contains(list(1, 2, 3), 3)", True),
    ("contains(list(), 1)", False),
    ('econtains({key:"value", pairs:"here"}, "here")', False),
    ('econtains({key:"value", pairs:"here"}, "key")', True),
    ('containsword("word", "Word")', True),
    ('containsword("words", "Word")', False),
    ('containsword("Hello there!", "HeLLo")', True),
    ('containsword("Hello there chaps!", "chap")', False),
    ('containsword(["I have no words.", "words"], "Word")', [False, False]),
    ('containsword(["Word", "Words in word"], "WORD")', [True, True]),
    ('extract(object("test", 1, "x", 2), "x")', {"x": 2}),
    ("sort(list(3, 2, 1))", [1, 2, 3]),
    ('sort(list("a", "b", "aa"))', ["a", "aa", "b"]),
    ('reverse(list("a", "b", "c"))', ["c", "b", "a"]),
    ("length([])", 0),
    ('length(object("hello", 1, "goodbye", 2))', 2),
    ("nonnull([null, false])", [False]),
    ("all([1, 2, 3])", True),
    ("all(true, false)", False),
    ("all([1, 2, 3], (x) => x > 1)", False),
    ('all(["apple", "pie", 3], (x) => typeof(x) = "string")', False),
    ("any(list(1, 2, 3), (x) => x > 2)", True),
    ("any(false, false)", False),
    ("none([])", True),
    ("none([false, true])", False),
    ('none(["Apple", "Pi", "Banana"], (x) => startswith(x, "A"))', False),
    ("join(list(1, 2, 3))", "1, 2, 3"),
    ('join(list(1, 2, 3), " ")', "1 2 3"),
    ("join(6)", "6"),
    ("join(list())", ""),
    ("filter([1, 2, 3], (x) => x >= 2)", [2, 3]),
    ('filter(["yes", "no", "yas"], (x) => startswith(x, "y"))', ["yes", "yas"]),
    ("map([1, 2, 3], (x) => x + 2)", [3, 4, 5]),
    ('map(["yes", "no"], (x) => x + "?")', ["yes?", "no?"]),
    ("flat(list(1, 2, 3, list(4, 5), 6))", [1, 2, 3, 4, 5, 6]),
    ("flat(list(1, list(21, 22), list(list (311, 312, 313))), 4)", [1, 21, 22, 311, 312, 313]),
    ("slice([1, 2, 3, 4, 5], 3)", [4, 5]),
    ('slice(["ant", "bison", "camel", "duck", "elephant"], 0, 2)', ["ant", "bison"]),
    ("slice([1, 2, 3, 4, 5], -2)", [4, 5]),
    ("unique([1, 2, 2, 3, 1])", [1, 2, 3]),
    # strings
    ('regextest("\\w+", "hello")', True),
    ('regextest("yes|no", "maybe")', False),
    ('regextest("what", "what\'s up dog?")', True),
    ('regexmatch("what", "what\'s up dog?")', False),
    ('regexmatch("\\w+", "hello")', True),
    ('regexreplace("yes", "[ys]", "a")', "aea"),
    ('regexreplace("Suite 1000", "\\d+", "-")', "Suite -"),
    ('regexreplace("2023-07-18", "(\\d+)-(\\d+)-(\\d+)", "$3.$2.$1")', "18.07.2023"),
    ('replace("what", "wh", "h")', "hat"),
    ('replace("The big dog chased the big cat.", "big", "small")', "The small dog chased the small cat."),
    ('lower("Test")', "test"),
    ('lower(["YES", "NO"])', ["yes", "no"]),
    ('replace(["yes", "ree"], "e", "a")', ["yas", "raa"]),
    ('upper("test")', "TEST"),
    ('split("hello world", " ")', ["hello", "world"]),
    ('split("hello  world", "\\s")', ["hello", "", "world"]),
    ('split("hello there world", " ", 2)', ["hello", "there"]),
    ('split("hello there world", "(t?here)")', ["hello ", "there", " world"]),
    ('startswith("path/to/something", "path/")', True),
    ('endswith("yes", "ye")', False),
    ('padleft("hello", 7)', "  hello"),
    ('padleft("yes", 5, "!")', "!!yes"),
    ('padright("yes", 5, "!")', "yes!!"),
    ('substring("hello", 0, 2)', "he"),
    ('substring("hello", 2)', "llo"),
    ('truncate("Hello there!", 8)', "Hello..."),
    ('truncate("Hello there!", 8, "/")', "Hello t/"),
    ('truncate("Hello there!", 10, "!")', "Hello the!"),
    ('truncate("Hello there!", 20)', "Hello there!"),
    # utilities
    ('default(null, "incomplete")', "incomplete"),
    ("default(list(1, 2, null), 3)", [1, 2, 3]),
    ("ldefault(list(1, 2, null), 3)", [1, 2, None]),
    ('choice(true, "yes", "no")', "yes"),
    ('choice(false, "yes", "no")', "no"),
    ("striptime(date(2021-08-15T10:30))", dt.datetime(2021, 8, 15)),
    ('dateformat(date(2022-01-05T12:18:04), "yyyy-MM-dd")', "2022-01-05"),
    ('dateformat(date(2022-01-05T12:18:04), "HH:mm:ss")', "12:18:04"),
    ('durationformat(dur("3 days 7 hours 43 seconds"), "ddd\'d\' hh\'h\' ss\'s\'")', "003d 07h 43s"),
    ('durationformat(dur("2000 years"), "M months")', "24000 months"),
    ('durationformat(dur("14d"), "s \'seconds\'")', "1209600 seconds"),
    ("meta([[2021-11-01|Displayed link text]]).display", "Displayed link text"),
    ("meta([[2021-11-01]]).display", None),
    ("meta([[My Project#Next Actions]]).path", "My Project"),
    ("meta([[My Project#Next Actions]]).subpath", "Next Actions"),
    ("meta([[My Project#^9bcbe8]]).subpath", "9bcbe8"),
    ("meta([[My Project#^9bcbe8]]).type", "block"),
    ("meta([[My Project#Next Actions]]).type", "header"),
    ("meta([[My Project]]).type", "file"),
    ("meta(![[pic.png]]).embed", True),
    ('meta(link("Hello", "Goodbye")).display', "Goodbye"),
]


@pytest.mark.parametrize("text,expected", DOC_EXAMPLES, ids=[t for t, _ in DOC_EXAMPLES])
def test_documented_examples(text, expected):
    assert ev(text) == expected


EXPRESSIONS = [
    # arithmetic and precedence
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 % 3", 1),
    ("10 / 4", 2.5),
    ("1 / 0", None),
    ("-3 + 1", -2),
    ('"a" + 1', "a1"),
    ('"⭐" * 3', "⭐⭐⭐"),
    ("[1, 2] + [3]", [1, 2, 3]),
    # comparisons and logic
    ("1 < 2 and 2 < 3", True),
    ("1 > 2 or !false", True),
    ("1 = 1.0", True),
    ('"1" = 1', False),  # no coercion between types
    ('"abc" < "abd"', True),
    ("1 != 2", True),
    ("null = null", True),
    ("null < 0", True),  # null sorts before everything
    ('1 < "a"', True),  # different types compare by type name: number < string
    # null semantics
    ("null + 1", None),
    ("null * 2", None),
    ("!null", True),
    ("-null", None),
    ("[1, 2][5]", None),
    ("{a: 1}.b", None),
    ("null.field", None),
    # field access and indexing
    ('{a: {b: 2}}["a"].b', 2),
    ("[ [1, 2], [3]][0][1]", 2),  # "[[" always opens a link, as in Dataview
    ("[{x: 1}, {x: 2}].x", [1, 2]),
    ('"abc"[1]', "b"),
    # dates and durations
    ("date(2023-07-18) + dur(2 days)", dt.datetime(2023, 7, 20)),
    ("date(2023-01-31) + dur(1 month)", dt.datetime(2023, 2, 28)),
    ("date(2023-07-18) - date(2023-07-16) = dur(2 days)", True),
    ("dur(1 week) > dur(6 days)", True),
    ("dur(1h) + dur(30m) = dur(90 minutes)", True),
    ("date(2023-07-18).year", 2023),
    ("date(2023-07-18).month", 7),
    ("date(today)", dt.datetime(2024, 3, 15)),
    ("date(now)", NOW),
    ("date(tomorrow) - date(today) = dur(1 day)", True),
    ("date(sow)", dt.datetime(2024, 3, 11)),
    ("date(eom)", dt.datetime(2024, 3, 31, 23, 59, 59)),
    ('date("today")', dt.datetime(2024, 3, 15)),
    ("date(2023-07-18T10:30) > date(2023-07-18)", True),
    ("dur(2 days) * 2 = dur(4 days)", True),
    # lambdas
    ("((x, y) => x * y)(3, 4)", 12),
    ("map([1, 2], (x) => map([10], (y) => x + y))", [[11], [12]]),
    ("sort([3, 1, 2], (x) => 0 - x)", [3, 2, 1]),
    # strings and escapes
    ('"a\\"b"', 'a"b'),
    ("'single'", "single"),
    ('length("héllo")', 5),
]


@pytest.mark.parametrize("text,expected", EXPRESSIONS, ids=[t for t, _ in EXPRESSIONS])
def test_expressions(text, expected):
    assert ev(text) == expected


def test_link_literal_is_a_link():
    assert ev("[[Note#Part|Shown]]") == Link("Note", "Shown", "Part", False, "header")


@pytest.mark.parametrize("text,fragment", [
    ("nosuchfn(1)", "unknown function 'nosuchfn'"),
    ('lower(1)', "lower() expected string, got number"),
    ('round("x")', "round() expected number"),
    ('1 - "a"', "cannot apply '-' to number and string"),
    ('date(2023-07-18) * 2', "cannot apply '*' to date and number"),
    ("replace(\"a\")", "replace() takes 3 arguments, got 1"),
    ('regextest("(", "a")', "regextest(): bad regular expression"),
    ('map([1], 3)', "map() expected a function"),
    ('-"a"', "cannot negate a string"),
    ('[1][true]', "cannot index a array with a boolean"),
])
def test_evaluation_errors_name_the_problem(text, fragment):
    with pytest.raises(QueryError) as info:
        ev(text)
    assert fragment in str(info.value)
