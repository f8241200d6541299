"""Runs a parsed DQL query over a corpus of pages, with Dataview's semantics.

Rows flow through the commands in the order written: FROM picks the pages, then each
WHERE / SORT / GROUP BY / FLATTEN / LIMIT transforms the row list. After GROUP BY a row
is a group: its key under the GROUP BY name and its member rows under ``rows``.
"""

from __future__ import annotations

import datetime as _dt
import gc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kb.query import ast
from kb.query.corpus import Corpus
from kb.query.errors import QueryError
from kb.query.functions import FUNCTIONS, call_function
from kb.query.limits import DEFAULT_LIMITS, Budget, Limits
from kb.query.pages import Page, ScalarPage
from kb.query.parser import parse_query
from kb.query.values import (
    Duration,
    Lambda,
    Link,
    Record,
    SortKey,
    add_duration,
    compare,
    date_difference,
    naive_local,
    relative_date,
    sort_key,
    to_string,
    truthy,
    typeof,
    zone_name,
)


class Row(Record):
    """A result row: a page (or task, or nothing after GROUP BY) plus names bound by
    FLATTEN / GROUP BY. A binding ``file.tags`` overrides that nested field."""

    __slots__ = ("base", "bindings", "path")

    def __init__(self, base: Record | None, bindings: dict[str, Any] | None = None) -> None:
        self.base = base
        self.bindings = bindings or {}
        self.path = base.path if isinstance(base, Page) else getattr(base, "path", None)

    def __repr__(self) -> str:
        return f"Row({self.path!r}, {list(self.bindings)})"

    def get(self, name: str) -> Any:
        b = self.bindings
        if b:
            if name in b:
                return b[name]
            prefix = name + "."
            nested = {k[len(prefix) :]: v for k, v in b.items() if k.startswith(prefix)}
            if nested:
                inner = self.base.get(name) if self.base is not None else None
                return Overlay(inner, nested)
        return self.base.get(name) if self.base is not None else None

    def keys(self) -> list[str]:
        keys = list(self.base.keys()) if self.base is not None else []
        return keys + [k for k in self.bindings if k not in keys and "." not in k]

    @property
    def page(self) -> Page | None:
        return self.base if isinstance(self.base, Page) else getattr(self.base, "page", None)


class Overlay(Record):
    """An object with some (possibly nested) fields replaced."""

    __slots__ = ("inner", "over", "path")

    def __init__(self, inner: Any, over: dict[str, Any]) -> None:
        self.inner = inner
        self.over = over
        self.path = None

    def get(self, name: str) -> Any:
        if name in self.over:
            return self.over[name]
        prefix = name + "."
        nested = {k[len(prefix) :]: v for k, v in self.over.items() if k.startswith(prefix)}
        base = get_field(self.inner, name) if self.inner is not None else None
        return Overlay(base, nested) if nested else base

    def keys(self) -> list[str]:
        keys = list(self.inner.keys()) if isinstance(self.inner, (dict, Record)) else []
        return keys + [k for k in self.over if "." not in k and k not in keys]


class TaskRecord(Record):
    """A task of a TASK query: its own fields first, then its page's."""

    __slots__ = ("task", "page", "path")

    def __init__(self, task: dict[str, Any], page: Page) -> None:
        self.task = task
        self.page = page
        self.path = page.path

    def get(self, name: str) -> Any:
        if name in self.task:
            return self.task[name]
        return self.page.get(name)

    def keys(self) -> list[str]:
        return list(self.task) + [k for k in self.page.keys() if k not in self.task]


_DATE_FIELDS = {
    "year": lambda d: d.year,
    "month": lambda d: d.month,
    "day": lambda d: d.day,
    "hour": lambda d: d.hour,
    "minute": lambda d: d.minute,
    "second": lambda d: d.second,
    "millisecond": lambda d: d.microsecond // 1000,
    "weekday": lambda d: d.isoweekday(),
    "week": lambda d: d.isocalendar()[1],
    "weekyear": lambda d: d.isocalendar()[0],
    "weeknumber": lambda d: d.isocalendar()[1],
    "quarter": lambda d: (d.month - 1) // 3 + 1,
    "ordinal": lambda d: d.timetuple().tm_yday,
    "ts": lambda d: int(d.timestamp() * 1000),
    "zonename": zone_name,
    "zone": zone_name,
    "offset": lambda d: utc_offset_minutes(d),
}


def utc_offset_minutes(d: _dt.datetime) -> int:
    """Luxon's ``offset``: minutes east of UTC (the machine's offset for a local date)."""
    off = d.utcoffset() if d.tzinfo is not None else d.astimezone().utcoffset()
    return int((off or _dt.timedelta(0)).total_seconds() // 60)


def get_field(obj: Any, name: str, ctx: Context | None = None) -> Any:
    """``obj.name`` with Dataview's rules for each type (lists map over their elements)."""
    if obj is None:
        return None
    if isinstance(obj, Record):
        return obj.get(name)
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        low = name.lower()
        for k, v in obj.items():
            if str(k).lower() == low:
                return v
        return None
    if isinstance(obj, list):
        return [get_field(x, name, ctx) for x in obj]
    if isinstance(obj, Link):
        page = ctx.link_page(obj) if ctx is not None else None
        return page.get(name) if page is not None else None
    if isinstance(obj, _dt.datetime):
        f = _DATE_FIELDS.get(name) or _DATE_FIELDS.get(name.lower())
        try:
            return f(obj) if f else None
        except (OverflowError, ValueError, OSError):  # .ts of a date at the end of the calendar
            return None
    if isinstance(obj, Duration):
        parts = obj.parts()
        if name in parts:
            return parts[name]
        if name in ("weeks",):
            return parts["days"] // 7
        if name in ("milliseconds",):
            return int(round((abs(obj.seconds) % 1) * 1000))
        return None
    if isinstance(obj, str) and name == "length":
        return len(obj)
    return None


@dataclass
class Context:
    """What an expression can see besides its row: the corpus, ``this``, the clock, and the
    budget of limits it runs under (made with the Context unless one is given: a Context is
    meant for one query or one note's render, not to be kept for ever)."""

    corpus: Corpus | None = None
    this: Page | None = None
    now: _dt.datetime = field(default_factory=_dt.datetime.now)
    budget: Budget = field(default_factory=Budget)

    def evaluate(self, e: ast.Expr, row: Record | None = None) -> Any:
        """:meth:`eval` for callers outside a query run: any failure is a QueryError."""
        return guarded(lambda: self.eval(e, row))

    def link_page(self, link: Link) -> Page | None:
        if self.corpus is None:
            return None
        path = self.corpus.resolve(link.path) or link.path
        return self.corpus.page(path)

    # ---- expressions --------------------------------------------------------------------
    def eval(self, e: ast.Expr, row: Record | None, scope: dict[str, Any] | None = None) -> Any:
        if type(e) is ast.Literal:
            return e.value
        if type(e) is ast.Variable:
            name = e.name
            if scope and name in scope:
                return scope[name]
            if name == "this":
                return self.this
            if row is None:
                return None
            value = row.get(name)
            if value is None and name == "row":  # row["Field With Spaces"]
                return row
            return value
        if type(e) is ast.Dot:
            return get_field(self.eval(e.obj, row, scope), e.name, self)
        if type(e) is ast.Binary:
            op = e.op
            if op == "and" or op == "or":
                return self.logical(e, row, scope)
            return self.binary(op, self.eval(e.left, row, scope), self.eval(e.right, row, scope))
        if type(e) is ast.Call:
            return self.call(e, row, scope)
        if type(e) is ast.Unary:
            v = self.eval(e.operand, row, scope)
            if e.op == "!":
                return not truthy(v)
            if v is None:
                return None
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return -v
            if isinstance(v, Duration):
                return -v
            raise QueryError(f"cannot negate a {typeof(v)}")
        if type(e) is ast.Index:
            obj = self.eval(e.obj, row, scope)
            idx = self.eval(e.index, row, scope)
            return self.index(obj, idx)
        if type(e) is ast.ListExpr:
            return [self.eval(x, row, scope) for x in e.items]
        if type(e) is ast.ObjectExpr:
            return {k: self.eval(v, row, scope) for k, v in e.items}
        if type(e) is ast.LinkExpr:
            if not e.target:
                if self.this is None:
                    raise QueryError(
                        "[[]] means the current note, which only a note's query block (or --this NOTE) has"
                    )
                path = self.this.path
            else:
                path = (self.corpus.resolve(e.target) if self.corpus is not None else None) or e.target
            return Link(path, e.display, e.subpath, e.embed, e.type)
        if type(e) is ast.LambdaExpr:
            params, body = e.params, e.body
            outer = dict(scope or {})
            budget = self.budget

            def call(args: list[Any]) -> Any:
                budget.tick()
                inner = dict(outer)
                inner.update(zip(params, args + [None] * (len(params) - len(args))))
                return self.eval(body, row, inner)

            return Lambda(params, call)
        raise QueryError(f"cannot evaluate {type(e).__name__}")  # pragma: no cover

    def logical(self, e: ast.Binary, row: Record | None, scope: dict[str, Any] | None) -> bool:
        """``a or b or c ...`` (or ``and``): the parser nests a chain on the left, so walk it
        in a loop; a 1,600-term OR then needs no deeper recursion than a 2-term one."""
        op = e.op
        if type(e.left) is not ast.Binary or e.left.op != op:
            left = truthy(self.eval(e.left, row, scope))
            if left is (op == "or"):
                return left
            return truthy(self.eval(e.right, row, scope))
        operands = [e.right]
        node: ast.Expr = e.left
        while type(node) is ast.Binary and node.op == op:
            operands.append(node.right)
            node = node.left
        operands.append(node)
        stop = op == "or"  # the value that decides the whole chain
        for x in reversed(operands):
            if truthy(self.eval(x, row, scope)) is stop:
                return stop
        return not stop

    def index(self, obj: Any, idx: Any) -> Any:
        if obj is None or idx is None:
            return None
        if isinstance(idx, str):
            return get_field(obj, idx, self)
        if isinstance(idx, (int, float)) and not isinstance(idx, bool):
            if isinstance(obj, (list, str)):
                if isinstance(idx, float) and not idx.is_integer():
                    return None
                i = int(idx)
                return obj[i] if 0 <= i < len(obj) else None
            return None
        raise QueryError(f"cannot index a {typeof(obj)} with a {typeof(idx)}")

    def call(self, e: ast.Call, row: Record | None, scope: dict[str, Any] | None) -> Any:
        self.budget.tick()
        func = e.func
        if isinstance(func, ast.Variable) and not (scope and func.name in scope):
            name = func.name
            if name.lower() not in FUNCTIONS:
                value = row.get(name) if row is not None else None
                if isinstance(value, Lambda):
                    return value.call([self.eval(a, row, scope) for a in e.args])
                raise QueryError(f"unknown function '{name}'")
            if (
                name.lower() == "date"
                and len(e.args) == 1
                and isinstance(e.args[0], ast.Literal)
                and isinstance(e.args[0].value, str)
            ):
                rel = relative_date(e.args[0].value, self.now)
                if rel is not None:
                    return rel
            args = [self.eval(a, row, scope) for a in e.args]
            return call_function(name, args, self)
        value = self.eval(func, row, scope)
        if isinstance(value, Lambda):
            return value.call([self.eval(a, row, scope) for a in e.args])
        raise QueryError(f"cannot call a {typeof(value)} as a function")

    def binary(self, op: str, a: Any, b: Any) -> Any:
        try:
            return self._binary(op, a, b)
        except (OverflowError, ValueError) as exc:  # a date past year 9999, a float too big
            raise QueryError(f"'{op}' on {typeof(a)} and {typeof(b)}: result out of range ({exc})") from None

    def _binary(self, op: str, a: Any, b: Any) -> Any:
        if op in ("=", "!=", "<", "<=", ">", ">="):
            c = compare(a, b)
            return {"=": c == 0, "!=": c != 0, "<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[op]
        if a is None or b is None:
            return None
        ta, tb = typeof(a), typeof(b)
        if ta == tb == "number":
            # JavaScript numbers are doubles: an integer past 2^53 becomes a float, which
            # also keeps a doubling reduce from growing a million-digit integer
            if op == "+":
                return _js_number(a + b)
            if op == "-":
                return _js_number(a - b)
            if op == "*":
                return _js_number(a * b)
            if op == "/":
                if b == 0:
                    return None
                r = a / b
                return (
                    int(r)
                    if isinstance(r, float) and r.is_integer() and isinstance(a, int) and isinstance(b, int)
                    else r
                )
            if op == "%":
                return (
                    None
                    if b == 0
                    else math.fmod(a, b)
                    if isinstance(a, float) or isinstance(b, float)
                    else int(math.fmod(a, b))
                )
        if op == "+":
            if ta == "string" or tb == "string":
                left, right = to_string(a), to_string(b)
                self.budget.string_size(len(left) + len(right), "'+'")
                return left + right
            if ta == "date" and tb == "duration":
                return add_duration(a, b)
            if ta == "duration" and tb == "date":
                return add_duration(b, a)
            if ta == tb == "duration":
                return a + b
            if ta == tb == "array":
                self.budget.list_size(len(a) + len(b), "'+'")
                return a + b
            if ta == tb == "object" and isinstance(a, dict) and isinstance(b, dict):
                return {**a, **b}
        if op == "-":
            if ta == tb == "date":
                return date_difference(a, b)
            if ta == "date" and tb == "duration":
                return add_duration(a, -b)
            if ta == tb == "duration":
                return a + (-b)
        if op == "*":
            if ta == "duration" and tb == "number":
                return a.scale(b)
            if ta == "number" and tb == "duration":
                return b.scale(a)
            if ta == "number" and tb == "string":
                a, b = b, a
                ta, tb = tb, ta
            if ta == "string" and tb == "number":
                if not math.isfinite(b):
                    raise QueryError(f"cannot repeat a string {b} times")
                self.budget.string_size(len(a) * max(int(b), 0), "'*'")
                return a * int(b)
        if op == "/" and ta == "duration" and tb == "number":
            return None if b == 0 else a.scale(1 / b)
        raise QueryError(f"cannot apply '{op}' to {ta} and {tb}")


def _js_number(n: Any) -> Any:
    if type(n) is int and not -(2**53) <= n <= 2**53:
        return float(n)
    return n


def guarded(run: Any) -> Any:
    """Run ``run()`` so that whatever goes wrong surfaces as one QueryError line."""
    try:
        return run()
    except QueryError:
        raise
    except RecursionError:
        raise QueryError("query nested too deeply to evaluate (or a function calls itself without end)") from None
    except MemoryError:
        raise QueryError("query ran out of memory") from None
    except (OverflowError, ValueError, ArithmeticError) as exc:
        raise QueryError(f"value out of range: {exc}") from None
    except (TypeError, AttributeError, KeyError, IndexError) as exc:
        raise QueryError(f"cannot evaluate the query: {exc}") from None


# ---- running a query -------------------------------------------------------------------------


@dataclass
class ResultRow:
    path: str | None  # the note of a page row; None for a group
    id: Any  # file link, or the group key
    values: list[Any]  # one per column (TABLE), one or none (LIST)
    group: list[ResultRow] | None = None  # member rows of a GROUP BY row
    task: dict[str, Any] | None = None


@dataclass
class Result:
    type: str  # "list" | "table" | "task"
    headers: list[str]  # column headers (TABLE) or ["value"] (LIST with an expression)
    id_header: str | None  # "File", the GROUP BY name, or None for WITHOUT ID
    rows: list[ResultRow]
    grouped: bool = False


def select_paths(source: ast.Source | None, corpus: Corpus, ctx: Context) -> list[str]:
    if source is None:
        return sorted(corpus.paths())
    return sorted(_source(source, corpus, ctx))


def _source(s: ast.Source, corpus: Corpus, ctx: Context) -> set[str]:
    if isinstance(s, ast.TagSource):
        return corpus.tagged(s.tag)
    if isinstance(s, ast.FolderSource):
        return corpus.in_folder(s.path)
    if isinstance(s, ast.LinkSource):
        if not s.target:
            if ctx.this is None:
                raise QueryError("FROM [[]] needs the current note (a note's query block or --this NOTE)")
            path = ctx.this.path
        else:
            path = corpus.resolve(s.target) or s.target
        if s.outgoing:
            known = set(corpus.paths())
            return {p for p in corpus.links_of(path) if p in known}
        return corpus.linking_to(path)
    if isinstance(s, ast.AndSource):
        return _source(s.left, corpus, ctx) & _source(s.right, corpus, ctx)
    if isinstance(s, ast.OrSource):
        return _source(s.left, corpus, ctx) | _source(s.right, corpus, ctx)
    if isinstance(s, ast.NotSource):
        return set(corpus.paths()) - _source(s.inner, corpus, ctx)
    if isinstance(s, ast.CsvSource):
        raise QueryError(f'csv("{s.path}") must be the whole FROM: its rows are not notes to combine')
    raise QueryError(f"unknown source {s!r}")  # pragma: no cover


def _group_key(v: Any) -> Any:
    """A hashable stand-in that is equal exactly when Dataview's compare says 0."""
    t = typeof(v)
    if t == "string":
        return (t, v)
    if t == "link":
        return (t, v.path.casefold(), v.subpath or "", v.type)
    if t == "date":
        return (t, naive_local(v))
    if t == "array":
        return (t, tuple(_group_key(x) for x in v))
    if t == "object":
        d = v.to_dict() if isinstance(v, Record) and not v.path else v
        if isinstance(d, Record):
            return (t, d.path)
        return (t, tuple(sorted((str(k), _group_key(x)) for k, x in d.items())))
    if t == "duration":
        return (t, v.approx_seconds())
    if t == "number":
        return (t, float(v))
    if t == "function":
        return (t, id(v))
    return (t, v)


def execute(
    query: ast.Query | str,
    corpus: Corpus,
    *,
    this: Page | None = None,
    now: _dt.datetime | None = None,
    limits: Limits | None = None,
    budget: Budget | None = None,
) -> Result:
    """Run ``query`` (text or parsed) over ``corpus``; ``this`` is the note holding the query.

    ``limits`` (or a shared ``budget``) bounds rows, sizes and time; past one, QueryError."""
    q = parse_query(query) if isinstance(query, str) else query
    budget = budget or Budget(limits or DEFAULT_LIMITS)
    # a query allocates thousands of small dicts and no reference cycles: pausing the
    # cyclic garbage collector meanwhile saves its repeated full scans (~20% here)
    paused = gc.isenabled()
    gc.disable()
    try:
        return guarded(lambda: _execute(q, corpus, this, now, budget))
    finally:
        if paused:
            gc.enable()


def _execute(q: ast.Query, corpus: Corpus, this: Page | None, now: _dt.datetime | None, budget: Budget) -> Result:
    ctx = Context(corpus, this, now or _dt.datetime.now(), budget)
    if isinstance(q.source, ast.CsvSource):
        from kb.query.csvsource import read_csv_rows  # FROM csv(): rare, and its module loads csv

        if q.type == "task":
            raise QueryError("TASK cannot read a CSV file (its rows have no tasks)")
        rows: list[Row] = [
            Row(r)
            for r in read_csv_rows(
                q.source.path, getattr(corpus, "root", None), this.path if this is not None else None, budget
            )
        ]
        return _run_commands(q, rows, ctx, budget)
    paths = select_paths(q.source, corpus, ctx)
    names = scalar_names(q) if len(paths) >= SCALAR_MIN_PAGES else None
    known = corpus.scalar_fields(paths, sorted(names)) if names is not None else None
    if known:
        full = {p.path: p for p in corpus.pages([p for p in paths if p not in known])}
        rows = [
            Row(ScalarPage(p, known[p], corpus)) if p in known else Row(full[p])
            for p in paths
            if p in known or p in full
        ]
        return _run_commands(q, rows, ctx, budget, corpus)
    pages = corpus.pages(paths)
    if q.type == "task":
        rows = [Row(TaskRecord(t, p)) for p in pages for t in p.file.get("tasks")]
    else:
        rows = [Row(p) for p in pages]
    return _run_commands(q, rows, ctx, budget)


# From this many pages on, a query whose WHERE and SORT read only plain fields runs them
# over ScalarPages (values kept in the index) instead of decoding every note; below it,
# decoding costs less than the look-up.
SCALAR_MIN_PAGES = 200
# file.* fields a ScalarPage answers (from its path alone)
_PATH_FIELDS = frozenset({"name", "path", "folder", "ext", "link"})
# row names that are not page fields, or that Page.get answers other than by Page.field
_NOT_FIELDS = frozenset({"file", "row", "rows", "questions", "claims"})


def scalar_names(q: ast.Query) -> set[str] | None:
    """The page fields read by a LIST or TABLE query whose commands are only WHERE, SORT
    and LIMIT and whose expressions there read nothing else of a row than those fields,
    ``file.name/path/folder/ext/link`` and ``this``; else None (the query runs on whole
    pages). Columns are not looked at: they are computed on the real pages."""
    if q.type not in ("list", "table"):
        return None
    names: set[str] = set()
    for cmd in q.commands:
        if isinstance(cmd, ast.Where):
            exprs = [cmd.expr]
        elif isinstance(cmd, ast.Sort):
            exprs = [k.expr for k in cmd.keys]
        elif isinstance(cmd, ast.Limit):
            continue  # evaluated without a row
        else:
            return None
        if not all(_plain_reads(e, names) for e in exprs):
            return None
    return names


def _plain_reads(e: Any, names: set[str]) -> bool:
    """Add the row fields ``e`` reads to ``names``; False if it reads a row any other way.
    Walked with a stack, not recursion: a chain of 1,600 ORs is a valid query."""
    stack: list[Any] = [e]  # Any: the checks below are on type(e), which mypy does not narrow
    while stack:
        e = stack.pop()
        t = type(e)
        if t is ast.Literal or t is ast.LinkExpr:
            continue
        if t is ast.Variable:
            if e.name == "this":
                continue
            if e.name in _NOT_FIELDS:
                return False
            names.add(e.name)
        elif t is ast.Dot:
            if type(e.obj) is ast.Variable and e.obj.name == "file":
                if e.name not in _PATH_FIELDS:
                    return False
            else:
                stack.append(e.obj)
        elif t is ast.Binary:
            stack += [e.left, e.right]
        elif t is ast.Unary:
            stack.append(e.operand)
        elif t is ast.Index:
            stack += [e.obj, e.index]
        elif t is ast.Call:
            # a built-in function sees its arguments only; any other name may be a row's lambda
            func = e.func
            if type(func) is not ast.Variable or func.name.lower() not in FUNCTIONS:
                return False
            stack += e.args
        elif t is ast.ListExpr:
            stack += e.items
        elif t is ast.ObjectExpr:
            stack += [x for _, x in e.items]
        else:
            return False  # a lambda (its parameters shadow fields), or a node added later
    return True


def _row_sort_key(ctx: Context, expr: ast.Expr) -> Callable[[Row], Any]:
    """The sort key of a row under one SORT key expression."""
    value = row_function(ctx, expr)
    return lambda r: sort_key(value(r))


def row_function(ctx: Context, e: Any) -> Callable[[Any], Any]:
    """``lambda row: ctx.eval(e, row)``, with the tree walked once instead of once per row:
    literals, fields, ``.``, operators and ``and``/``or`` become closures over the same
    helpers ``eval`` calls, so they give the same values and errors; anything else
    (function calls, lists, indexing, links, lambdas) is handed to ``eval`` whole."""
    t = type(e)
    if t is ast.Literal:
        value = e.value
        return lambda row: value
    if t is ast.Variable:
        name = e.name
        if name == "this":
            return lambda row: ctx.this
        if name == "row":  # row["Field With Spaces"]: eval knows the fallback
            return lambda row: ctx.eval(e, row)
        return lambda row: None if row is None else row.get(name)
    if t is ast.Dot:
        obj, field_name = row_function(ctx, e.obj), e.name
        return lambda row: get_field(obj(row), field_name, ctx)
    if t is ast.Binary:
        op = e.op
        if op == "and" or op == "or":
            # a chain nests on the left (Context.logical): gather it without recursion
            operands = [e.right]
            node: Any = e.left
            while type(node) is ast.Binary and node.op == op:
                operands.append(node.right)
                node = node.left
            operands.append(node)
            parts = [row_function(ctx, x) for x in reversed(operands)]
            stop = op == "or"  # the value that decides the whole chain

            def chain(row: Any) -> bool:
                for part in parts:
                    if truthy(part(row)) is stop:
                        return stop
                return not stop

            return chain
        left, right, binary = row_function(ctx, e.left), row_function(ctx, e.right), ctx.binary
        return lambda row: binary(op, left(row), right(row))
    return lambda row: ctx.eval(e, row)


def _run_commands(q: ast.Query, rows: list[Row], ctx: Context, budget: Budget, corpus: Corpus | None = None) -> Result:
    """Run the commands over ``rows``, then compute the columns; ``corpus`` is where the
    real pages of any ScalarPage rows left come from, before the columns."""
    budget.rows(len(rows), q.type.upper())
    group_name: str | None = None
    for cmd in q.commands:
        budget.check_time()
        if isinstance(cmd, ast.Where):
            keep = row_function(ctx, cmd.expr)
            rows = [r for r in rows if truthy(keep(r))]
        elif isinstance(cmd, ast.Sort):
            for key in reversed(cmd.keys):
                rows.sort(key=_row_sort_key(ctx, key.expr), reverse=key.descending)
        elif isinstance(cmd, ast.Limit):
            n = ctx.eval(cmd.expr, None)
            if not isinstance(n, (int, float)) or isinstance(n, bool) or n < 0 or math.isnan(n):
                got = to_string(n) if typeof(n) == "number" else typeof(n)
                raise QueryError(f"LIMIT needs a non-negative number, got {got}")
            rows = rows[: int(n)] if n < len(rows) else rows
        elif isinstance(cmd, ast.Flatten):
            out: list[Row] = []
            for r in rows:
                v = ctx.eval(cmd.expr, r)
                values = v if isinstance(v, list) else [v]
                budget.rows(len(out) + len(values), "FLATTEN")
                for x in values:
                    out.append(Row(r.base, {**r.bindings, cmd.name: x}))
                budget.tick()
            rows = out
        elif isinstance(cmd, ast.GroupBy):
            groups: dict[Any, tuple[Any, list[Row]]] = {}
            for r in rows:
                k = ctx.eval(cmd.expr, r)
                groups.setdefault(_group_key(k), (k, []))[1].append(r)
            ordered = sorted(groups.values(), key=lambda kv: SortKey(kv[0]))
            rows = [Row(None, {cmd.name: k, "rows": members}) for k, members in ordered]
            group_name = cmd.name
    if corpus is not None:
        stand_ins = [r.base.path for r in rows if isinstance(r.base, ScalarPage)]
        if stand_ins:
            real = {p.path: p for p in corpus.pages(stand_ins)}
            rows = [Row(real[r.base.path], r.bindings) if isinstance(r.base, ScalarPage) else r for r in rows]
    return _shape(q, rows, ctx, group_name)


def _shape(q: ast.Query, rows: list[Row], ctx: Context, group_name: str | None) -> Result:
    grouped = group_name is not None
    out: list[ResultRow] = []
    if q.type == "task":
        for r in rows:
            if group_name is not None:
                members = [
                    ResultRow(m.path, None, [], task=m.base.task if isinstance(m.base, TaskRecord) else None)
                    for m in r.bindings["rows"]
                    if isinstance(m, Row)
                ]
                out.append(ResultRow(None, r.bindings[group_name], [], group=members))
            else:
                task = r.base.task if isinstance(r.base, TaskRecord) else None
                out.append(ResultRow(r.path, Link(r.path) if r.path else None, [], task=task))
        return Result("task", [], group_name or "File", out, grouped)
    headers = [c.name for c in q.columns]
    if q.type == "list" and q.columns:
        headers = ["value"]
    for r in rows:
        values = [ctx.eval(c.expr, r) for c in q.columns]
        if group_name is not None:
            members = [
                ResultRow(m.path, Link(m.path) if m.path else None, [])
                for m in r.bindings["rows"]
                if isinstance(m, Row)
            ]
            out.append(ResultRow(None, r.bindings[group_name], values, group=members))
        else:
            out.append(ResultRow(r.path, Link(r.path) if r.path else getattr(r.base, "id", None), values))
    id_header = None if q.without_id else (group_name or "File")
    return Result(q.type, headers, id_header, out, grouped)
