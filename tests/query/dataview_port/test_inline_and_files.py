"""Port of Dataview's src/test/parse/parse.inline.test.ts, markdown/parse.file.test.ts,
util/normalize.test.ts, util/paths.test.ts and data/values.test.ts.

Dataview calls its extractors on a string; here the same text is written into a note,
parsed by paperkb, and read back through a query value (``file.tags``, a task's fields,
a field under its sanitised name, ``file.name``/``file.folder``), which is where a
paperkb user meets the fact. Pytest ids name the Dataview file and test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from dataview_kit import page_of, same
from kb.parse import parse_note
from kb.query import MemoryCorpus, execute
from kb.query.values import Link, canonical_key, compare, normalize_header, parse_field_value

PI = "parse.inline.test.ts"

FIELD_VALUES = [
    (f"{PI}::Parse commas inside inline field", "[[yes, no, and maybe]]", Link("yes, no, and maybe")),
    (f"{PI}::Inline Field Values Parse basic inline fields#1", "14", 14),
    (f"{PI}::Inline Field Values Parse basic inline fields#2", '"yes,"', "yes,"),
    (f"{PI}::Inline Field Values Parse basic inline fields#3", "[[test]]", Link("test")),
    (f"{PI}::Inline Field Values Parse inline field lists#1", "[[test]],", [Link("test")]),
    (f"{PI}::Inline Field Values Parse inline field lists#2", "[[test]], [[test2]]", [Link("test"), Link("test2")]),
    (f"{PI}::Inline Field Values Parse inline field lists#3", '1, 2, 3, "hello"', [1, 2, 3, "hello"]),
    (f"{PI}::Inline Field Values Parse inline booleans#1", "true", True),
    (f"{PI}::Inline Field Values Parse inline booleans#2", "False", False),
]


@pytest.mark.parametrize("origin, text, expected", FIELD_VALUES, ids=[c[0] for c in FIELD_VALUES])
def test_inline_field_value(origin, text, expected):
    assert same(parse_field_value(text), expected)
    # and the same through a note: the field's value as a query sees it
    page = page_of(f"value:: {text}\n")
    assert same(page.get("value"), expected)


def fields_of(line: str) -> list[tuple[str, str]]:
    return [(f.key, f.value) for f in parse_note(line + "\n", "n.md").inline_fields]


EXTRACTED = [
    (f"{PI}::Simple Inline Inline Empty", "", []),
    (f"{PI}::Simple Inline Inline Empty Brackets", "[]", []),
    (f"{PI}::Simple Inline Inline Empty Parenthesis", "()", []),
    (f"{PI}::Simple Inline Inline Incorrect Brackets", "[key:value]", []),
    (f"{PI}::Simple Inline Inline Incorrect Parenthesis", "(key:value)", []),
    (f"{PI}::Simple Inline Inline Trivial Brackets", "text [key::value]", [("key", "value")]),
    (f"{PI}::Simple Inline Inline Trivial Parenthesis", "text (key::value)", [("key", "value")]),
    (f"{PI}::Simple Inline Inline Two Inline Fields", "[key:: value] and so thus, [key2:: value2]",
     [("key", "value"), ("key2", "value2")]),
    (f"{PI}::Inline Inline Edge Cases Nested Brackets", "[[[[hello:: 16]]", [("hello", "16")]),
    (f"{PI}::Inline Inline Edge Cases Brackets In Value", "This is some text. [key:: [value]]", [("key", "[value]")]),
    (f"{PI}::Inline Inline Edge Cases Escaped Brackets", "Hello? [key! :: \\[value]", [("key!", "\\[value")]),
    # a line indented this far is a nested list item in a note (alone it would be a code block)
    (f"{PI}::Inline Inline Edge Cases Large Leading Whitespace", "- a\n    - b\n        - [ ] Huh! [p:: 1]",
     [("p", "1")]),
    (f"{PI}::Inline Inline With HTML Link", '[link:: <a href="Page">Value</a>]', [("link", '<a href="Page">Value</a>')]),
]


@pytest.mark.parametrize("origin, line, expected", EXTRACTED, ids=[c[0] for c in EXTRACTED])
def test_inline_field_extraction(origin, line, expected):
    assert fields_of(line) == expected


TASK_EMOJI = [
    (f"{PI}::Inline task emoji shorthands Due emoji shorthand#1", "- [ ] testTask 🗓️2022-07-14", "due",
     dt.datetime(2022, 7, 14)),
    (f"{PI}::Inline task emoji shorthands Due emoji shorthand#2", "- [ ] testTask 🗓2022-07-14", "due",
     dt.datetime(2022, 7, 14)),
    (f"{PI}::Inline task emoji shorthands Due emoji shorthand (📅)", "- [ ] testTask 📅 2022-07-14", "due",
     dt.datetime(2022, 7, 14)),
    (f"{PI}::Inline task emoji shorthands Created emoji shorthand", " - [ ] testTask \u27952022-07-25", "created",
     dt.datetime(2022, 7, 25)),
    (f"{PI}::Inline task emoji shorthands Start date emoji shorthand", " - [ ] testTask 🛫2022-07-21", "start",
     dt.datetime(2022, 7, 21)),
    (f"{PI}::Inline task emoji shorthands Scheduled date emoji shorthand", " - [ ] testTask ⏳2022-07-24", "scheduled",
     dt.datetime(2022, 7, 24)),
    (f"{PI}::Set Inline Add emoji shorthand annotation (extracted)", "- [ ] an uncompleted task ✅ 2022-07-26",
     "completion", dt.datetime(2022, 7, 26)),
]


@pytest.mark.parametrize("origin, line, key, expected", TASK_EMOJI, ids=[c[0] for c in TASK_EMOJI])
def test_task_emoji_dates(origin, line, key, expected):
    (task,) = page_of(line + "\n").file.get("tasks")
    assert task[key] == expected


def test_task_emoji_dates_in_a_task_query():
    """The shorthand fields work in TASK queries as Dataview's task fields do."""
    corpus = MemoryCorpus([parse_note("- [ ] soon 📅 2022-07-14\n- [ ] later 📅 2023-01-01\n- [ ] undated\n", "t.md")])
    result = execute("TASK WHERE due AND due < date(2022-12-31)", corpus)
    assert [r.task["text"] for r in result.rows] == ["soon 📅 2022-07-14"]


def test_task_section_is_a_link_to_its_heading():
    """markdown-file.ts (task ``section``, exercised by the test vault's 'Tasks in a specific
    section'): the heading above a task, as a header link; the file when there is none."""
    page = page_of("- [ ] before\n# Top\n## Next **Actions**\n- [ ] act\n", "p.md")
    before, act = page.file.get("tasks")
    assert before["section"] == Link("p.md")
    assert act["section"] == Link("p.md", None, "Next Actions", False, "header")
    corpus = MemoryCorpus([parse_note("# Top\n## Next Actions\n- [ ] act\n", "p.md")])
    result = execute('TASK WHERE meta(section).subpath = "Next Actions"', corpus)
    assert [r.task["text"] for r in result.rows] == ["act"]


# ---- markdown/parse.file.test.ts -----------------------------------------------------------

PF = "parse.file.test.ts"
FM_TAGS = [
    (f"{PF}::Frontmatter Tags Empty", "", []),
    (f"{PF}::Frontmatter Tags No Tags", "a: 1\nb: 2\n", []),
    (f"{PF}::Frontmatter Tags One Tag", "tag: hello\n", ["#hello"]),
    (f"{PF}::Frontmatter Tags Two Tag", "tag: [hello, goodbye]\n", ["#hello", "#goodbye"]),
    (f"{PF}::Frontmatter Tags Two Tag String", "tag: hello goodbye\n", ["#hello", "#goodbye"]),
    (f"{PF}::Frontmatter Tags Two Tag String Comma", "tag: hello, goodbye\n", ["#hello", "#goodbye"]),
]


@pytest.mark.parametrize("origin, frontmatter, expected", FM_TAGS, ids=[c[0] for c in FM_TAGS])
def test_frontmatter_tags(origin, frontmatter, expected):
    page = page_of(f"---\n{frontmatter}---\nbody\n")
    assert sorted(page.file.get("etags")) == sorted(expected)


TASK_TAGS = [
    (f"{PF}::Task Tags Empty", "hello", []),
    (f"{PF}::Task Tags One Tag", "and text #hello", ["#hello"]),
    (f"{PF}::Task Tags Two Tags", "#and/thing text #hello", ["#and/thing", "#hello"]),
    (f"{PF}::Task Tags Comma Delimited", "#one,#two, #three", ["#one", "#two", "#three"]),
    (f"{PF}::Task Tags Semicolon Delimited", "#one;;;#two; #three", ["#one", "#two", "#three"]),
    (f"{PF}::Task Tags Parenthesis", "[#one]]#two;;#four()() #three", ["#one", "#two", "#four", "#three"]),
]


@pytest.mark.parametrize("origin, text, expected", TASK_TAGS, ids=[c[0] for c in TASK_TAGS])
def test_task_tags(origin, text, expected):
    (task,) = page_of(f"- [ ] {text}\n").file.get("tasks")
    assert sorted(task["tags"]) == sorted(expected)


# ---- util/normalize.test.ts ----------------------------------------------------------------

UN = "normalize.test.ts"
HEADERS = [
    (f"{UN}::Header Normalization Link", "Header  [[Outer Wilds]]  ", "Header Outer Wilds"),
    (f"{UN}::Header Normalization Dash", "Header - More", "Header - More"),
    (f"{UN}::Header Normalization Underscore", "Header _ More _", "Header _ More _"),
    (f"{UN}::Header Normalization Link with Display", "Header  [[Outer Wilds|Thing]]  ", "Header Outer Wilds Thing"),
    (f"{UN}::Header Normalization Markup", "**Header** *Value", "Header Value"),
    (f"{UN}::Header Normalization Emoji", "Header   📷 [[Outer Wilds]]  ", "Header 📷 Outer Wilds"),
]


@pytest.mark.parametrize("origin, header, expected", HEADERS, ids=[c[0] for c in HEADERS])
def test_header_normalization(ev, origin, header, expected):
    assert normalize_header(header) == expected
    if "[[" not in header:  # and in a link's subpath, as a query writes it
        assert ev(f"meta([[Note#{header}]]).subpath") == expected


VARS = [
    (f"{UN}::Variable Canonicalization Idempotent", "test", "test"),
    (f"{UN}::Variable Canonicalization Idempotent 2", "property", "property"),
    (f"{UN}::Variable Canonicalization Space", "test thing", "test-thing"),
    (f"{UN}::Variable Canonicalization Multiple Space", "This     is test", "this-is-test"),
    (f"{UN}::Variable Canonicalization Number", "test thing 3", "test-thing-3"),
    (f"{UN}::Variable Canonicalization Punctuation", "This is a Test.", "this-is-a-test"),
    (f"{UN}::Variable Canonicalization Dash", "Yes-sir", "yes-sir"),
    (f"{UN}::Variable Canonicalization Emoji", "📷", "📷"),
    (f"{UN}::Variable Canonicalization Статус", "Статус", "статус"),
]


@pytest.mark.parametrize("origin, name, expected", VARS, ids=[c[0] for c in VARS])
def test_variable_canonicalization(origin, name, expected):
    assert canonical_key(name) == expected
    page = page_of(f"{name}:: 42\n")  # the field is reachable under its sanitised name
    assert page.get(expected) == 42


# ---- util/paths.test.ts: file.name and file.folder of a note at a path --------------------

UP = "paths.test.ts"
PATHS = [
    (f"{UP}::getFileTitle() root getFileTitle()", "yes.md", "yes", ""),
    (f"{UP}::getFileTitle() folder getFileTitle()", "ok/yes.md", "yes", "ok"),
    (f"{UP}::nested folder getParentFolder()#1", "a/b/c.md", "c", "a/b"),
    (f"{UP}::nested folder getParentFolder()#2", "hello/yes/no/maybe.md", "maybe", "hello/yes/no"),
    (f"{UP}::folder getParentFolder()", "no/maybe.md", "maybe", "no"),
]


@pytest.mark.parametrize("origin, path, name, folder", PATHS, ids=[c[0] for c in PATHS])
def test_file_name_and_folder(origin, path, name, folder):
    page = page_of("body\n", path)
    assert (page.file.get("name"), page.file.get("folder")) == (name, folder)


# ---- data/values.test.ts ---------------------------------------------------------------------

DV = "values.test.ts"
LINK_EQUALITY = [
    (f"{DV}::Links Comparisons Same File", "[[test]] = [[test]]", True),
    (f"{DV}::Links Comparisons Different File", "[[test]] = [[test2]]", False),
    (f"{DV}::Links Comparisons Different Subpath", "[[test]] = [[test#Hello]]", False),
    (f"{DV}::Links Comparisons Different Subpath Type", "[[test#abc]] = [[test#^abc]]", False),
    (f"{DV}::Links General Comparisons Different File", "[[test]] < [[test2]]", True),
    (f"{DV}::Links General Comparisons Different Subpath", "[[test]] < [[test#Hello]]", True),
    (f"{DV}::Links General Comparisons Different Subpath Type", "[[test#abc]] != [[test#^abc]]", True),
]


@pytest.mark.parametrize("origin, expression, expected", LINK_EQUALITY, ids=[c[0] for c in LINK_EQUALITY])
def test_link_comparisons(ev, origin, expression, expected):
    assert ev(expression) is expected


def test_link_compare_same_file_is_zero():
    """values.test.ts::Links General Comparisons Same File."""
    assert compare(Link("test"), Link("test")) == 0
    assert compare(Link("test", None, "abc", False, "header"), Link("test", None, "abc", False, "block")) != 0


# ---- robustness of the value parser (notes are untrusted) -----------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('[]",#!|\\ 0123456789-:TZ.abtruefals🗓📷')), max_size=80))
def test_field_values_never_raise(text):
    """Any inline field value gives a value (never an exception), and a list only when the
    text had a comma."""
    value = parse_field_value(text)
    if isinstance(value, list):
        assert "," in text
