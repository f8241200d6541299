"""Port of Dataview's src/test/parse/parse.expression.test.ts and parse.query.test.ts.

Dataview tests its parser combinators one by one (``EXPRESSION.number``, ``.string``,
``.date`` ...); here each such case is written as a whole DQL expression or query and
checked through what it evaluates to, or through our syntax tree where the tree is the fact
under test. Pytest ids name the Dataview file and test.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from dataview_kit import NOW, same
from kb.query import QueryError, ast, parse_expression, parse_query
from kb.query.values import Duration, Link

PE = "parse.expression.test.ts"
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def utc_offset(hours: int, minutes: int = 0) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours, minutes=minutes if hours >= 0 else -minutes))


VALUES = [
    (f"{PE}::Parse Integer Literal#2", "123", 123),
    (f"{PE}::Parse Integer Literal#3", "-123", -123),
    (f"{PE}::Parse Float Literal#1", "123.45", 123.45),
    (f"{PE}::Parse Float Literal#2", "1000.0", 1000.0),
    (f"{PE}::Parse Float Literal#3", "-123.18", -123.18),
    (f"{PE}::String Literals Parse String Literal#2", '"hello"', "hello"),
    (f"{PE}::String Literals Parse String Literal#3", '"\\""', '"'),
    (f"{PE}::String Literals Parse String Literal#5", '"\\\\\\""', '\\"'),
    (f"{PE}::String Literals Parse String Literal#6", '"\\w+"', "\\w+"),
    (f"{PE}::String Literals Parse Empty String Literal", '""', ""),
    (f"{PE}::String Literals Parse String Escape", '"\\""', '"'),
    (f"{PE}::String Literals Parse String Escape Escape", '"\\\\"', "\\"),
    (f"{PE}::String Literals Parse emoji#1", '"📷"', "📷"),
    (f"{PE}::String Literals Parse emoji#2", '"⚙️"', "⚙️"),
    (f"{PE}::String Literals Parse string which includes emoji", '"⚗️ KNOWLEDGE"', "⚗️ KNOWLEDGE"),
    (f"{PE}::Parse boolean literal#1", "true", True),
    (f"{PE}::Parse boolean literal#2", "false", False),
    (f"{PE}::Parse Year-Month date", "[date(2020-04).year, date(2020-04).month]", [2020, 4]),
    (f"{PE}::Parse Year-Month-Day date", "date(1984-08-15)", dt.datetime(1984, 8, 15)),
    (f"{PE}::Parse Year-Month-DayTHour:Minute:Second", "date(1984-08-15T12:42:59)",
     dt.datetime(1984, 8, 15, 12, 42, 59)),
    (f"{PE}::Parse Year-Month-DayTHour:Minute:Second.Millisecond", "date(1984-08-15T12:42:59.123)",
     dt.datetime(1984, 8, 15, 12, 42, 59, 123000)),
    (f"{PE}::Parse Year-Month-DayTHour:Minute:Second.Millisecond#2",
     '[date("1984-08-15T19:42:59.123Z").second, date("1984-08-15T19:42:59.123Z").millisecond]', [59, 123]),
    (f"{PE}::...Timezone Offset#1", "date(1984-08-15T12:40:50-07:00)",
     dt.datetime(1984, 8, 15, 12, 40, 50, tzinfo=utc_offset(-7))),
    (f"{PE}::...Timezone Offset#1 fields",
     "[date(1984-08-15T12:40:50-07:00).hour, date(1984-08-15T12:40:50-07:00).zoneName]", [12, "UTC-7"]),
    (f"{PE}::...Timezone Offset#2", "date(1984-08-15T12:40:50+9).zoneName", "UTC+9"),
    (f"{PE}::...Timezone Offset#3", "date(1985-12-06T19:40:10+06:30).zoneName", "UTC+6:30"),
    (f"{PE}::...Timezone Named timezone#1", "date(2021-08-15T12:40:50[Europe/Paris])",
     dt.datetime(2021, 8, 15, 12, 40, 50, tzinfo=PARIS)),
    (f"{PE}::...Timezone Named timezone#1 fields",
     "[date(2021-08-15T12:40:50[Europe/Paris]).hour, date(2021-08-15T12:40:50[Europe/Paris]).zoneName, "
     "date(2021-08-15T12:40:50[Europe/Paris]).offset]", [12, "Europe/Paris", 120]),
    (f"{PE}::...Timezone Named timezone#2 fields",
     "[date(2021-11-15T12:40:50[Europe/Paris]).hour, date(2021-11-15T12:40:50[Europe/Paris]).offset]", [12, 60]),
    (f"{PE}::...Timezone Z#1", "date(1985-12-06T19:40:10Z)", dt.datetime(1985, 12, 6, 19, 40, 10, tzinfo=dt.timezone.utc)),
    (f"{PE}::...Timezone Z#1 fields", "[date(1985-12-06T19:40:10Z).hour, date(1985-12-06T19:40:10Z).zoneName]",
     [19, "UTC"]),
    (f"{PE}::...Timezone Z#2", "date(1985-12-06T19:40:10.123Z).zoneName", "UTC"),
    (f"{PE}::Parse Today", "date(today)", NOW.replace(hour=0, minute=0)),
    (f"{PE}::Durations 6 days", "[dur(6 days), dur(6day)]", [Duration(0, 6 * 86400.0)] * 2),
    (f"{PE}::Durations 4 minutes", "[dur(4min), dur(4 minutes), dur(4 minute)]", [Duration(0, 240.0)] * 3),
    (f"{PE}::Durations 4 hours 15 minutes", "[dur(4 hr 15 min), dur(4h15m), dur(4 hours, 15 minutes)]",
     [Duration(0, 4 * 3600.0 + 900)] * 3),
    (f"{PE}::Durations 4 years 6 weeks 9 minutes 3 seconds",
     "[dur(4 years 6 weeks 9 minutes 3 seconds), dur(4yr6w9m3s), dur(4 yrs, 6 wks, 9 mins, 3 s)]",
     [Duration(48, 42 * 86400.0 + 543)] * 3),
    (f"{PE}::Parse Link simple", "[[test/Main]]", Link("test/Main")),
    (f"{PE}::Parse Link extension", "[[test/Main.md]]", Link("test/Main.md")),
    (f"{PE}::Parse Link number", "[[simple0]]", Link("simple0")),
    (f"{PE}::Parse Link date", "[[2020-08-15]]", Link("2020-08-15")),
    (f"{PE}::Parse Link glyphs", "[[%Man & Machine + Mind%]]", Link("%Man & Machine + Mind%")),
    (f"{PE}::Parse Link escaped pipe", "[[Hello \\| There]]", Link("Hello | There")),
    (f"{PE}::Parse Link escaped pipe with display", "[[\\||Yes]]", Link("|", "Yes")),
    (f"{PE}::Parse link with display#1", "[[test/Main|Yes]]", Link("test/Main", "Yes")),
    (f"{PE}::Parse link with display#2", "[[%Man + Machine%|0h no]]", Link("%Man + Machine%", "0h no")),
    (f"{PE}::Parse link with header/block#1", "[[test/Main#Yes]]", Link("test/Main", None, "Yes", False, "header")),
    (f"{PE}::Parse link with header/block#2", "[[2020#^14df]]", Link("2020", None, "14df", False, "block")),
    (f"{PE}::Parse link with header and display#1", "[[test/Main#what|Yes]]",
     Link("test/Main", "Yes", "what", False, "header")),
    (f"{PE}::Parse link with header and display#2", "[[%Man + Machine%#^no|0h no]]",
     Link("%Man + Machine%", "0h no", "no", False, "block")),
    (f"{PE}::Parse embedded link", "![[hello]]", Link("hello", embed=True)),
    (f"{PE}::Parse Null#1", "null", None),
    (f"{PE}::Parse Null#2", '"null"', "null"),
    (f"{PE}::Parse Index Notation#2", '"hello"[0]', "h"),
    (f"{PE}::Parse function with mixed dot, index, and function call", "list().parts[0]", None),
    (f"{PE}::Parse function with null duration", "date(today) + dur(null)", None),
    (f"{PE}::Parse date +/- null#1", "date(today) + null", None),
    (f"{PE}::Parse date +/- null#2", "date(today) - null", None),
    (f"{PE}::Parse null duration#1", "dur(null)", None),
    (f"{PE}::Parse null duration#2", 'dur("null")', None),
    (f"{PE}::Lists []", "[]", []),
    (f"{PE}::Lists [1]", "[1]", [1]),
    (f"{PE}::Lists [1, 2]", "[1,2]", [1, 2]),
    (f"{PE}::Lists [1, 2, 3]", "[ 1,  2, 3   ]", [1, 2, 3]),
    (f"{PE}::Lists [\"a\"]", '["a" ]', ["a"]),
    (f"{PE}::Lists [[]]", "[ [] ]", [[]]),
    (f"{PE}::Objects {{}}", "{}", {}),
    (f"{PE}::Objects {{ a: 1 }}", "{ a: 1 }", {"a": 1}),
    (f"{PE}::Objects {{ \"a\": 1 }}", '{ "a": 1 }', {"a": 1}),
    (f"{PE}::Objects {{ \"yes no\": 1 }}", '{ "yes no": 1 }', {"yes no": 1}),
    (f"{PE}::Objects {{a:1,b:[2]}}", "{ a: 1, b: [2] }", {"a": 1, "b": [2]}),
    (f"{PE}::Binary Operators Simple Addition", '16 + "what"', "16what"),
    (f"{PE}::Binary Operators Simple Division#1", "14 / 2", 7),
    (f"{PE}::Binary Operators Simple Division#2", "31 / 9.0", 31 / 9.0),
    (f"{PE}::Binary Operators Simple Modulo#1", "14 % 2", 0),
    (f"{PE}::Binary Operators Simple Modulo#2", "31 % 9.0", 4.0),
    (f"{PE}::Binary Operators Parenthesis", "(16 - 4) - 8", 4),
    (f"{PE}::Binary Operators Order of Operations", "14 + 6 >= 19 - 2", True),
    (f"{PE}::Parse Negated field#1", "!true", False),
    (f"{PE}::Parse Negated field#2", "!14", False),
    (f"{PE}::Parse binaryop negated field#1", "!(true & false)", True),
    (f"{PE}::Parse binaryop negated field#2", "true & !false", True),
    (f"{PE}::Parse Various Fields", 'list(a, "b", 3, [[4]])', [None, "b", 3, Link("4")]),
    (f"{PE}::Identifiers emoji (evaluated)", '{ "😊": 1 }.😊', 1),
]


@pytest.mark.parametrize("origin, expression, expected", VALUES, ids=[c[0] for c in VALUES])
def test_dataview_expression_value(ev, origin, expression, expected):
    actual = ev(expression)
    assert same(actual, expected), f"{expression} gave {actual!r}, Dataview gives {expected!r}"


def test_parse_offsets_are_kept_not_converted(ev):
    """parse.expression.test.ts::...Timezone: the written zone and wall time are kept."""
    d = ev("date(1985-12-06T19:40:10+06:30)")
    assert (d.hour, d.minute, d.utcoffset()) == (19, 40, dt.timedelta(hours=6, minutes=30))
    paris = ev("date(2021-08-15T12:40:50[Europe/Paris])")
    assert paris.isoformat() == "2021-08-15T12:40:50+02:00"
    assert ev("date(2021-11-15T12:40:50[Europe/Paris])").isoformat() == "2021-11-15T12:40:50+01:00"
    # the same instant written in two zones is the same date
    assert ev("date(2021-08-15T10:40:50Z) = date(2021-08-15T12:40:50[Europe/Paris])") is True
    assert ev("date(2021-08-15T12:40:50[Europe/Paris]) < date(2021-08-15T12:40:50Z)") is True


REJECTED = [
    (f"{PE}::Parse Integer Literal#1", "0no"),
    (f"{PE}::Parse Float Literal#4", "123.0.0"),
    (f"{PE}::String Literals Parse String Literal#1", "this won't work, no quotes"),
    (f"{PE}::String Literals Parse String Literal#4", '"\\\\""'),
    (f"{PE}::Parse invalid date", "date(4237-14-73)"),
    (f"{PE}::Identifiers 0no", "0no"),
    (f"{PE}::Identifiers a*b (not one identifier)", "a*b)"),
]


@pytest.mark.parametrize("origin, expression", REJECTED, ids=[c[0] for c in REJECTED])
def test_dataview_expression_rejected(origin, expression):
    with pytest.raises(QueryError):
        parse_expression(expression)


V, D, I, C, L = ast.Variable, ast.Dot, ast.Index, ast.Call, ast.Literal
TREES = [
    (f"{PE}::Parse Multiple Strings", '"" or "yes"', ast.Binary("or", L(""), L("yes"))),
    (f"{PE}::Parse boolean literal#3 (fal is no boolean: a name)", "fal", V("fal")),
    (f"{PE}::Identifiers lma0", "lma0", V("lma0")),
    (f"{PE}::Identifiers 😊", "😊", V("😊")),
    (f"{PE}::Identifiers 📷", "📷", V("📷")),
    (f"{PE}::Identifiers a*b", "a*b", ast.Binary("*", V("a"), V("b"))),
    (f"{PE}::Parse Dot Notation#1", "Dates.Birthday", D(V("Dates"), "Birthday")),
    (f"{PE}::Parse Dot Notation#2", "a.b.c3", D(D(V("a"), "b"), "c3")),
    (f"{PE}::Parse Index Notation#1", "a[0]", I(V("a"), L(0))),
    (f"{PE}::Parse Index Notation#3", "hello[brain]", I(V("hello"), V("brain"))),
    (f"{PE}::Parse Mixed Index/Dot Notation#1", "a.b[0]", I(D(V("a"), "b"), L(0))),
    (f"{PE}::Parse Mixed Index/Dot Notation#2", '"hello".what[yes]', I(D(L("hello"), "what"), V("yes"))),
    (f"{PE}::Parse negated index#1", "!a[b]", ast.Unary("!", I(V("a"), V("b")))),
    (f"{PE}::Parse negated index#2", "!a.b", ast.Unary("!", D(V("a"), "b"))),
    (f"{PE}::Parse function with no arguments#1", "hello()", C(V("hello"), [])),
    (f"{PE}::Parse function with no arguments#2", "lma0()", C(V("lma0"), [])),
    (f"{PE}::Parse function with arguments#1", "list(1, 2, 3)", C(V("list"), [L(1), L(2), L(3)])),
    (f"{PE}::Parse function with arguments#2", 'object("a", 1, "b", 2)', C(V("object"), [L("a"), L(1), L("b"), L(2)])),
    (f"{PE}::Parse function with duration", "today() + dur(4hr)",
     ast.Binary("+", C(V("today"), []), L(Duration(0, 4 * 3600.0)))),
    (f"{PE}::Parse null duration#1", "dur(null)", C(V("dur"), [L(None)])),
    (f"{PE}::Parse null duration#2", 'dur("null")', C(V("dur"), [L("null")])),
    (f"{PE}::Parse date +/- null#1", "today() + null", ast.Binary("+", C(V("today"), []), L(None))),
    (f"{PE}::Parse date +/- null#2", "today() - null", ast.Binary("-", C(V("today"), []), L(None))),
    (f"{PE}::Parse function with mixed dot, index, and function call", "list().parts[0]",
     I(D(C(V("list"), []), "parts"), L(0))),
    (f"{PE}::Lambda Expressions Parse 0-argument constant lambda", "() => 16", ast.LambdaExpr([], L(16))),
    (f"{PE}::Lambda Expressions Parse 0-argument binary op lambda", "() => a + 2",
     ast.LambdaExpr([], ast.Binary("+", V("a"), L(2)))),
    (f"{PE}::Lambda Expressions Parse 1-argument lambda", "(v) => v", ast.LambdaExpr(["v"], V("v"))),
    (f"{PE}::Lambda Expressions Parse 2-argument lambda", "(yes, no) => yes - no",
     ast.LambdaExpr(["yes", "no"], ast.Binary("-", V("yes"), V("no")))),
    (f"{PE}::Binary Operators Multiplication (No Spaces)", "3*a", ast.Binary("*", L(3), V("a"))),
    (f"{PE}::Binary Operators Order of Operations (tree)", "14 + 6 >= 19 - 2",
     ast.Binary(">=", ast.Binary("+", L(14), L(6)), ast.Binary("-", L(19), L(2)))),
    (f"{PE}::Parse Negated field#3", "!neat(0)", ast.Unary("!", C(V("neat"), [L(0)]))),
    (f"{PE}::Parse Negated field#4", "!!what", ast.Unary("!", ast.Unary("!", V("what")))),
    (f"{PE}::Parse binaryop negated field#1 (tree)", "!(true & false)",
     ast.Unary("!", ast.Binary("and", L(True), L(False)))),
    (f"{PE}::Parse binaryop negated field#2 (tree)", "true & !false",
     ast.Binary("and", L(True), ast.Unary("!", L(False)))),
]


@pytest.mark.parametrize("origin, expression, tree", TREES, ids=[c[0] for c in TREES])
def test_dataview_expression_tree(origin, expression, tree):
    assert parse_expression(expression) == tree


def tag_of(query: str) -> str:
    src = parse_query(query).source
    assert isinstance(src, ast.TagSource)
    return src.tag


@pytest.mark.parametrize("tag", ["daily/2021/20/08", "hello-from-marketing/yes", "📷", "🌱/🌿", "⚙️", "début"],
                         ids=lambda t: f"{PE}::Tag Literals #{t}")
def test_dataview_tag_literal(tag):
    assert tag_of(f"LIST FROM #{tag}") == tag


F, T, N, AND, OR = ast.FolderSource, ast.TagSource, ast.NotSource, ast.AndSource, ast.OrSource
SOURCES = [
    (f"{PE}::Parse simple sources#1", '"hello"', F("hello")),
    (f"{PE}::Parse simple sources#2", "#neat", T("neat")),
    (f"{PE}::Parse simple sources#3", 'csv("data/a.csv")', ast.CsvSource("data/a.csv")),
    (f"{PE}::Parse negated source#1", '-"hello"', N(F("hello"))),
    (f"{PE}::Parse negated source#2", '!"hello"', N(F("hello"))),
    (f"{PE}::Parse negated source#3", "-#neat", N(T("neat"))),
    (f"{PE}::Parse negated source#4", "!#neat", N(T("neat"))),
    (f"{PE}::Parse parens source#1", '("lma0")', F("lma0")),
    (f"{PE}::Parse parens source#2", "(#neat0)", T("neat0")),
    (f"{PE}::Parse binary source#1", '"lma0" or #neat', OR(F("lma0"), T("neat"))),
    (f"{PE}::Parse binary source#2", '"meme" & #dirty', AND(F("meme"), T("dirty"))),
    (f"{PE}::Parse negated parens source#1", "-(#neat)", N(T("neat"))),
    (f"{PE}::Parse negated parens source#2", "!(#neat)", N(T("neat"))),
    (f"{PE}::Parse negated parens source#3", '-("meme" & #dirty)', N(AND(F("meme"), T("dirty")))),
    (f"{PE}::Parse negated parens source#4", '!("meme" & #dirty)', N(AND(F("meme"), T("dirty")))),
    (f"{PE}::Parse negated parens source#5", '-"meme" & #dirty', AND(N(F("meme")), T("dirty"))),
    (f"{PE}::Parse negated parens source#6", '!"meme" & #dirty', AND(N(F("meme")), T("dirty"))),
    (f"{PE}::Parse binary source (|)", '"lma0" | #neat', OR(F("lma0"), T("neat"))),
]


@pytest.mark.parametrize("origin, source, tree", SOURCES, ids=[c[0] for c in SOURCES])
def test_dataview_source(origin, source, tree):
    assert parse_query(f"LIST FROM {source}").source == tree


# ---- parse.query.test.ts ---------------------------------------------------------------------

PQ = "parse.query.test.ts"


@pytest.mark.parametrize("kind", ["task", "list", "table"])
@pytest.mark.parametrize("suffix", ["", " ", "\n", " \n", "\n "])
def test_query_type_alone(kind, suffix):
    """parse.query.test.ts::Just TASK / Just LIST / Just TABLE (upper and lower case)."""
    for text in (kind.upper() + suffix, kind + suffix):
        assert parse_query(text).type == kind


def test_parse_query_type():
    """parse.query.test.ts::Parse Query Type: unknown types fail, case does not matter."""
    with pytest.raises(QueryError):
        parse_query("vehicle")
    assert parse_query("lIsT").type == "list"


def test_link_source():
    """parse.query.test.ts::Link Source."""
    q = parse_query("list from [[Stuff]]")
    assert q.type == "list" and not q.without_id and q.commands == []
    assert q.source == ast.LinkSource("Stuff")


@pytest.mark.parametrize("comment", ["// This is a comment", "//This is a comment", "//", "// "])
def test_valid_comments(comment):
    """parse.query.test.ts::Comments Valid Comments: a comment line is skipped."""
    assert parse_query(f"{comment}\nLIST").type == "list"
    assert parse_query(f"LIST\n{comment}").type == "list"


def test_invalid_comment_in_quotes():
    """parse.query.test.ts::Comments Invalid comment in quotes: // inside a string is text."""
    q = parse_query('LIST "// This is not a comment"')
    assert q.columns[0].expr == ast.Literal("// This is not a comment")
    q = parse_query('LIST "The is before the comment // This is not a comment"')
    assert q.columns[0].expr == ast.Literal("The is before the comment // This is not a comment")


def test_named_fields():
    """parse.query.test.ts::Named Fields Explicit / Implicit."""
    q = parse_query("TABLE time-played, (time-played + 4) as something, 8 + 4")
    assert [c.name for c in q.columns] == ["time-played", "something", "8 + 4"]
    assert q.columns[0].expr == ast.Variable("time-played")
    assert q.columns[1].expr == ast.Binary("+", ast.Variable("time-played"), ast.Literal(4))
    assert q.columns[2].expr == ast.Binary("+", ast.Literal(8), ast.Literal(4))


def test_sort_fields():
    """parse.query.test.ts::Sort Fields."""
    (simple,) = parse_query("LIST SORT time-played DESC").commands[0].keys
    assert simple.expr == ast.Variable("time-played") and simple.descending
    (complex_,) = parse_query('LIST SORT (time-played - "where")').commands[0].keys
    assert complex_.expr == ast.Binary("-", ast.Variable("time-played"), ast.Literal("where"))
    assert not complex_.descending


def test_task_query_with_no_fields():
    """parse.query.test.ts::Task Queries Task query with no fields."""
    q = parse_query("task from #games")
    assert q.type == "task" and q.source == ast.TagSource("games")


def test_list_with_format_and_without_id():
    """parse.query.test.ts::List Queries With Format / WITHOUT ID."""
    q = parse_query("LIST file.name FROM #games")
    assert q.columns[0].expr == ast.Dot(ast.Variable("file"), "name") and not q.without_id
    q = parse_query("LIST WITHOUT ID file.name FROM #games")
    assert q.without_id and q.columns[0].expr == ast.Dot(ast.Variable("file"), "name")


def test_table_minimal_query():
    """parse.query.test.ts::Table Queries Minimal Query."""
    q = parse_query("TABLE time-played, rating, length FROM #games")
    assert [c.name for c in q.columns] == ["time-played", "rating", "length"]
    assert [c.expr for c in q.columns] == [ast.Variable("time-played"), ast.Variable("rating"), ast.Variable("length")]
    assert q.source == ast.TagSource("games") and not q.without_id


FAT = ("TABLE (time-played + 100) as long, rating as rate, length\n"
       "FROM #games or #gaming\n"
       "WHERE long > 150 and rate - 10 < 40\n"
       "SORT length + 8 + 4 DESCENDING, long ASC")
COMMENTED = ("// This is a comment at the beginning\n"
             "TABLE (time-played + 100) as long, rating as rate, length\n"
             "// This is a comment\n"
             "// This is a second comment\n"
             "FROM #games or #gaming  // This is an inline comment\n"
             "// This is a third comment\n"
             "WHERE long > 150 and rate - 10 < 40\n"
             "// This is a fourth comment\n"
             "\n"
             "   // This is a comment with whitespace prior\n"
             "SORT length + 8 + 4 DESCENDING, long ASC\n"
             "// This is a comment at the end")


@pytest.mark.parametrize("text", [FAT, COMMENTED], ids=[f"{PQ}::Fat Query", f"{PQ}::Commented Query"])
def test_table_fat_and_commented_query(text):
    q = parse_query(text)
    assert q.type == "table" and len(q.columns) == 3
    assert q.source == ast.OrSource(ast.TagSource("games"), ast.TagSource("gaming"))
    assert isinstance(q.commands[1], ast.Sort) and len(q.commands[1].keys) == 2


@pytest.mark.parametrize("text", ["TABLE WITHOUT ID name, value", "TABLE    WITHOUT     ID   name, value"])
def test_table_without_id(text):
    """parse.query.test.ts::Table Queries WITHOUT ID / WITHOUT ID (weird spacing)."""
    q = parse_query(text)
    assert q.type == "table" and q.without_id


def test_calendar_is_rejected_with_a_reason():
    """parse.query.test.ts::Calendar Queries Minimal Query: CALENDAR stays out (no widget to
    draw in a terminal); it is refused with one clear line."""
    with pytest.raises(QueryError, match="CALENDAR"):
        parse_query("CALENDAR my-date FROM #games\nWHERE foo > 100")
