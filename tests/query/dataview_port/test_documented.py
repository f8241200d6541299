"""Where Dataview's documentation (docs/docs/reference/functions.md) promises a result,
the result is the documented one: vectorisation, display(), default(), hash()."""

from __future__ import annotations

import pytest

from dataview_kit import same

DOC = "reference/functions.md"
DOCUMENTED = [
    (f"{DOC}::Calling functions on lists of values#1", 'lower("YES")', "yes"),
    (f"{DOC}::Calling functions on lists of values#2", 'lower(["YES", "NO"])', ["yes", "no"]),
    (f"{DOC}::Calling functions on lists of values#3", 'replace("yes", "e", "a")', "yas"),
    (f"{DOC}::Calling functions on lists of values#4", 'replace(["yes", "ree"], "e", "a")', ["yas", "raa"]),
    (f"{DOC}::display()#1", 'display("Hello World")', "Hello World"),
    (f"{DOC}::display()#2", 'display("**Hello** World")', "Hello World"),
    (f"{DOC}::display()#3", 'display("[Hello](https://example.com) [[World]]")', "Hello World"),
    (f"{DOC}::display()#4", 'display(link("path/to/file.md"))', "file"),
    (f"{DOC}::display()#5", 'display(link("path/to/file.md", "displayname"))', "displayname"),
    (f"{DOC}::display()#6", 'display(date("2024-11-18"))', "November 18, 2024"),
    (f"{DOC}::display()#7", 'display(list("Hello", "World"))', "Hello, World"),
    (f"{DOC}::default()#1", "default(list(1, 2, null), 3)", [1, 2, 3]),
    (f"{DOC}::default()#2", "ldefault(list(1, 2, null), 3)", [1, 2, None]),
    (f"{DOC}::default() vectorised in both arguments", "default(list(1, null, null), list(7, 8, 9))", [1, 8, 9]),
    (f"{DOC}::truncate()#1", 'truncate("Hello there!", 8, "/")', "Hello t/"),
    (f"{DOC}::truncate()#2", 'truncate("Hello there!", 20)', "Hello there!"),
    (f"{DOC}::hash() seed alone", 'hash("2024-03-17") = hash("2024-03-17", "")', True),
    (f"{DOC}::hash() differs by text", 'hash("2024-03-17", "a") != hash("2024-03-17", "b")', True),
]


@pytest.mark.parametrize("origin, expression, expected", DOCUMENTED, ids=[c[0] for c in DOCUMENTED])
def test_documented_result(ev, origin, expression, expected):
    actual = ev(expression)
    assert same(actual, expected), f"{expression} gave {actual!r}, the docs say {expected!r}"
