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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


class LazyModule:
    """A module imported on first attribute use: ``regex`` takes ~15 ms to import, and
    most queries (ASCII field names and identifiers) never need it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attr)


_regex = LazyModule("regex")


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
        target = target.replace("|", "\\|")  # "[[Hello \| There]]", as Obsidian escapes it
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

_DUR_PART = r"(\d+(?:\.\d+)?)\s*(" + "|".join(sorted(_DUR_UNITS, key=len, reverse=True)) + r")(?![a-z])"


@functools.lru_cache(maxsize=1)
def _duration_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The whole-duration and one-part patterns, compiled on first use (~3 ms, and most
    queries hold no duration)."""
    whole = re.compile(r"\s*" + _DUR_PART + r"(?:\s*(?:,|and)?\s*" + _DUR_PART + r")*\s*", re.I)
    return whole, re.compile(_DUR_PART, re.I)


MAX_DURATION_CHARS = 200


@dataclass(frozen=True)
class Duration:
    """A span of time: whole months (years count 12) plus seconds (weeks, days ... ms)."""

    months: int = 0
    seconds: float = 0.0

    def approx_seconds(self) -> float:
        return self.months * 30 * 86400.0 + self.seconds

    def __neg__(self) -> Duration:
        return Duration(-self.months, -self.seconds)

    def __add__(self, other: Duration) -> Duration:
        return Duration(self.months + other.months, self.seconds + other.seconds)

    def scale(self, k: float) -> Duration:
        months = self.months * k
        whole = int(months)
        return Duration(whole, self.seconds * k + (months - whole) * 30 * 86400.0)

    def parts(self) -> dict[str, float]:
        years, months = divmod(abs(self.months), 12)
        rest = abs(self.seconds)
        days, rest = divmod(rest, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return {"years": years, "months": months, "days": days, "hours": hours, "minutes": minutes, "seconds": seconds}

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
    if len(text) > MAX_DURATION_CHARS:  # the pattern backtracks on long runs of spaces
        return None
    whole, part = _duration_patterns()
    if not whole.fullmatch(text):
        return None
    months, seconds = 0.0, 0.0
    for number, unit in part.findall(text):
        m, s = _DUR_UNITS[unit.lower()]
        months += float(number) * m
        seconds += float(number) * s
    whole_months = int(months)
    return Duration(whole_months, seconds + (months - whole_months) * 30 * 86400.0)


DATE_RE = re.compile(
    r"(\d{4})-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?"
    r"(Z|[+-]\d{1,2}(?::?\d{2})?)?(?:\[([A-Za-z_]+(?:/[A-Za-z0-9_+-]+){0,2})\])?)?)?"
)


def _fixed_zone(text: str) -> _dt.tzinfo | None:
    """``Z``, ``+9``, ``-07:00``, ``+0630`` -> a fixed-offset zone."""
    if text == "Z":
        return _dt.UTC
    sign = 1 if text[0] == "+" else -1
    digits = text[1:].replace(":", "")
    hours, minutes = (digits, "0") if len(digits) <= 2 else (digits[:-2], digits[-2:])
    try:
        return _dt.timezone(sign * _dt.timedelta(hours=int(hours), minutes=int(minutes)))
    except ValueError:  # |offset| >= 24 h
        return None


def _named_zone(name: str) -> _dt.tzinfo | None:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # unknown name, or no time zone database on this machine
        return None


def parse_date(text: str) -> _dt.datetime | None:
    """ISO dates and date-times (``2023-07-18``, ``2023-07``, ``2023-07-18T10:30``).

    A written zone is kept, as Luxon keeps it in Dataview: ``...T12:40:50-07:00`` is 12:40
    in UTC-7 (an aware datetime), ``...T12:40:50[Europe/Paris]`` 12:40 in Paris. Dates
    without a zone are naive, meaning local time."""
    m = DATE_RE.fullmatch(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, offset, zone_name = m.groups()
    try:
        value = _dt.datetime(
            int(y), int(mo), int(d or 1), int(h or 0), int(mi or 0), int(s or 0), int((frac or "0").ljust(6, "0"))
        )
    except ValueError:
        return None
    if zone_name:
        tz = _named_zone(zone_name)
        if tz is None:
            return None
        value = value.replace(tzinfo=tz)
    elif offset:
        tz = _fixed_zone(offset)
        if tz is None:
            return None
        value = value.replace(tzinfo=tz)
    return value


def naive_local(d: _dt.datetime) -> _dt.datetime:
    """The same instant as a naive local date-time (to compare with zone-less dates)."""
    if d.tzinfo is None:
        return d
    try:
        return d.astimezone().replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):  # at the ends of the calendar
        return d.replace(tzinfo=None)


def comparable_dates(a: _dt.datetime, b: _dt.datetime) -> tuple[_dt.datetime, _dt.datetime]:
    """Two dates Python can compare and subtract: both aware or both naive local."""
    if (a.tzinfo is None) == (b.tzinfo is None):
        return a, b
    return naive_local(a), naive_local(b)


def zone_name(d: _dt.datetime) -> str | None:
    """Luxon's ``zoneName``: ``Europe/Paris``, ``UTC``, ``UTC-7``, ``UTC+6:30``; the
    machine's zone for a date written without one."""
    tz = d.tzinfo
    if tz is None:
        return _dt.datetime.now().astimezone().tzname()
    key = getattr(tz, "key", None)
    if key:
        return key
    off = d.utcoffset() or _dt.timedelta(0)
    if not off:
        return "UTC"
    total = int(off.total_seconds()) // 60
    sign = "+" if total > 0 else "-"
    hours, minutes = divmod(abs(total), 60)
    return f"UTC{sign}{hours}" + (f":{minutes:02d}" if minutes else "")


def date_difference(a: _dt.datetime, b: _dt.datetime) -> Duration:
    """``a - b`` as Luxon's ``diff`` in years, months, days ... : whole calendar months
    first (2021-05-04 - 1997-05-17 = 23 years, 11 months, 17 days), then the time left."""
    a, b = comparable_dates(a, b)
    if a < b:
        return -date_difference(b, a)
    if a.tzinfo is not None:
        b = b.astimezone(a.tzinfo)
    months = (a.year - b.year) * 12 + (a.month - b.month)
    try:
        while months > 0 and add_duration(b, Duration(months)) > a:
            months -= 1
        rest = a - add_duration(b, Duration(months))
    except (OverflowError, ValueError):
        months, rest = 0, a - b
    return Duration(months, rest.total_seconds())


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


# an emoji: a pictograph with its variation selectors, skin tones and zero-width joins
EMOJI = (
    r"(?:\p{Extended_Pictographic}[\uFE0F\u20E3\p{Emoji_Modifier}]*"
    r"(?:\u200D\p{Extended_Pictographic}[\uFE0F\p{Emoji_Modifier}]*)*)"
)


@functools.lru_cache(maxsize=1)
def _key_piece() -> Any:
    return _regex.compile("(" + EMOJI + r")|([0-9\p{L}_-]+)|(\s+)|.", _regex.S)


@functools.lru_cache(maxsize=1)
def _header_keep() -> Any:
    return _regex.compile(EMOJI + r"|[0-9\p{L}_-]+", _regex.S)


# Names made of ASCII letters, digits, '_', '-' and spaces only: no emoji, no other letter
# or space, so the result is plain string work (the usual frontmatter key).
_PLAIN_NAME = re.compile(r"[0-9A-Za-z_ -]*")
_SPACES = re.compile(" +")


@functools.lru_cache(maxsize=4096)
def canonical_key(name: str) -> str:
    """Dataview's sanitised field name (``canonicalizeVarName``): letters, digits, ``_``
    and ``-`` lowercased, emoji kept, each run of spaces one dash, anything else dropped."""
    stripped = name.strip()
    if _PLAIN_NAME.fullmatch(stripped):
        return _SPACES.sub("-", stripped).lower()
    return _canonical_pieces(stripped)


def _canonical_pieces(stripped: str) -> str:
    """``canonical_key`` of any stripped name, piece by piece (the fast path's oracle)."""
    out = []
    for m in _key_piece().finditer(stripped):
        emoji, word, space = m.groups()
        if emoji is not None:
            out.append(emoji)
        elif word is not None:
            out.append(word.lower())
        elif space is not None:
            out.append("-")
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def normalize_header(header: str) -> str:
    """A heading as a link target (Dataview's ``normalizeHeaderForLink``): markup, links and
    punctuation become spaces, runs of spaces one space: ``**Header** *Value`` -> ``Header Value``."""
    return " ".join(m.group() for m in _header_keep().finditer(header))


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
    if ta == "date":
        a, b = comparable_dates(a, b)
        return (a > b) - (a < b)
    if ta in ("number", "boolean"):
        return (a > b) - (a < b)
    if ta == "duration":
        x, y = a.approx_seconds(), b.approx_seconds()
        return (x > y) - (x < y)
    if ta == "link":
        c = compare(a.path.casefold(), b.path.casefold())
        # a heading and a block of one note are different targets, as in Dataview
        return c or compare(a.subpath or "", b.subpath or "") or compare(a.type, b.type)
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
    if t in ("number", "boolean"):
        return (t, v)
    if t == "date":
        return (t, naive_local(v))
    if t == "duration":
        return (t, v.approx_seconds())
    if t == "link":
        return (t, v.path.casefold(), v.subpath or "", v.type)
    if t == "array":
        return (t, tuple(sort_key(x) for x in v))
    return (t, SortKey(v))


class SortKey:
    """Wraps a value so Python's sort uses :func:`compare`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: SortKey) -> bool:
        return compare(self.value, other.value) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortKey) and compare(self.value, other.value) == 0


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def format_date(d: _dt.datetime) -> str:
    """Dataview's default rendering: ``August 15th, 2021`` (plus time when there is one);
    a date written in another zone shows in local time, as Dataview shows it."""
    d = naive_local(d)
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
        return (
            "[" + ", ".join(to_string(x, nested=True) for x in v) + "]"
            if nested
            else ", ".join(to_string(x, nested=True) for x in v)
        )
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


_FIELD_ATOM = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<link>!?\[\[(?:[^\]\n]|\](?!\]))*\]\])"
    r"|(?P<tag>#[^\u2000-\u206F\u2E00-\u2E7F'!\"#$%&()*+,.:;<=>?@^`{|}~\[\]\\\s]+)"
    r"|(?P<word>[^,\"]+))"
)
_AFTER_ATOM = re.compile(r"\s*(?:,|$)")
_MAX_FIELD_ATOMS = 1000


def _field_atom(kind: str, text: str) -> tuple[bool, Any]:
    """One element of an inline field's value, as Dataview's ``atomInlineField``; False
    when ``text`` is not one (then the whole value stays a string)."""
    if kind == "string":
        body = text[1:-1]
        return True, re.sub(r"\\(.)", lambda m: m.group(1) if m.group(1) in '"\\' else m.group(0), body)
    if kind == "link":
        embed = text.startswith("!")
        return True, link_from_text(text[3 if embed else 2 : -2], embed=embed)
    if kind == "tag":
        return True, text
    low = text.lower()
    if low in ("true", "false"):
        return True, low == "true"
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return True, float(text) if "." in text else int(text)
    if text[:1].isdigit():
        d = parse_date(text)
        if d is not None:
            return True, d
        du = parse_duration(text)
        if du is not None:
            return True, du
    return False, None


def _matched_atom(m: re.Match[str]) -> tuple[bool, Any]:
    """``_field_atom`` of what ``_FIELD_ATOM`` matched (every alternative is a named
    group, so a match always names one)."""
    kind = m.lastgroup
    if kind is None:
        return False, None
    return _field_atom(kind, m.group(kind).strip())


def parse_field_value(text: str) -> Any:
    """Turn an inline-field or frontmatter string into the typed value Dataview would see.

    As Dataview's ``inlineField``: one atom (number, boolean, date, duration, "quoted
    string" without its quotes, link, #tag), or atoms separated by commas, which make a
    list (``1, 2, 3, "hello"``; a trailing comma makes one: ``[[test]],``). Anything else
    is the text itself."""
    s = text.strip()
    if s == "":
        return None
    m = _FIELD_ATOM.match(s)
    if m and m.end() == len(s):
        ok, value = _matched_atom(m)
        if ok:
            return value
    if "," not in s:
        return s
    values: list[Any] = []
    pos, n = 0, len(s)
    while pos < n and len(values) <= _MAX_FIELD_ATOMS:
        m = _FIELD_ATOM.match(s, pos)
        after = _AFTER_ATOM.match(s, m.end()) if m else None
        if m is None or not after:
            return s
        ok, value = _matched_atom(m)
        if not ok:
            return s
        values.append(value)
        pos = after.end()
        if s[pos - 1 : pos] == ",":
            if not s[pos:].strip():  # a trailing comma: still a list
                break
    if len(values) > _MAX_FIELD_ATOMS:
        return s
    return values


def split_link_inner(inner: str) -> tuple[str, str | None]:
    """``target|display`` split at the first pipe not escaped with a backslash (Obsidian's escape
    inside tables); escaped pipes in the target become plain ones."""
    pipe = -1
    while True:
        pipe = inner.find("|", pipe + 1)
        if pipe < 0:
            return inner.replace("\\|", "|"), None
        if pipe > 0 and inner[pipe - 1] == "\\":
            continue
        return inner[:pipe].replace("\\|", "|"), inner[pipe + 1 :]


def link_from_text(inner: str, *, embed: bool = False) -> Link:
    """``Note#Heading|shown`` -> Link (path unresolved). As Dataview's ``Link.infer``:
    ``#^id`` makes a block link, ``#heading`` a header link with the heading normalised."""
    target, display = split_link_inner(inner)
    display = display.strip() or None if display is not None else None
    if "#^" in target:
        path, _, sub = target.partition("#^")
        return Link(path.strip(), display, sub.split("#^")[0] or None, embed, "block")
    if "#" in target:
        path, _, sub = target.partition("#")
        return Link(path.strip(), display, normalize_header(sub.split("#")[0]) or None, embed, "header")
    return Link(target.strip(), display, None, embed, "file")


def iter_values(v: Any) -> Iterable[Any]:
    return v if isinstance(v, list) else [v]
