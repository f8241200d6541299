"""Port of Dataview's src/test/function/*.test.ts: every case that is a DQL expression.

Cases are ``(origin, expression, expected)``; ``origin`` is ``file::test`` in Dataview's
suite (with ``#n`` for the n-th expectation of one test), and is the pytest id.
Cases that call ``DefaultFunctions.x(ctx, ...)`` directly are written as the DQL call with
the same arguments.
"""

from __future__ import annotations

import datetime as dt

import pytest

from dataview_kit import same
from kb.query.values import Duration, Link

AGG = "aggregation.test.ts"
CASES = [
    # ---- aggregation.test.ts ----
    (f"{AGG}::map() empty list", "map([], (k) => 6)", []),
    (f"{AGG}::map() number list", "map([1, 2, 3], (k) => k + 4)", [5, 6, 7]),
    (f"{AGG}::map() string list", 'map(["a", "be", "ced"], (k) => length(k))', [1, 2, 3]),
    (f"{AGG}::filter() empty list", "filter(list(), (k) => true)", []),
    (f"{AGG}::filter() number list", "filter(list(1, 2, 3), (k) => k >= 2)", [2, 3]),
    (f"{AGG}::unique() empty", "unique([])", []),
    (f"{AGG}::unique() single", "unique([1])", [1]),
    (f"{AGG}::unique() multiple unique", "unique([1, 1, 1])", [1]),
    (f"{AGG}::unique() multiple same", "unique([1, 3, 7, 3, 1])", [1, 3, 7]),
    (f"{AGG}::min() empty", "min()", None),
    (f"{AGG}::min() single", "min(6)", 6),
    (f"{AGG}::min() multiple", "min(6, 9, 12)", 6),
    (f"{AGG}::min() list empty", "min([])", None),
    (f"{AGG}::min() list multiple", "min([1, 2, 3])", 1),
    (f"{AGG}::minby() empty", "minby([], (k) => k)", None),
    (f"{AGG}::minby() single", "minby([1], (k) => k)", 1),
    (f"{AGG}::minby() multiple", "minby([1, 2, 3], (k) => 0 - k)", 3),
    (f"{AGG}::max() empty", "max()", None),
    (f"{AGG}::max() single", "max(6)", 6),
    (f"{AGG}::max() multiple", "max(6, 9, 12)", 12),
    (f"{AGG}::max() list empty", "max([])", None),
    (f"{AGG}::max() list multiple", "max([1, 2, 3])", 3),
    (f"{AGG}::maxby() empty", "maxby([], (k) => k)", None),
    (f"{AGG}::maxby() single", "maxby([1], (k) => k)", 1),
    (f"{AGG}::maxby() multiple", "maxby([1, 2, 3], (k) => 0 - k)", 1),
    (f"{AGG}::sum() number list", "sum([2, 3, 1])", 6),
    (f"{AGG}::sum() string list", 'sum(["a", "b", "c"])', "abc"),
    (f"{AGG}::sum() empty list", "sum([])", None),
    (f"{AGG}::average() number list", "average([2, 3, 1])", 2),
    (f"{AGG}::average() number list#2", "average(nonnull([2, 3, null, 1]))", 2),
    (f"{AGG}::average() empty list", "average([])", None),
    (f"{AGG}::any() true, false", "any(true, false)", True),
    (f"{AGG}::any() [true, false]", "any(list(true, false))", True),
    (f"{AGG}::all() true, false", "all(true, false)", False),
    (f"{AGG}::all() true, [false]", "all(true, list(false))", True),
    (f"{AGG}::all() [true, false]", "all(list(true, false))", False),
    (f"{AGG}::all() vectorized#1", 'all(regexmatch("a+", list("a", "aaaa")))', True),
    (f"{AGG}::all() vectorized#2", 'all(regexmatch("a+", list("a", "aaab")))', False),
    (f"{AGG}::all() vectorized#3", 'any(regexmatch("a+", list("a", "aaab")))', True),
    (f"{AGG}::all() vectorized#4", 'all(regextest("a+", list("a", "aaaa")))', True),
    (f"{AGG}::all() vectorized#5", 'all(regextest("a+", list("a", "aaab")))', True),
    (f"{AGG}::all() vectorized#6", 'any(regextest("a+", list("a", "aaab")))', True),
    (f"{AGG}::nonnull() empty", "nonnull([])", []),
    (f"{AGG}::nonnull() [null, false]", "nonnull([null, false])", [False]),
    (f"{AGG}::firstvalue() empty", "firstvalue([])", None),
    (f"{AGG}::firstvalue() null", "firstvalue(null)", None),
    (f"{AGG}::firstvalue() [1, 2, 3]", "firstvalue([1, 2, 3])", 1),
    (f"{AGG}::firstvalue() [null, 1, 2]", "firstvalue([null, 1, 2])", 1),
    # ---- coerce.test.ts ----
    ("coerce.test.ts::number()#1", 'number("hmm")', None),
    ("coerce.test.ts::number()#2", "number(34)", 34),
    ("coerce.test.ts::number()#3", 'number("34")', 34),
    ("coerce.test.ts::number()#4", 'number("17 years")', 17),
    ("coerce.test.ts::number()#5", 'number("-19")', -19),
    ("coerce.test.ts::string() number", "string(18)", "18"),
    ("coerce.test.ts::list()#1", "list(1, 2, 3)", [1, 2, 3]),
    ("coerce.test.ts::list()#2", "list()", []),
    ("coerce.test.ts::object()#1", "object()", {}),
    ("coerce.test.ts::object()#2", 'object("hello", 1)', {"hello": 1}),
    # ---- constructors.test.ts ----
    ("constructors.test.ts::dur() 8 minutes", 'dur("8 minutes")', Duration(0, 480.0)),
    ("constructors.test.ts::dur() 3 hrs", 'dur("3 hrs")', Duration(0, 3 * 3600.0)),
    ("constructors.test.ts::dur() 2 days, 6 minutes", 'dur("2 days, 6 minutes")', Duration(0, 2 * 86400.0 + 360)),
    ("constructors.test.ts::typeof() string", 'typeof("nice")', "string"),
    ("constructors.test.ts::typeof() object", "typeof({a: 1, b: 2})", "object"),
    ("constructors.test.ts::typeof() array", 'typeof(["nice"])', "array"),
    ("constructors.test.ts::typeof() number", "typeof(18.4)", "number"),
    # ---- eval.test.ts (binary operators built with Fields.binaryOp are written as text) ----
    ("eval.test.ts::Evaluate simple numeric operations#1", "2 + 4", 6),
    ("eval.test.ts::Evaluate simple numeric operations#2", "2 - 4", -2),
    ("eval.test.ts::Evaluate simple numeric operations#3", "2 * 4", 8),
    ("eval.test.ts::Evaluate simple numeric operations#4", "8 / 4", 2),
    ("eval.test.ts::Evaluate numeric comparisons#1", "8 < 4", False),
    ("eval.test.ts::Evaluate numeric comparisons#2", "-2 = -2", True),
    ("eval.test.ts::Evaluate numeric comparisons#3", "-2 >= -8", True),
    ("eval.test.ts::Evaluate complex numeric operations#1", "12 + 8 - 4 / 2", 18),
    ("eval.test.ts::Evaluate complex numeric operations#2", "16 / 8 / 2", 1),
    ("eval.test.ts::Evaluate complex numeric operations#3", "39 / 3 <= 14", True),
    ("eval.test.ts::Evaluate simple string operations#1", '"a" + "b"', "ab"),
    ("eval.test.ts::Evaluate simple string operations#2", '"a" + 12', "a12"),
    ("eval.test.ts::Evaluate simple string operations#3", '"a" * 6', "aaaaaa"),
    ("eval.test.ts::Evaluate string comparisons#1", '"abc" < "abd"', True),
    ("eval.test.ts::Evaluate string comparisons#2", '"xyz" = "xyz"', True),
    ("eval.test.ts::Evaluate date comparisons#1", "date(2021-01-14) = date(2021-01-14)", True),
    ("eval.test.ts::Evaluate date comparisons#2", "contains(list(date(2020-01-01)), date(2020-01-01))", True),
    ("eval.test.ts::Evaluate date subtraction", "(date(2021-05-04) - date(1997-05-17)).years", 23),
    ("eval.test.ts::Evaluate simple object resolution#1", "{ inner: { final: 6 } }.inner", {"final": 6}),
    ("eval.test.ts::Evaluate simple object resolution#2", "{ inner: { final: 6 } }.inner.final", 6),
    ("eval.test.ts::Immediately Invoked Lambdas Addition", "((a, b) => a + b)(1, 2)", 3),
    ("eval.test.ts::Immediately Invoked Lambdas Negation", "((v) => 0-v)(6)", -6),
    ("eval.test.ts::Immediately Invoked Lambdas Curried", "((a) => (b) => a + b)(1)(2)", 3),
    ("eval.test.ts::Immediately Invoked Lambdas In Argument", "((a) => 1 + a)(((a) => 2)(3))", 3),
    ("eval.test.ts::Immediately Indexed Objects Empty", '{ a: 1, b: 2 }["c"]', None),
    ("eval.test.ts::Immediately Indexed Objects Single", '{ a: 1, b: 2 }["a"]', 1),
    ("eval.test.ts::Immediately Indexed Objects Nested", '{ a: 1, b: { c: 4 } }["b"]["c"]', 4),
    # ---- functions.test.ts ----
    ("functions.test.ts::Evaluate lower(list)", 'lower(list("A", "B"))', ["a", "b"]),
    ("functions.test.ts::Evaluate length(array)#1", "length([1, 2])", 2),
    ("functions.test.ts::Evaluate length(array)#2", "length([])", 0),
    ("functions.test.ts::Evaluate length(string)#1", 'length("hello")', 5),
    ("functions.test.ts::Evaluate length(string)#2", 'length("no")', 2),
    ("functions.test.ts::Evaluate length(string)#3", 'length("")', 0),
    ("functions.test.ts::Evaluate contains(object)#1", 'contains(object("hello", 1), "hello")', True),
    ("functions.test.ts::Evaluate contains(object)#2", 'contains(object("hello", 1), "no")', False),
    ("functions.test.ts::Evaluate contains(array)#1", 'contains(list("hello", 1), "hello")', True),
    ("functions.test.ts::Evaluate contains(array)#2", 'contains(list("hello", 1), 6)', False),
    ("functions.test.ts::Evaluate fuzzy contains(array)#1", 'contains(list("hello"), "he")', True),
    ("functions.test.ts::Evaluate fuzzy contains(array)#2", 'contains(list("hello"), "no")', False),
    ("functions.test.ts::Evaluate contains(string)#1", 'contains("hello", "hello")', True),
    ("functions.test.ts::Evaluate contains(string)#2", 'contains("meep", "me")', True),
    ("functions.test.ts::Evaluate contains(string)#3", 'contains("hello", "xd")', False),
    ("functions.test.ts::Evaluate non-fuzzy econtains(array)#1", 'econtains(list("hello"), "he")', False),
    ("functions.test.ts::Evaluate non-fuzzy econtains(array)#2", 'econtains(list("hello"), "hello")', True),
    ("functions.test.ts::Evaluate non-fuzzy econtains(array)#3", 'econtains(list("hello", 19), 1)', False),
    ("functions.test.ts::Evaluate non-fuzzy econtains(array)#4", 'econtains(list("hello", 19), 19)', True),
    ("functions.test.ts::Evaluate reverse(list)#1", "reverse(list(1, 2, 3))", [3, 2, 1]),
    ("functions.test.ts::Evaluate reverse(list)#2", 'reverse(list("a", "b", "c"))', ["c", "b", "a"]),
    ("functions.test.ts::Evaluate flat()#1", "flat(list(1, 2, 3, list(11, 12)))", [1, 2, 3, 11, 12]),
    ("functions.test.ts::Evaluate flat()#2", "flat(list(1, list(21, list(221, 222)), 3, list(11, 12)))",
     [1, 21, [221, 222], 3, 11, 12]),
    ("functions.test.ts::Evaluate flat()#3", "flat(list(1, list(2, list(3, list(4, list(5))))), 3)", [1, 2, 3, 4, [5]]),
    ("functions.test.ts::Evaluate flat()#4", "flat(list(1, list(2, list(3, list(4, list(5))))), 10)", [1, 2, 3, 4, 5]),
    ("functions.test.ts::Evaluate slice()#1", "slice(list(1, 2, 3, 4, 5), 3)", [4, 5]),
    ("functions.test.ts::Evaluate slice()#2", "slice(list(1, 2, 3, 4, 5), 0, 2)", [1, 2]),
    ("functions.test.ts::Evaluate slice()#3", "slice(list(1, 2, 3, 4, 5), -2)", [4, 5]),
    ("functions.test.ts::Evaluate slice()#4", "slice(list(1, 2, 3, 4, 5), -1, 1)", []),
    ("functions.test.ts::Evaluate slice()#5", "slice(list(1, 2, 3, 4, 5))", [1, 2, 3, 4, 5]),
    ("functions.test.ts::Evaluate slice()#6", 'slice(list(date("2021-01-01"), date("2022-02-02"), date("2023-03-03")), -2)',
     [dt.datetime(2022, 2, 2), dt.datetime(2023, 3, 3)]),
    ("functions.test.ts::Evaluate slice()#7", 'slice(["ant", "bison", "camel", "duck", "elephant"], -3)',
     ["camel", "duck", "elephant"]),
    ("functions.test.ts::sort() Evaluate sort(list)#1", "sort(list(2, 3, 1))", [1, 2, 3]),
    ("functions.test.ts::sort() Evaluate sort(list)#2", 'sort(list("a", "c", "b"))', ["a", "b", "c"]),
    ("functions.test.ts::sort() Evaluate sort(list, func)", "sort(list(2, 3, 1), (k) => 0-k)", [3, 2, 1]),
    ("functions.test.ts::Evaluate display()#1", 'display("test")', "test"),
    ("functions.test.ts::Evaluate display()#2", 'display("[displayname](http://example.com)")', "displayname"),
    ("functions.test.ts::Evaluate display()#3", 'display("[[test]]")', "test"),
    ("functions.test.ts::Evaluate display()#4", 'display("[[test|displayname]]")', "displayname"),
    ("functions.test.ts::Evaluate display()#5",
     'display("long [[test]] **with** [[test2|multiple]] [links](http://example.com)")', "long test with multiple links"),
    ("functions.test.ts::Evaluate display()#6", "display(1)", "1"),
    ("functions.test.ts::Evaluate display()#7", "display(true)", "true"),
    ("functions.test.ts::Evaluate display()#8", "display(null)", ""),
    ("functions.test.ts::Evaluate display()#9", 'display(date("2024-11-18"))', "November 18, 2024"),
    ("functions.test.ts::Evaluate display()#10", 'display(dur("7 hours"))', "7 hours"),
    ("functions.test.ts::Evaluate display()#11", 'display(link("path/to/file.md"))', "file"),
    ("functions.test.ts::Evaluate display()#12", 'display(link("path/to/file.md", "displayname"))', "displayname"),
    ("functions.test.ts::Evaluate display()#13", 'display(list("test", 2, link("file.md")))', "test, 2, file"),
    ("functions.test.ts::Evaluate default()#1", "default(null, 1)", 1),
    ("functions.test.ts::Evaluate default()#2", "default(2, 1)", 2),
    ("functions.test.ts::Evaluate default()#3", "default(list(1, null, null), 2)", [1, 2, 2]),
    ("functions.test.ts::Evaluate ldefault()#1", "ldefault(null, 1)", 1),
    ("functions.test.ts::Evaluate ldefault()#2", "ldefault(2, 1)", 2),
    ("functions.test.ts::Evaluate choose()#1", "choice(true, 1, 2)", 1),
    ("functions.test.ts::Evaluate choose()#2", "choice(false, 1, 2)", 2),
    ("functions.test.ts::Evaluate hash()#1", 'hash("2024-03-17", "")', 3259376374957153),
    ("functions.test.ts::Evaluate hash()#2", 'hash("2024-03-17", 2)', 271608741894590),
    ("functions.test.ts::Evaluate hash()#3", 'hash("2024-03-17", "Home")', 3041844187830523),
    ("functions.test.ts::Evaluate hash()#4", 'hash("2024-03-17", "note a1", 21)', 1143088188331616),
    ("functions.test.ts::Evaluate 1 field extract()", 'extract(object("mtime", 1), "mtime")', {"mtime": 1}),
    ("functions.test.ts::Evaluate 2 field extract()", 'extract(object("mtime", 1, "yes", "hello"), "yes", "mtime")',
     {"yes": "hello", "mtime": 1}),
    ("functions.test.ts::Evaluate nonnull()#1", "nonnull(null, null, 1)", [1]),
    ("functions.test.ts::Evaluate nonnull()#2", 'nonnull("yes")', ["yes"]),
    ("functions.test.ts::Evaluate date()#1", "date([[2020-04-18]])", dt.datetime(2020, 4, 18)),
    ("functions.test.ts::Evaluate date()#2", "date([[Place|2021-04]])", dt.datetime(2021, 4, 1)),
    ("functions.test.ts::Evaluate date()#3", 'date("12/31/2022", "MM/dd/yyyy")', dt.datetime(2022, 12, 31)),
    ("functions.test.ts::Evaluate date()#4", 'date("210313", "yyMMdd")', dt.datetime(2021, 3, 13)),
    ("functions.test.ts::Evaluate date()#5", 'date("946778645012","x")',
     dt.datetime.fromtimestamp(946778645.012)),
    ("functions.test.ts::Evaluate date()#6", 'date("946778645","X")', dt.datetime.fromtimestamp(946778645)),
    ("functions.test.ts::Evaluate date()#7", 'date(null, "MM/dd/yyyy")', None),
    # ---- meta.test.ts ----
    ("meta.test.ts::Evaluate meta(link).display#1", "meta([[2021-11-01|Displayed link text]]).display",
     "Displayed link text"),
    ("meta.test.ts::Evaluate meta(link).display#2", "meta([[2021-11-01]]).display", None),
    ("meta.test.ts::Evaluate meta(link).path#1", "meta([[My Project#Next Actions]]).path", "My Project"),
    ("meta.test.ts::Evaluate meta(link).path#2", "meta([[My Project#^9bcbe8]]).path", "My Project"),
    ("meta.test.ts::Evaluate meta(link).path#3", "meta([[My Project]]).path", "My Project"),
    ("meta.test.ts::Evaluate meta(link).subpath#1", "meta([[My Project#Next Actions]]).subpath", "Next Actions"),
    ("meta.test.ts::Evaluate meta(link).subpath#2", "meta([[My Project#^9bcbe8]]).subpath", "9bcbe8"),
    ("meta.test.ts::Evaluate meta(link).subpath#3", "meta([[My Project]]).subpath", None),
    ("meta.test.ts::Evaluate meta(link).type#1", "meta([[My Project]]).type", "file"),
    ("meta.test.ts::Evaluate meta(link).type#2", "meta([[My Project#Next Actions]]).type", "header"),
    ("meta.test.ts::Evaluate meta(link).type#3", "meta([[My Project#^9bcbe8]]).type", "block"),
    # ---- string.test.ts ----
    ("string.test.ts::regexreplace() letter", 'regexreplace("yes", "y", "no")', "noes"),
    ("string.test.ts::regexreplace() full", 'regexreplace("yes", "yes", "no")', "no"),
    ("string.test.ts::regexreplace() regex", 'regexreplace("yes", ".+", "no")', "no"),
    ("string.test.ts::containsword() single word", 'containsword("yes", "yes")', True),
    ("string.test.ts::containsword() two word", 'containsword("yes no", "no")', True),
    ("string.test.ts::containsword() negative two word", 'containsword("yes no", "maybe")', False),
    ("string.test.ts::containsword() subword", 'containsword("Hello there, chap!", "the")', False),
    ("string.test.ts::containsword() punctuation", 'containsword("Hello there, chap!", "there")', True),
    ("string.test.ts::containsword() case insensitive", 'containsword("Hello there, chap!", "hello")', True),
    ("string.test.ts::containsword() case insensitive 2", 'containsword("Hello there, chap!", "HELLO")', True),
    ("string.test.ts::regextest() .+", 'regextest(".+", "stuff")', True),
    ("string.test.ts::regextest() .+ empty", 'regextest(".+", "")', False),
    ("string.test.ts::regextest() .* empty", 'regextest(".*", "")', True),
    ("string.test.ts::regextest() word", 'regextest("\\w+", "m3me")', True),
    ("string.test.ts::regextest() whitespace", 'regextest("\\s+", "  ")', True),
    ("string.test.ts::regextest() exact", 'regextest("what", "what")', True),
    ("string.test.ts::regextest() not exact", 'regextest("what", "what are you doing?")', True),
    ("string.test.ts::regextest() start & end", 'regextest("^what$", "what")', True),
    ("string.test.ts::regexmatch() .+", 'regexmatch(".+", "stuff")', True),
    ("string.test.ts::regexmatch() .+ empty", 'regexmatch(".+", "")', False),
    ("string.test.ts::regexmatch() .* empty", 'regexmatch(".*", "")', True),
    ("string.test.ts::regexmatch() word", 'regexmatch("\\w+", "m3me")', True),
    ("string.test.ts::regexmatch() whitespace", 'regexmatch("\\s+", "  ")', True),
    ("string.test.ts::regexmatch() exact", 'regexmatch("what", "what")', True),
    ("string.test.ts::replace() letter", 'replace("hello", "h", "me")', "meello"),
    ("string.test.ts::replace() full", 'replace("meep", "meep", "pleh")', "pleh"),
    ("string.test.ts::replace() ignores regex", 'replace("x.z", "x.", "z$")', "z$z"),
    ("string.test.ts::replace() ignores regex dot", 'replace("x.z", ".", "z")', "xzz"),
    ("string.test.ts::lower() idempotent", 'lower("hello")', "hello"),
    ("string.test.ts::lower() Hello", 'lower("Hello")', "hello"),
    ("string.test.ts::upper() Hello", 'upper("Hello")', "HELLO"),
    ("string.test.ts::upper() hello", 'upper("hello")', "HELLO"),
    ("string.test.ts::upper() idempotent", 'upper("HELLO")', "HELLO"),
    ("string.test.ts::split(string, string)#1", 'split("hello world", " ")', ["hello", "world"]),
    ("string.test.ts::split(string, string)#2", 'split("hello world", "( )")', ["hello", " ", "world"]),
    ("string.test.ts::split(string, string)#3", 'split("hello  world", "\\s+")', ["hello", "world"]),
    ("string.test.ts::split(string, string)#4", 'split("hello world", "x")', ["hello world"]),
    ("string.test.ts::split(string, string)#5", 'split("hello world", "( )(x)?")', ["hello", " ", "", "world"]),
    ("string.test.ts::split(string, string)#6", 'split("hello there world", "(t?here)")', ["hello ", "there", " world"]),
    ("string.test.ts::split(string, string)#7", 'split("hello there world", "( )(x)?")',
     ["hello", " ", "", "there", " ", "", "world"]),
    ("string.test.ts::split(string, string, limit)#1", 'split("hello world", " ", 0)', []),
    ("string.test.ts::split(string, string, limit)#2", 'split("hello world", " ", 1)', ["hello"]),
    ("string.test.ts::split(string, string, limit)#3", 'split("hello world", " ", 3)', ["hello", "world"]),
    ("string.test.ts::split(string, string, limit)#4", 'split("hello world", "( )", 2)', ["hello", " "]),
    ("string.test.ts::startswith() (yes, ye)", 'startswith("yes", "ye")', True),
    ("string.test.ts::startswith() (Yes, ye)", 'startswith("Yes", "ye")', False),
    ("string.test.ts::startswith() (yes, no)", 'startswith("yes", "no")', False),
    ("string.test.ts::endswith() (yes, ye)", 'endswith("yes", "ye")', False),
    ("string.test.ts::endswith() (yes, es)", 'endswith("yes", "es")', True),
    ("string.test.ts::endswith() (yes, no)", 'endswith("yes", "no")', False),
    ("string.test.ts::padleft() (hello, 10)", 'padleft("hello", 10)', "     hello"),
    ("string.test.ts::padleft() (hello, 7)", 'padleft("hello", 7)', "  hello"),
    ("string.test.ts::padleft() (hello, 7, x)", 'padleft("hello", 7, "x")', "xxhello"),
    ("string.test.ts::padright() (hello, 10)", 'padright("hello", 10)', "hello     "),
    ("string.test.ts::padright() (hello, 7)", 'padright("hello", 7)', "hello  "),
    ("string.test.ts::padright() (hello, 7, x)", 'padright("hello", 7, "x")', "helloxx"),
    ("string.test.ts::padright() (, 1)", 'padright("", 1)', " "),
    ("string.test.ts::substring() (yes, 1)", 'substring("yes", 1)', "es"),
    ("string.test.ts::substring() (hello, 3)", 'substring("hello", 3)', "lo"),
    ("string.test.ts::substring() (hello, 3, 20)", 'substring("hello", 3, 20)', "lo"),
    ("string.test.ts::substring() (hello, 2, 4)", 'substring("hello", 2, 4)', "ll"),
    ("string.test.ts::substring() (, 0)", 'substring("", 0)', ""),
    ("string.test.ts::truncate() 8", 'truncate("Hello There!", 8)', "Hello..."),
    ("string.test.ts::truncate() 10", 'truncate("Hello There!", 10)', "Hello T..."),
    ("string.test.ts::truncate() 10#2", 'truncate("Hello There!", 10, "!")', "Hello The!"),
    # ---- vectorization.test.ts ----
    ("vectorization.test.ts::Single List Argument replace(list, string, string)",
     'replace(list("yes", "re"), "e", "a")', ["yas", "ra"]),
    ("vectorization.test.ts::Single List Argument lower(list)", 'lower(["YES", "nO"])', ["yes", "no"]),
    ("vectorization.test.ts::Single List Argument upper(list)", 'upper(["okay", "yep", "1"])', ["OKAY", "YEP", "1"]),
    ("vectorization.test.ts::Multi-List Arguments replace(list, list, string)",
     'replace(["a", "b", "c"], ["a", "b", "c"], "d")', ["d", "d", "d"]),
    ("vectorization.test.ts::Multi-List Arguments replace(list, string, list)",
     'replace(["a", "b", "c"], "a", ["d", "e", "f"])', ["d", "b", "c"]),
    ("vectorization.test.ts::Multi-List Arguments replace(list, list, list)",
     'replace(["a", "b", "c"], ["a", "b", "c"], ["x", "y", "z"])', ["x", "y", "z"]),
]


@pytest.mark.parametrize("origin, expression, expected", CASES, ids=[c[0] for c in CASES])
def test_dataview_function_case(ev, origin, expression, expected):
    actual = ev(expression)
    assert same(actual, expected), f"{expression} gave {actual!r}, Dataview gives {expected!r}"


# ---- cases that need more than one expression ----------------------------------------------

def test_eval_date_subtraction_is_calendar_aware(ev):
    """eval.test.ts::Evaluate date subtraction: a duration of 23 years (and 11 months, 17 days)."""
    d = ev("date(2021-05-04) - date(1997-05-17)")
    assert (d.months, d.seconds) == (23 * 12 + 11, 17 * 86400.0)
    assert str(d) == "23 years, 11 months, 17 days"
    assert ev("(date(2021-05-04) - date(1997-05-17)).years") == 23


def test_eval_simple_link_resolution(ev):
    """eval.test.ts::Evaluate simple link resolution: a link's fields are the linked page's."""
    from dataview_kit import evaluate
    from kb.parse import parse_note
    from kb.query import MemoryCorpus

    corpus = MemoryCorpus([parse_note("---\ninner:\n  final: 6\n---\n", "test.md")])
    assert evaluate("[[test]].inner", corpus) == {"final": 6}
    assert evaluate("[[test]].inner.final", corpus) == 6


def test_dur_equals_the_same_span(ev):
    """constructors.test.ts::dur(): Luxon durations compare by their parts."""
    assert ev('dur("2 days, 6 minutes")') == Duration(0, 2 * 86400.0 + 6 * 60)


def test_display_of_a_link_value(ev):
    """functions.test.ts::Evaluate display(): a link shows its display text, else its file name."""
    assert ev("display([[folder/Note|Shown]])") == "Shown"
    assert ev("display([[folder/Note]])") == "Note"
    assert isinstance(ev("[[x]]"), Link)
