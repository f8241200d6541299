"""Dataview's value types in Python: null, number, string, boolean, date, duration, link,
array, object and function, with Dataview's ordering, truthiness and string forms.

Dates are ``datetime.datetime`` (naive, local time, like Dataview's Luxon dates in the
user's zone); durations are :class:`Duration`; links are :class:`Link`; objects are dicts
or :class:`Record` (a lazily computed page or result row).
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable


@dataclass(frozen=True)
class Link:
    """A link value: ``path`` is the resolved vault path when known, else the text written."""

    path: str
    display: str | None = None
    subpath: str | None = None
    embed: bool = False
    type: str = "file"  # "file" | "header" | "block"

    @property
    def name(self) -> str:
        base = self.path.rsplit("/", 1)[-1]
        return base[:-3] if base.lower().endswith(".md") else base

    def markdown(self) -> str:
        target = self.path[:-3] if self.path.lower().endswith(".md") else self.path
        if self.subpath:
            target += ("#^" if self.type == "block" else "#") + self.subpath
        shown = self.display if self.display is not None else (self.name if "/" in self.path else None)
        text = f"[[{target}|{shown}]]" if shown and shown != target else f"[[{target}]]"
        return ("!" if self.embed else "") + text

    def __str__(self) -> str:
        return self.markdown()


_DUR_UNITS: dict[str, tuple[int, float]] = {}  # unit -> (months, seconds) per 1
for _names, _value in (
    (("years", "year", "yrs", "yr", "y"), (12, 0.0)),
    (("months", "month", "mo"), (1, 0.0)),
    (("weeks", "week", "wks", "wk", "w"), (0, 7 * 86400.0)),
    (("days", "day", "d"), (0, 86400.0)),
    (("hours", "hour", "hrs", "hr", "h"), (0, 3600.0)),
    (("minutes", "minute", "mins", "min", "m"), (0, 60.0)),
    (("seconds", "second", "secs", "sec", "s"), (0, 1.0)),
    (("milliseconds", "millisecond", "ms"), (0, 0.001)),
):
    for _n in _names:
        _DUR_UNITS[_n] = _value

_DUR_PART = r"(\d+(?:\.\d+)?)\s*(" + "|".join(sorted(_DUR_UNITS, key=len, reverse=True)) + r")\b"
DURATION_RE = re.compile(r"\s*" + _DUR_PART + r"(?:\s*(?:,|and)?\s*" + _DUR_PART + r")*\s*", re.I)
_DUR_PART_RE = re.compile(_DUR_PART, re.I)


@dataclass(frozen=True)
class Duration:
    """A span of time: whole months (years count 12) plus seconds (weeks, days ... ms)."""

    months: int = 0
    seconds: float = 0.0

    def approx_seconds(self) -> float:
        return self.months * 30 * 86400.0 + self.seconds

    def __neg__(self) -> "Duration":
        return Duration(-self.months, -self.seconds)

    def __add__(self, other: "Duration") -> "Duration":
        return Duration(self.months + other.months, self.seconds + other.seconds)

    def scale(self, k: float) -> "Duration":
        months = self.months * k
        whole = int(months)
        return Duration(whole, self.seconds * k + (months - whole) * 30 * 86400.0)

    def parts(self) -> dict[str, float]:
        years, months = divmod(abs(self.months), 12)
        rest = abs(self.seconds)
        days, rest = divmod(rest, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return {"years": years, "months": months, "days": days, "hours": hours,
                "minutes": minutes, "seconds": seconds}

    def __str__(self) -> str:
        words = []
        for unit, n in self.parts().items():
            if n:
                n = int(n) if float(n).is_integer() else round(n, 3)
                words.append(f"{n} {unit[:-1] if n == 1 else unit}")
        sign = "-" if self.approx_seconds() < 0 else ""
        return sign + ", ".join(words) if words else "0 seconds"


def parse_duration(text: str) -> Duration | None:
    """``"2 days"``, ``"1 year, 3 months"``, ``"8 minutes and 4 seconds"`` -> Duration."""
    if not DURATION_RE.fullmatch(text):
        return None
    months, seconds = 0.0, 0.0
    for number, unit in _DUR_PART_RE.findall(text):
        m, s = _DUR_UNITS[unit.lower()]
        months += float(number) * m
        seconds += float(number) * s
    whole = int(months)
    return Duration(whole, seconds + (months - whole) * 30 * 86400.0)


DATE_RE = re.compile(
    r"(\d{4})-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?)?)?"
)


def parse_date(text: str) -> _dt.datetime | None:
    """ISO dates and date-times (``2023-07-18``, ``2023-07``, ``2023-07-18T10:30``)."""
    m = DATE_RE.fullmatch(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        value = _dt.datetime(int(y), int(mo), int(d or 1), int(h or 0), int(mi or 0), int(s or 0),
                             int((frac or "0").ljust(6, "0")))
    except ValueError:
        return None
    if zone:  # convert to local naive time so every date compares with every other
        z = zone.replace(":", "")
        tz = _dt.timezone.utc if z == "Z" else _dt.timezone(
            (1 if z[0] == "+" else -1) * _dt.timedelta(hours=int(z[1:3]), minutes=int(z[3:5])))
        value = value.replace(tzinfo=tz).astimezone().replace(tzinfo=None)
    return value


def relative_date(word: str, now: _dt.datetime | None = None) -> _dt.datetime | None:
    """Dataview's named dates: today, now, tomorrow, yesterday, sow/eow, som/eom, soy/eoy."""
    now = now or _dt.datetime.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    word = word.strip().lower()
    if word == "now":
        return now
    if word == "today":
        return today
    if word == "tomorrow":
        return today + _dt.timedelta(days=1)
    if word == "yesterday":
        return today - _dt.timedelta(days=1)
    if word == "sow":
        return today - _dt.timedelta(days=today.weekday())
    if word == "eow":
        return today + _dt.timedelta(days=6 - today.weekday(), hours=23, minutes=59, seconds=59)
    if word == "som":
        return today.replace(day=1)
    if word == "eom":
        nxt = (today.replace(day=28) + _dt.timedelta(days=4)).replace(day=1)
        return nxt - _dt.timedelta(seconds=1)
    if word == "soy":
        return today.replace(month=1, day=1)
    if word == "eoy":
        return today.replace(month=12, day=31, hour=23, minute=59, second=59)
    return None


def add_duration(date: _dt.datetime, dur: Duration) -> _dt.datetime:
    if dur.months:
        total = date.year * 12 + (date.month - 1) + dur.months
        year, month = divmod(total, 12)
        month += 1
        last = (_dt.date(year + (month == 12), month % 12 + 1, 1) - _dt.timedelta(days=1)).day
        date = date.replace(year=year, month=month, day=min(date.day, last))
    return date + _dt.timedelta(seconds=dur.seconds)


@dataclass
class Lambda:
    """A function value ``(x, y) => body``; ``call`` is bound by the evaluator."""

    params: list[str]
    call: Callable[[list[Any]], Any]


class Record:
    """An object whose fields may be computed on demand (a page, a result row).

    Subclasses implement ``get(name)`` (None when absent) and ``keys()``.
    """

    path: str | None = None

    def get(self, name: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def keys(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def has(self, name: str) -> bool:
        return name in self.keys()

    def to_dict(self) -> dict[str, Any]:
        return {k: self.get(k) for k in self.keys()}


@functools.lru_cache(maxsize=4096)
def canonical_key(name: str) -> str:
    """Dataview's sanitised field name: formatting stripped, lowercase, spaces -> dashes."""
    name = re.sub(r"[*_~`=]", "", name) if re.search(r"[*~`=]", name) else name
    name = re.sub(r"[^\w\s-]", "", name)
    return re.sub(r"\s+", "-", name.strip()).lower()


# ---- types, truthiness, ordering, strings ----------------------------------------------

def typeof(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, _dt.datetime):
        return "date"
    if isinstance(v, Duration):
        return "duration"
    if isinstance(v, Link):
        return "link"
    if isinstance(v, list):
        return "array"
    if isinstance(v, (dict, Record)):
        return "object"
    if isinstance(v, Lambda) or callable(v):
        return "function"
    return "string"


def truthy(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0 and not (isinstance(v, float) and math.isnan(v))
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    if isinstance(v, Record):
        return True
    if isinstance(v, Link):
        return bool(v.path)
    if isinstance(v, Duration):
        return v.approx_seconds() != 0
    return True


def _str_key(s: str) -> tuple:
    # close to JavaScript's localeCompare: case-insensitive first, then lower case first
    return (s.casefold(), s.swapcase())


def compare(a: Any, b: Any) -> int:
    """Dataview's total order: null first; different types by type name; then by value."""
    if a is None or b is None:
        return 0 if a is b else (-1 if a is None else 1)
    ta, tb = typeof(a), typeof(b)
    if ta != tb:
        return -1 if ta < tb else 1
    if ta == "string":
        ka, kb = _str_key(a), _str_key(b)
        return (ka > kb) - (ka < kb)
    if ta in ("number", "boolean", "date"):
        return (a > b) - (a < b)
    if ta == "duration":
        x, y = a.approx_seconds(), b.approx_seconds()
        return (x > y) - (x < y)
    if ta == "link":
        c = compare(a.path.casefold(), b.path.casefold())
        return c or compare(a.subpath or "", b.subpath or "")
    if ta == "array":
        for x, y in zip(a, b):
            c = compare(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ta == "object":
        da = a.to_dict() if isinstance(a, Record) else a
        db = b.to_dict() if isinstance(b, Record) else b
        if isinstance(a, Record) and isinstance(b, Record) and a.path and b.path:
            return compare(a.path, b.path)
        c = compare(sorted(da), sorted(db))
        if c:
            return c
        for k in sorted(da):
            c = compare(da[k], db[k])
            if c:
                return c
        return 0
    return 0


def sort_key(v: Any) -> tuple:
    """A tuple that Python orders as :func:`compare` does (fast path for sorting)."""
    if v is None:
        return ("",)
    t = typeof(v)
    if t == "string":
        return (t, _str_key(v))
    if t in ("number", "boolean", "date"):
        return (t, v)
    if t == "duration":
        return (t, v.approx_seconds())
    if t == "link":
        return (t, v.path.casefold(), v.subpath or "")
    if t == "array":
        return (t, tuple(sort_key(x) for x in v))
    return (t, SortKey(v))


class SortKey:
    """Wraps a value so Python's sort uses :func:`compare`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: "SortKey") -> bool:
        return compare(self.value, other.value) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortKey) and compare(self.value, other.value) == 0


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def format_date(d: _dt.datetime) -> str:
    """Dataview's default rendering: ``August 15th, 2021`` (plus time when there is one)."""
    text = f"{d.strftime('%B')} {_ordinal(d.day)}, {d.year}"
    if d.time() != _dt.time(0, 0):
        text += d.strftime(" %H:%M") + (d.strftime(":%S") if d.second else "")
    return text


def to_string(v: Any, *, nested: bool = False) -> str:
    """The "reasonable" string form used by ``string()``, ``join`` and string ``+``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e16:
            return str(int(v))
        return repr(v)
    if isinstance(v, str):
        return f'"{v}"' if nested else v
    if isinstance(v, _dt.datetime):
        return format_date(v)
    if isinstance(v, Duration):
        return str(v)
    if isinstance(v, Link):
        return v.markdown()
    if isinstance(v, list):
        return "[" + ", ".join(to_string(x, nested=True) for x in v) + "]" if nested else \
            ", ".join(to_string(x, nested=True) for x in v)
    if isinstance(v, Record):
        if v.path:
            return Link(v.path).markdown()
        v = v.to_dict()
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k}: {to_string(x, nested=True)}" for k, x in v.items()) + " }"
    if isinstance(v, Lambda):
        return "<function>"
    return str(v)


def to_json(v: Any) -> Any:
    """A JSON-ready form: dates ISO, durations text, links their markdown, pages their path."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, _dt.datetime):
        return v.date().isoformat() if v.time() == _dt.time(0, 0) else v.isoformat()
    if isinstance(v, (Duration, Link)):
        return str(v)
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, Record):
        return v.path if v.path else {k: to_json(x) for k, x in v.to_dict().items()}
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    return to_string(v)


def parse_field_value(text: str) -> Any:
    """Turn an inline-field or frontmatter string into the typed value Dataview would see."""
    s = text.strip()
    if s == "":
        return None
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        return float(s) if "." in s else int(s)
    if s[0].isdigit():
        d = parse_date(s)
        if d is not None:
            return d
    if s[0].isdigit():
        du = parse_duration(s)
        if du is not None:
            return du
    if "[[" in s:
        links = re.findall(r"(!?)\[\[([^\]]+)\]\]", s)
        rest = re.sub(r"!?\[\[[^\]]+\]\]", "", s)
        if links and not rest.replace(",", "").strip():
            values = [link_from_text(inner, embed=bool(bang)) for bang, inner in links]
            return values[0] if len(values) == 1 else values
    return s


def link_from_text(inner: str, *, embed: bool = False) -> Link:
    """``Note#Heading|shown`` -> Link (path unresolved)."""
    target, _, display = inner.partition("|")
    target, hash_, sub = target.partition("#")
    kind = "file"
    if hash_:
        kind = "block" if sub.startswith("^") else "header"
        sub = sub.lstrip("^")
    return Link(target.strip(), display.strip() or None if display else None, sub or None, embed, kind)


def iter_values(v: Any) -> Iterable[Any]:
    return v if isinstance(v, list) else [v]
