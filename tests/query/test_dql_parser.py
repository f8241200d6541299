"""The DQL parser: the query forms of Dataview's documentation, error messages that name
the line and column, and property tests that nothing but QueryError ever escapes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.errors import PaperkbError
from kb.query import QueryError, parse_expression, parse_query
from kb.query import ast


def test_table_with_columns_aliases_and_commands():
    q = parse_query(
        'TABLE file.name AS "Name", rating, dateformat(file.ctime, "yyyy") AS year\n'
        'FROM #paper AND -"archive"\n'
        "WHERE rating > 3\n"
        "SORT rating DESC, file.name ASC\n"
        "LIMIT 5"
    )
    assert q.type == "table" and not q.without_id
    assert [c.name for c in q.columns] == ["Name", "rating", "year"]
    assert q.source == ast.AndSource(ast.TagSource("paper"), ast.NotSource(ast.FolderSource("archive")))
    assert [type(c).__name__ for c in q.commands] == ["Where", "Sort", "Limit"]
    assert [k.descending for k in q.commands[1].keys] == [True, False]


def test_keywords_are_case_insensitive_and_comments_are_skipped():
    q = parse_query("// my reading list\nlist without id file.name\n// filter\nfrom #todo where !completed\nsort file.name desc")
    assert q.type == "list" and q.without_id
    assert q.columns[0].name == "file.name"
    assert q.source == ast.TagSource("todo")


def test_commands_repeat_in_any_order():
    q = parse_query("TABLE x WHERE a FLATTEN b AS c WHERE d GROUP BY e AS f SORT g LIMIT 2 WHERE h")
    assert [type(c).__name__ for c in q.commands] == ["Where", "Flatten", "Where", "GroupBy", "Sort", "Limit", "Where"]
    assert q.commands[1].name == "c" and q.commands[3].name == "f"


def test_flatten_of_a_field_keeps_its_name():
    assert parse_query("LIST FLATTEN file.tags").commands[0].name == "file.tags"
    assert parse_query("LIST GROUP BY type").commands[0].name == "key"


@pytest.mark.parametrize("source,expected", [
    ("#tag", ast.TagSource("tag")),
    ("#deep_learning/models", ast.TagSource("deep_learning/models")),
    ('"papers/2023"', ast.FolderSource("papers/2023")),
    ("[[Llama 2]]", ast.LinkSource("Llama 2")),
    ("[[]]", ast.LinkSource("")),
    ("outgoing([[Llama 2]])", ast.LinkSource("Llama 2", outgoing=True)),
    ("#a or #b and #c", ast.OrSource(ast.TagSource("a"), ast.AndSource(ast.TagSource("b"), ast.TagSource("c")))),
    ("(#a or #b) and !#c", ast.AndSource(ast.OrSource(ast.TagSource("a"), ast.TagSource("b")), ast.NotSource(ast.TagSource("c")))),
    ('-"x"', ast.NotSource(ast.FolderSource("x"))),
])
def test_sources(source, expected):
    assert parse_query(f"LIST FROM {source}").source == expected


def test_task_and_table_without_columns():
    assert parse_query("TASK FROM #project WHERE !completed").type == "task"
    q = parse_query("TABLE WITHOUT ID FROM #x")
    assert q.without_id and q.columns == []


def test_identifiers_may_contain_dashes_so_subtraction_needs_spaces():
    assert parse_expression("date-of-note") == ast.Variable("date-of-note")
    e = parse_expression("a - b")
    assert isinstance(e, ast.Binary) and e.op == "-"


def test_date_and_duration_literals():
    assert isinstance(parse_expression("date(2023-07-18)"), ast.Literal)
    assert isinstance(parse_expression("dur(2 days)"), ast.Literal)
    assert isinstance(parse_expression("dur(1 year, 2 months and 3 days)"), ast.Literal)
    assert isinstance(parse_expression("date(file.name)"), ast.Call)  # not a literal: a call
    assert isinstance(parse_expression("date(today)"), ast.Call)  # resolved when the query runs


@pytest.mark.parametrize("query,message", [
    ("TABEL x", "line 1, column 1: expected a query type (LIST, TABLE or TASK), found 'TABEL x'"),
    ("TABLE a FROM", "line 1, column 13: expected a source"),
    ("LIST\nWHERE rating >", "line 2, column 15: expected an expression, found end of query"),
    ("LIST WHERE (a", "line 1, column 14: expected ')'"),
    ('LIST WHERE x = "abc', "line 1, column 16: expected a closing \" for the string"),
    ("LIST FROM #a\nSORTT x", "line 2, column 1: expected FROM, WHERE, SORT, GROUP BY, FLATTEN or LIMIT, found 'SORTT x'"),
    ("LIST WHERE f(1,", "line 1, column 16: expected an expression"),
    ("LIST FROM #a FROM #b", "only one FROM"),
    ("LIST GROUP x", "expected BY"),
    ("LIST WHERE [[x", "expected ']]' closing the link"),
    ("CALENDAR file.ctime", "CALENDAR queries are not supported"),
    ("LIST WHERE date(2023-13-45)", "expected a valid date"),
    ("TABLE a AS", "expected a name after AS"),
])
def test_errors_name_line_column_and_expectation(query, message):
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_query_error_is_a_paperkb_error():
    assert issubclass(QueryError, PaperkbError)


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(QueryError):
        parse_query("LIST WHERE " + "(" * 5000 + "1" + ")" * 5000)
    with pytest.raises(QueryError):
        parse_query("LIST WHERE " + "-" * 5000 + "1")


_DQL_PIECES = st.sampled_from([
    "LIST", "TABLE", "TASK", "WITHOUT ID", "FROM", "WHERE", "SORT", "GROUP BY", "FLATTEN", "LIMIT",
    "AS", "and", "or", "#tag", '"folder"', "[[Note]]", "[[", "]]", "(", ")", "[", "]", "{", "}", ",",
    "-", "!", "=", "!=", "<", ">=", "+", "*", "/", "%", ".", "x", "file.name", "1", "2.5", '"s"',
    "date(today)", "date(2023-07-18)", "dur(2 days)", "(x) =>", "=>", "null", "true", "//", "\n",
    "outgoing(", "DESC", ":", "'", '"', "date(", "dur(", "this", "![[", "\\",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_DQL_PIECES, max_size=14).map(" ".join))
def test_parser_raises_only_query_error_on_dql_like_text(text):
    try:
        parse_query(text)
    except QueryError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parser_raises_only_query_error_on_any_text(text):
    try:
        parse_query(text)
    except QueryError:
        pass
    try:
        parse_expression(text)
    except QueryError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(_DQL_PIECES, max_size=10).map(" ".join))
def test_evaluation_raises_only_query_error(text):
    from kb.query import Context, MemoryCorpus
    from kb.model import Note

    ctx = Context(MemoryCorpus([Note(path="a.md", tags=["tag"])]))
    try:
        e = parse_expression(text)
    except QueryError:
        return
    try:
        ctx.eval(e, None)
    except QueryError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_DQL_PIECES, max_size=12).map(" ".join))
def test_running_any_query_raises_only_query_error(text):
    from kb.model import InlineField, Link, Note, Task
    from kb.query import MemoryCorpus, execute, to_csv, to_markdown, to_records

    corpus = MemoryCorpus([
        Note(path="Note.md", tags=["tag", "tag/sub"], frontmatter={"x": 1, "name": "n", "d": "2023-07-18"},
             inline_fields=[InlineField("x", "[[folder/b]]", 3)], links=[Link("folder/b", "wikilink", 4)],
             tasks=[Task("t", " ", False, 5)]),
        Note(path="folder/b.md", frontmatter={"x": "2", "this": None}),
    ])
    try:
        result = execute(text, corpus, this=corpus.page("Note.md"))
    except QueryError:
        return
    to_markdown(result), to_csv(result), to_records(result)
