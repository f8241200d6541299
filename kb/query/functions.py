"""Dataview's built-in functions.

Each function takes already evaluated arguments. Functions marked ``vector`` apply
element-wise when their first argument is a list (``lower(["A", "B"]) = ["a", "b"]``),
as Dataview's do. A wrong argument type raises :class:`QueryError` naming the function.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kb.query.errors import QueryError
from kb.query.values import (
    Duration,
    Lambda,
    LazyModule,
    Link,
    Record,
    SortKey,
    compare,
    link_from_text,
    naive_local,
    parse_date,
    parse_duration,
    relative_date,
    to_string,
    truthy,
    typeof,
)

_regex = LazyModule("regex")  # JavaScript-style patterns; imported when a query uses one


@dataclass
class Function:
    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None
    vector: tuple[int, ...] = ()  # argument positions applied element-wise when lists


FUNCTIONS: dict[str, Function] = {}


def fn(
    name: str, min_args: int, max_args: int | None = -1, vector: bool | tuple[int, ...] = False, aliases: tuple = ()
):
    """Register a function; ``vector=True`` maps it over a list first argument, a tuple of
    positions over every list among those arguments, element by element (Dataview's
    ``vectorize``: ``replace(["a", "b"], ["a", "b"], "d")`` = ``["d", "d"]``)."""
    positions = (0,) if vector is True else tuple(vector or ())

    def deco(impl):
        top = min_args if max_args == -1 else max_args
        for n in (name, *aliases):
            FUNCTIONS[n] = Function(n, impl, min_args, top, positions)
        return impl

    return deco


def call_function(name: str, args: list[Any], ctx: Any) -> Any:
    f = FUNCTIONS.get(name.lower())
    if f is None:
        raise QueryError(f"unknown function '{name}'")
    if len(args) < f.min_args or (f.max_args is not None and len(args) > f.max_args):
        want = (
            f"{f.min_args}"
            if f.max_args == f.min_args
            else f"{f.min_args} or more"
            if f.max_args is None
            else f"{f.min_args} to {f.max_args}"
        )
        raise QueryError(f"{name}() takes {want} argument{'s' if want != '1' else ''}, got {len(args)}")
    lists = [i for i in f.vector if i < len(args) and isinstance(args[i], list)]
    if lists:
        # as Dataview: the shortest list sets the length, other arguments repeat
        n = min(len(args[i]) for i in lists)
        out = []
        for k in range(n):
            out.append(_apply(f, [a[k] if i in lists else a for i, a in enumerate(args)], ctx))
        return out
    return _apply(f, args, ctx)


def _apply(f: Function, args: list[Any], ctx: Any) -> Any:
    try:
        return f.impl(ctx, *args)
    except QueryError:
        raise
    except re.error as exc:
        raise QueryError(f"{f.name}(): bad regular expression: {exc}") from None
    except (TypeError, ValueError, AttributeError, OverflowError, IndexError, KeyError) as exc:
        types = ", ".join(typeof(a) for a in args)
        raise QueryError(f"{f.name}() cannot take ({types}): {exc}") from None


def _need(name: str, value: Any, *types: str) -> None:
    if typeof(value) not in types:
        raise QueryError(f"{name}() expected {' or '.join(types)}, got {typeof(value)}")


def _call_lambda(name: str, func: Any, *args: Any) -> Any:
    if not isinstance(func, Lambda):
        raise QueryError(f"{name}() expected a function such as (x) => x, got {typeof(func)}")
    return func.call(list(args))


def _listify(name: str, args: tuple) -> list[Any]:
    if len(args) == 1 and isinstance(args[0], list):
        return args[0]
    return list(args)


# ---- constructors -------------------------------------------------------------------------


@fn("object", 0, None)
def _object(ctx, *args):
    if len(args) % 2:
        raise QueryError("object() needs key, value pairs")
    out = {}
    for k, v in zip(args[::2], args[1::2]):
        _need("object", k, "string")
        out[k] = v
    return out


@fn("list", 0, None, aliases=("array",))
def _list(ctx, *args):
    return list(args)


@fn("date", 1, 2)
def _date(ctx, value, fmt=None):
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, Link):
        # as Dataview: the display text, then the path, then the linked note's file.day
        for text in (value.display, value.path):
            day = parse_date(text) if text else None
            if day is not None:
                return day
        page = ctx.link_page(value)
        return page.file.get("day") if page is not None else None
    if isinstance(value, str):
        if fmt is not None:
            _need("date", fmt, "string")
            if fmt in ("x", "X"):  # milliseconds / seconds since 1970
                m = re.search(r"-?\d+(?:\.\d+)?", value)
                if not m:
                    raise QueryError(f"date(): {value!r} is not a number (format {fmt})")
                try:
                    return _dt.datetime.fromtimestamp(float(m.group()) / (1000 if fmt == "x" else 1))
                except (ValueError, OverflowError, OSError):
                    raise QueryError(f"date(): {m.group()} is out of range (format {fmt})") from None
            try:
                return _dt.datetime.strptime(value, luxon_to_strftime(fmt))
            except (ValueError, OverflowError):
                return None
        rel = relative_date(value, ctx.now)
        return rel if rel is not None else parse_date(value)
    _need("date", value, "string", "date", "link")


@fn("dur", 1)
def _dur(ctx, value):
    if value is None or isinstance(value, Duration):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    _need("dur", value, "string", "duration")


@fn("number", 1, vector=True)
def _number(ctx, value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        m = re.search(r"-?\d+(?:\.\d+)?", value)
        if not m:
            return None
        s = m.group()
        return float(s) if "." in s else int(s)
    return None


@fn("string", 1)
def _string(ctx, value):
    return to_string(value)


@fn("link", 1, 2, vector=True)
def _link(ctx, path, display=None):
    if path is None:
        return None
    if isinstance(path, Link):
        return Link(path.path, display or path.display, path.subpath, path.embed, path.type)
    _need("link", path, "string")
    ln = link_from_text(path)
    resolved = ctx.corpus.resolve(ln.path) if ctx.corpus is not None else None
    return Link(resolved or ln.path, display if display is not None else ln.display, ln.subpath, False, ln.type)


@fn("embed", 1, 2)
def _embed(ctx, link, flag=True):
    _need("embed", link, "link")
    return Link(link.path, link.display, link.subpath, truthy(flag), link.type)


@fn("elink", 1, 2)
def _elink(ctx, url, display=None):
    _need("elink", url, "string")
    return f"[{display}]({url})" if display else url


@fn("typeof", 1)
def _typeof(ctx, value):
    return typeof(value)


# ---- numbers ------------------------------------------------------------------------------


def _num(name, v):
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise QueryError(f"{name}() expected number, got {typeof(v)}")
    return v


def _js_round(x: float) -> float:
    return math.floor(x + 0.5)


@fn("round", 1, 2, vector=True)
def _round(ctx, x, digits=None):
    if x is None:
        return None
    _num("round", x)
    if digits is None or digits == 0:
        return int(_js_round(x))
    scale = 10 ** _num("round", digits)
    return _js_round(x * scale) / scale


@fn("trunc", 1, vector=True)
def _trunc(ctx, x):
    return None if x is None else int(math.trunc(_num("trunc", x)))


@fn("floor", 1, vector=True)
def _floor(ctx, x):
    return None if x is None else int(math.floor(_num("floor", x)))


@fn("ceil", 1, vector=True)
def _ceil(ctx, x):
    return None if x is None else int(math.ceil(_num("ceil", x)))


@fn("min", 0, None)
def _min(ctx, *args):
    values = [v for v in _listify("min", args)]
    if not values:
        return None
    best = values[0]
    for v in values[1:]:
        if compare(v, best) < 0:
            best = v
    return best


@fn("max", 0, None)
def _max(ctx, *args):
    values = [v for v in _listify("max", args)]
    if not values:
        return None
    best = values[0]
    for v in values[1:]:
        if compare(v, best) > 0:
            best = v
    return best


def _fold(ctx, values, op: str):
    """Combine a list with a binary operator, left to right (a non-list is returned as is,
    an empty list gives null, as in Dataview)."""
    if not isinstance(values, list):
        return values
    if not values:
        return None
    total = values[0]
    for v in values[1:]:
        total = ctx.binary(op, total, v)
    return total


@fn("sum", 1)
def _sum(ctx, values):
    return _fold(ctx, values, "+")


@fn("product", 1)
def _product(ctx, values):
    return _fold(ctx, values, "*")


@fn("average", 1)
def _average(ctx, values):
    if not isinstance(values, list):
        return values
    if not values:
        return None
    total = _sum(ctx, values)
    return ctx.binary("/", total, len(values))


@fn("reduce", 2)
def _reduce(ctx, values, op):
    if not isinstance(values, list):
        return values
    if not values:
        return None
    if isinstance(op, Lambda):
        acc = values[0]
        for v in values[1:]:
            acc = op.call([acc, v])
        return acc
    _need("reduce", op, "string", "function")
    if op not in ("+", "-", "*", "/", "&", "|"):
        raise QueryError(f"reduce(): unknown operand {op!r} (use + - * / & |)")
    acc = values[0]
    for v in values[1:]:
        if op == "&":
            acc = truthy(acc) and truthy(v)
        elif op == "|":
            acc = truthy(acc) or truthy(v)
        else:
            acc = ctx.binary(op, acc, v)
    return acc


@fn("minby", 2)
def _minby(ctx, values, func):
    if not isinstance(values, list) or not values:
        return None
    return min(values, key=lambda v: SortKey(_call_lambda("minby", func, v)))


@fn("maxby", 2)
def _maxby(ctx, values, func):
    if not isinstance(values, list) or not values:
        return None
    return max(values, key=lambda v: SortKey(_call_lambda("maxby", func, v)))


# ---- containers ---------------------------------------------------------------------------


def _contains(haystack, needle, *, fold: bool, exact: bool) -> bool:
    if haystack is None:
        return False
    if isinstance(haystack, str):
        if not isinstance(needle, str):
            needle = to_string(needle)
        return needle.casefold() in haystack.casefold() if fold else needle in haystack
    if isinstance(haystack, list):
        if exact:
            return any(compare(x, needle) == 0 for x in haystack)
        return any(_contains(x, needle, fold=fold, exact=exact) for x in haystack)
    if isinstance(haystack, (dict, Record)):
        keys = haystack.keys()
        if not isinstance(needle, str):
            return False
        if fold:
            return needle.casefold() in {str(k).casefold() for k in keys}
        return needle in keys
    if isinstance(haystack, Link) and isinstance(needle, Link):
        return compare(haystack, needle) == 0
    if fold and isinstance(needle, str):
        return needle.casefold() in to_string(haystack).casefold()
    return compare(haystack, needle) == 0


@fn("contains", 2)
def _fcontains(ctx, haystack, needle):
    return _contains(haystack, needle, fold=False, exact=False)


@fn("icontains", 2)
def _ficontains(ctx, haystack, needle):
    return _contains(haystack, needle, fold=True, exact=False)


@fn("econtains", 2)
def _fecontains(ctx, haystack, needle):
    return _contains(haystack, needle, fold=False, exact=True)


@fn("containsword", 2, vector=True)
def _containsword(ctx, text, word):
    if text is None:
        return False
    _need("containsword", text, "string")
    _need("containsword", word, "string")
    return bool(re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, re.I))


@fn("extract", 1, None)
def _extract(ctx, obj, *keys):
    _need("extract", obj, "object")
    get = obj.get
    return {k: get(k) for k in keys}


@fn("sort", 1, 2)
def _sort(ctx, values, func=None):
    if not isinstance(values, list):
        return values
    if func is None:
        return sorted(values, key=SortKey)
    return sorted(values, key=lambda v: SortKey(_call_lambda("sort", func, v)))


@fn("reverse", 1)
def _reverse(ctx, values):
    if isinstance(values, str):
        return values[::-1]
    return list(reversed(values)) if isinstance(values, list) else values


@fn("length", 1)
def _length(ctx, value):
    if value is None:
        return 0
    if isinstance(value, (list, str, dict)):
        return len(value)
    if isinstance(value, Record):
        return len(value.keys())
    return 0


@fn("nonnull", 0, None)
def _nonnull(ctx, *args):
    """``nonnull(list)`` drops the nulls of a list; ``nonnull(a, b, ...)`` of its arguments."""
    values = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    return [v for v in values if v is not None]


@fn("firstvalue", 1)
def _firstvalue(ctx, values):
    if values is None:
        return None
    _need("firstvalue", values, "array")
    return next((v for v in values if v is not None), None)


def _predicate(name, args):
    if len(args) == 2 and isinstance(args[1], Lambda) and isinstance(args[0], list):
        return [truthy(args[1].call([v])) for v in args[0]]
    return [truthy(v) for v in _listify(name, args)]


@fn("all", 1, None)
def _all(ctx, *args):
    return all(_predicate("all", args))


@fn("any", 1, None)
def _any(ctx, *args):
    return any(_predicate("any", args))


@fn("none", 1, None)
def _none(ctx, *args):
    return not any(_predicate("none", args))


@fn("join", 1, 2)
def _join(ctx, values, sep=", "):
    if not isinstance(values, list):
        return to_string(values)
    sep = to_string(sep)
    pieces = [to_string(v) for v in values]
    ctx.budget.string_size(sum(map(len, pieces)) + len(sep) * max(len(pieces) - 1, 0), "join()")
    return sep.join(pieces)


@fn("filter", 2)
def _filter(ctx, values, func):
    if not isinstance(values, list):
        return values
    return [v for v in values if truthy(_call_lambda("filter", func, v))]


@fn("map", 2)
def _map(ctx, values, func):
    if not isinstance(values, list):
        return values
    return [_call_lambda("map", func, v) for v in values]


@fn("flat", 1, 2)
def _flat(ctx, values, depth=1):
    if not isinstance(values, list):
        return values

    budget = ctx.budget
    out: list[Any] = []

    def go(xs, d):
        for x in xs:
            if isinstance(x, list) and d > 0:
                budget.list_size(len(out) + len(x), "flat()")
                go(x, d - 1)
            else:
                out.append(x)

    depth = _num("flat", depth)
    go(values, int(min(depth, 1000)) if math.isfinite(depth) else 1000)
    return out


@fn("slice", 1, 3)
def _slice(ctx, values, start=None, end=None):
    _need("slice", values, "array", "string")
    return values[slice(start, end)]


@fn("unique", 1)
def _unique(ctx, values):
    if not isinstance(values, list):
        return values
    out: list[Any] = []
    for v in values:
        if not any(compare(v, u) == 0 for u in out):
            out.append(v)
    return out


# ---- strings ------------------------------------------------------------------------------


def _str(name, v):
    if not isinstance(v, str):
        raise QueryError(f"{name}() expected string, got {typeof(v)}")
    return v


_MAX_PATTERN = 2_000  # characters in one regular expression


@functools.lru_cache(maxsize=256)
def _compile_js(pattern: str) -> Any:
    return _regex.compile(pattern, _regex.V0)


def _js_regex(name: str, pattern: str) -> Any:
    """A JavaScript regular expression, compiled with the ``regex`` module, which reads the
    JavaScript forms that matter (``(?<name>...)``, character classes, lookbehind) and, unlike ``re``,
    can stop a search after a time limit (``(a+)+$`` on ``aaa...a!`` backtracks for ever)."""
    if len(pattern) > _MAX_PATTERN:
        raise QueryError(
            f"{name}(): a regular expression of {len(pattern):,} characters is over the "
            f"{_MAX_PATTERN:,}-character limit"
        )
    try:
        return _compile_js(pattern)
    except _regex.error as exc:
        raise QueryError(f"{name}(): bad regular expression: {exc}") from None


def _timed(name: str, ctx: Any, run: Callable[[float], Any]) -> Any:
    """Run one regex operation under the query's regex time limit."""
    budget = ctx.budget
    try:
        return run(budget.regex_timeout())
    except TimeoutError:
        raise QueryError(
            f"{name}(): the regular expression took longer than "
            f"{budget.limits.regex_time_s:g} s (catastrophic backtracking?)"
        ) from None


@fn("regextest", 2, vector=(0, 1))
def _regextest(ctx, pattern, text):
    if text is None or pattern is None:
        return False
    compiled = _js_regex("regextest", _str("regextest", pattern))
    text = _str("regextest", text)
    return _timed("regextest", ctx, lambda t: compiled.search(text, timeout=t) is not None)


@fn("regexmatch", 2, vector=(0, 1))
def _regexmatch(ctx, pattern, text):
    if text is None or pattern is None:
        return False
    pattern = _str("regexmatch", pattern)
    # Dataview anchors a pattern at both ends unless it already starts with ^ or ends with $
    if not pattern.startswith("^") and not pattern.endswith("$"):
        pattern = "^" + pattern + "$"
    compiled = _js_regex("regexmatch", pattern)
    text = _str("regexmatch", text)
    return _timed("regexmatch", ctx, lambda t: compiled.search(text, timeout=t) is not None)


def _js_replacement(repl: str) -> Callable[[Any], str]:
    """JavaScript's replacement string: ``$1``, ``$<name>``, ``$&`` and ``$$``."""
    parts = _regex.split(r"(\$\$|\$&|\$\d{1,2}|\$<[^>]*>)", repl)

    def expand(m: Any) -> str:
        out = []
        for i, p in enumerate(parts):
            if i % 2 == 0:
                out.append(p)
            elif p == "$$":
                out.append("$")
            elif p == "$&":
                out.append(m.group(0))
            elif p.startswith("$<"):
                try:
                    out.append(m.group(p[2:-1]) or "")
                except (IndexError, _regex.error):
                    out.append(p)
            else:
                k = int(p[1:])
                out.append((m.group(k) or "") if k <= len(m.groups()) else p)
        return "".join(out)

    return expand


@fn("regexreplace", 3, vector=(0, 1, 2))
def _regexreplace(ctx, text, pattern, repl):
    if text is None or pattern is None or repl is None:
        return None
    text = _str("regexreplace", text)
    compiled = _js_regex("regexreplace", _str("regexreplace", pattern))
    expand = _js_replacement(_str("regexreplace", repl))
    budget, grown = ctx.budget, [len(text)]

    def replace(m: Any) -> str:
        piece = expand(m)
        grown[0] += len(piece) - (m.end() - m.start())
        budget.string_size(grown[0], "regexreplace()")
        return piece

    return _timed("regexreplace", ctx, lambda t: compiled.sub(replace, text, timeout=t))


@fn("replace", 3, vector=(0, 1, 2))
def _replace(ctx, text, old, new):
    if text is None or old is None or new is None:
        return None
    text, old, new = _str("replace", text), _str("replace", old), _str("replace", new)
    # JavaScript's split-then-join: an empty pattern goes between every character
    count = len(text) + 1 if old == "" else text.count(old)
    ctx.budget.string_size(len(text) + count * (len(new) - len(old)), "replace()")
    if old == "":
        return new.join(text)
    return text.replace(old, new)


@fn("lower", 1, vector=True)
def _lower(ctx, text):
    return None if text is None else _str("lower", text).lower()


@fn("upper", 1, vector=True)
def _upper(ctx, text):
    return None if text is None else _str("upper", text).upper()


@fn("split", 2, 3, vector=(0, 1))
def _split(ctx, text, sep, limit=None):
    if text is None or sep is None:
        return None
    compiled = _js_regex("split", _str("split", sep))
    text = _str("split", text)
    pieces = _timed("split", ctx, lambda t: compiled.split(text, timeout=t))
    parts = [p if p is not None else "" for p in pieces]
    return parts[: max(int(_num("split", limit)), 0)] if limit is not None else parts


@fn("startswith", 2, vector=True)
def _startswith(ctx, text, prefix):
    return False if text is None else _str("startswith", text).startswith(_str("startswith", prefix))


@fn("endswith", 2, vector=True)
def _endswith(ctx, text, suffix):
    return False if text is None else _str("endswith", text).endswith(_str("endswith", suffix))


def _padding(name: str, ctx, text, n, pad) -> tuple[str, str]:
    text = to_string(text)
    n = _num(name, n)
    if not math.isfinite(n):
        raise QueryError(f"{name}(): cannot pad to {to_string(n)} characters")
    ctx.budget.string_size(int(n), f"{name}()")
    pad = to_string(pad)
    need = int(n) - len(text)
    if need <= 0 or not pad:
        return text, ""
    return text, (pad * (need // len(pad) + 1))[:need]


@fn("padleft", 2, 3, vector=True)
def _padleft(ctx, text, n, pad=" "):
    text, fill = _padding("padleft", ctx, text, n, pad)
    return fill + text


@fn("padright", 2, 3, vector=True)
def _padright(ctx, text, n, pad=" "):
    text, fill = _padding("padright", ctx, text, n, pad)
    return text + fill


@fn("substring", 2, 3, vector=True)
def _substring(ctx, text, start, end=None):
    if text is None:
        return None
    text = _str("substring", text)
    return text[int(_num("substring", start)) : (None if end is None else int(_num("substring", end)))]


@fn("truncate", 2, 3, vector=True)
def _truncate(ctx, text, n, suffix="..."):
    if text is None:
        return None
    text = _str("truncate", text)
    n = int(_num("truncate", n))
    if len(text) <= n:
        return text
    keep = max(n - len(suffix), 0)
    return text[:keep] + suffix


# ---- utilities ----------------------------------------------------------------------------


@fn("default", 2, vector=(0, 1))
def _default(ctx, value, fallback):
    """Vectorised in both arguments, as Dataview documents (``ldefault`` is not)."""
    return fallback if value is None else value


@fn("ldefault", 2)
def _ldefault(ctx, value, fallback):
    return fallback if value is None else value


@fn("choice", 3)
def _choice(ctx, cond, left, right):
    return left if truthy(cond) else right


@fn("striptime", 1, vector=True)
def _striptime(ctx, d):
    if d is None:
        return None
    _need("striptime", d, "date")
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


_LUXON = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("dd", "%d"),
    ("d", "%-d"),
    ("HH", "%H"),
    ("H", "%-H"),
    ("hh", "%I"),
    ("h", "%-I"),
    ("mm", "%M"),
    ("m", "%-M"),
    ("ss", "%S"),
    ("s", "%-S"),
    ("SSS", "%f"),
    ("a", "%p"),
    ("EEEE", "%A"),
    ("EEE", "%a"),
    ("cccc", "%A"),
    ("ccc", "%a"),
    ("kkkk", "%G"),
    ("WW", "%V"),
    ("ZZZZ", "%Z"),
    ("ZZ", "%z"),
    ("DDD", "%B %-d, %Y"),
    ("DD", "%b %-d, %Y"),
    ("D", "%-m/%-d/%Y"),
    ("T", "%H:%M"),
    ("t", "%-I:%M %p"),
    ("ooo", "%j"),
    ("q", "%q"),
]


def luxon_to_strftime(fmt: str) -> str:
    """Translate Luxon format tokens (what Dataview uses) into strftime; 'quoted' text is literal."""
    out = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "'":
            j = fmt.find("'", i + 1)
            j = len(fmt) if j < 0 else j
            out.append(fmt[i + 1 : j].replace("%", "%%") or "'")
            i = j + 1
            continue
        for tok, rep in _LUXON:
            if fmt.startswith(tok, i):
                out.append(rep)
                i += len(tok)
                break
        else:
            out.append("%%" if fmt[i] == "%" else fmt[i])
            i += 1
    return "".join(out)


@fn("dateformat", 2, vector=True)
def _dateformat(ctx, d, fmt):
    if d is None:
        return None
    _need("dateformat", d, "date")
    fmt = _str("dateformat", fmt)
    if fmt == "x":
        return str(int(d.timestamp() * 1000))
    spec = luxon_to_strftime(fmt)
    if "%q" in spec:
        spec = spec.replace("%q", str((d.month - 1) // 3 + 1))
    if "%f" in spec:
        spec = spec.replace("%f", f"{d.microsecond // 1000:03d}")
    return d.strftime(spec)


@fn("durationformat", 2)
def _durationformat(ctx, d, fmt):
    if d is None:
        return None
    _need("durationformat", d, "duration")
    fmt = _str("durationformat", fmt)
    # a token is a run of one unit letter standing alone; other words are literal text
    pieces = [m.group(0) for m in re.finditer(r"'[^']*'|([yMwdhmsS])\1*(?![A-Za-z])|[A-Za-z]+|[^A-Za-z']+", fmt)]

    def is_token(p: str) -> bool:
        return p[0] in "yMwdhmsS" and p == p[0] * len(p)

    used = {p[0] for p in pieces if is_token(p)}
    day = 86400.0
    months, secs = d.months, d.seconds
    values: dict[str, float] = {}
    if "y" in used:
        values["y"] = months // 12 + secs // (365 * day)
        months, secs = months % 12, secs % (365 * day)
    if "M" in used:
        values["M"] = months + secs // (30 * day)
        months, secs = 0, secs % (30 * day)
    secs += months * 30 * day
    for unit, size in (("w", 7 * day), ("d", day), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("S", 0.001)):
        if unit in used:
            values[unit], secs = divmod(secs, size)
    out = []
    for p in pieces:
        if p.startswith("'"):
            out.append(p[1:-1])
        elif is_token(p):
            out.append(str(int(values[p[0]])).zfill(len(p)))
        else:
            out.append(p)
    return "".join(out)


@fn("meta", 1)
def _meta(ctx, link):
    _need("meta", link, "link")
    return {"display": link.display, "embed": link.embed, "path": link.path, "subpath": link.subpath, "type": link.type}


def cyrb53(text: str, seed: int = 0) -> int:
    """The 53-bit string hash Dataview's ``hash()`` uses (cyrb53 by bryc, public domain),
    over UTF-16 code units as in JavaScript."""
    mask = 0xFFFFFFFF
    h1 = (0xDEADBEEF ^ seed) & mask
    h2 = (0x41C6CE57 ^ seed) & mask
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        ch = data[i] | data[i + 1] << 8
        h1 = ((h1 ^ ch) * 2654435761) & mask
        h2 = ((h2 ^ ch) * 1597334677) & mask
    h1 = ((h1 ^ (h1 >> 16)) * 2246822507) & mask
    h1 ^= ((h2 ^ (h2 >> 13)) * 3266489909) & mask
    h2 = ((h2 ^ (h2 >> 16)) * 2246822507) & mask
    h2 ^= ((h1 ^ (h1 >> 13)) * 3266489909) & mask
    return 4294967296 * (2097151 & h2) + (h1 & mask)


@fn("hash", 1, 3)
def _hash(ctx, seed, text="", variant=None):
    """``hash(seed[, text][, variant])`` (as documented; ``hash(seed, variant)`` too): a
    stable number per input, equal to Dataview's for the same arguments."""
    _need("hash", seed, "string")
    if variant is None and typeof(text) == "number":
        text, variant = "", text
    _need("hash", text, "string")
    variant = 0 if variant is None else int(_num("hash", variant))
    ctx.budget.string_size(len(seed) + len(text), "hash()")
    return cyrb53(seed + text, variant & 0xFFFFFFFF)


@fn("currencyformat", 1, 2)
def _currencyformat(ctx, n, currency="USD"):
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}.get(str(currency).upper(), str(currency) + " ")
    return f"{symbol}{_num('currencyformat', n):,.2f}"


_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_MD_MARKUP = re.compile(r"(\*\*|__|~~|==|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`+)")


def plain_markdown(text: str) -> str:
    """Markdown as readable text (Dataview's ``normalizeMarkdown``): ``[[a|b]]`` -> b,
    ``[[a]]`` -> a, ``[text](url)`` -> text, emphasis, code and strike marks removed."""
    text = re.sub(r"\[\[([^|\]\n]*?)\]\]", r"\1", text)
    text = re.sub(r"\[\[[^\]\n]*?\|([^\]\n]*?)\]\]", r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = re.sub(r"^\s{0,3}#{1,6}\s+", "", text, flags=re.M)
    return _MD_MARKUP.sub("", text)


def display_date(d: _dt.datetime) -> str:
    """Dataview's default date display: ``MMMM dd, yyyy``, with ``h:mm a - `` before it
    when there is a time of day (a date in another zone shows in local time, as Dataview)."""
    d = naive_local(d)
    day = f"{d.strftime('%B')} {d.day:02d}, {d.year}"
    if d.time() == _dt.time(0, 0):
        return day
    return f"{d.hour % 12 or 12}:{d.minute:02d} {'AM' if d.hour < 12 else 'PM'} - {day}"


@fn("display", 1)
def _display(ctx, value):
    """The text a reader sees: markup and links stripped from strings, a link's display
    text (or file name), dates as ``November 18, 2024``, lists joined with ``, ``."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_display(ctx, v) for v in value)
    if isinstance(value, str):
        return plain_markdown(value)
    if isinstance(value, Link):
        return plain_markdown(value.display) if value.display else value.name
    if isinstance(value, _dt.datetime):
        return display_date(value)
    return to_string(value)


@fn("localtime", 1, vector=True)
def _localtime(ctx, d):
    """A date written in another zone, as the same instant in local time."""
    if d is None:
        return None
    _need("localtime", d, "date")
    return naive_local(d)
