"""A note as Dataview sees it: a page object with ``file.*`` implicit fields, frontmatter
and inline fields (also under their sanitised names) and paperkb's own fields
(``citekey``, ``authors``, ``questions``, ``claims``).

Pages wrap the JSON form of a :class:`kb.model.Note` (``Note.to_dict()``, what the index
stores) and compute each field on first use, so a query that only reads ``file.name``
never builds task or link lists.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from typing import TYPE_CHECKING, Any

from kb.query.values import (
    Link,
    Record,
    canonical_key,
    link_from_text,
    normalize_header,
    parse_date,
    parse_field_value,
)

if TYPE_CHECKING:  # pragma: no cover
    from kb.query.corpus import Corpus

_DAY_IN_NAME = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_TAG_IN_TEXT = re.compile(r"(?<![\w#])#([^\s#,.;:!?()\[\]{}\"'`]+)")
_FILE_KEYS = (
    "name",
    "path",
    "folder",
    "ext",
    "link",
    "size",
    "ctime",
    "mtime",
    "cday",
    "mday",
    "tags",
    "etags",
    "inlinks",
    "outlinks",
    "aliases",
    "tasks",
    "lists",
    "frontmatter",
    "day",
    "starred",
)


def tag_levels(tag: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b", "a/b/c"]`` (Dataview's file.tags holds every level)."""
    parts = tag.lstrip("#").split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts)) if parts[i]]


def convert_yaml(value: Any) -> Any:
    """Frontmatter values as Dataview types them: ISO strings become dates, ``[[x]]`` links."""
    if isinstance(value, str):
        if value[:1].isdigit():
            d = parse_date(value)
            if d is not None:
                return d
        if value.startswith(("[[", "![[")) and value.endswith("]]") and value.count("[[") == 1:
            return link_from_text(value.lstrip("!")[2:-2], embed=value.startswith("!"))
        return value
    if isinstance(value, list):
        return [convert_yaml(v) for v in value]
    if isinstance(value, dict):
        return {k: convert_yaml(v) for k, v in value.items()}
    return value


def _timestamp(t: float | None) -> _dt.datetime | None:
    if not t:
        return None
    try:
        return _dt.datetime.fromtimestamp(t)
    except (OverflowError, OSError, ValueError):
        return None


@functools.lru_cache(maxsize=1024)
def _frontmatter_names(keys: tuple[str, ...]) -> dict[str, str]:
    """Every name a frontmatter key answers to -> the key (written form wins)."""
    names = {k: k for k in keys}
    for k in keys:
        names.setdefault(canonical_key(k), k)
    return names


class Page(Record):
    """One note as a Dataview page; ``get(name)`` returns the field or None."""

    __slots__ = ("data", "corpus", "path", "_fields", "_values", "_file", "_full")

    def __init__(self, data: dict[str, Any], corpus: Corpus | None = None, *, full: bool = True) -> None:
        self.data = data
        self.corpus = corpus
        self.path: str = data["path"]
        self._fields: dict[str, tuple] | None = None
        self._values: dict[int, Any] | None = None
        self._file: FileRecord | None = None
        self._full = full or corpus is None

    def heavy(self, key: str) -> list[dict[str, Any]]:
        """Links, tasks, lists, questions or claims: loaded with the whole note on first use."""
        if not self._full and self.corpus is not None:  # (no corpus: the data is already whole)
            full = self.corpus.full_data(self.path)
            for k, v in full.items():
                self.data.setdefault(k, v)
            self._full = True
        return self.data.get(key) or []

    def __repr__(self) -> str:
        return f"Page({self.path!r})"

    @property
    def link(self) -> Link:
        return Link(self.path)

    @property
    def file(self) -> FileRecord:
        if self._file is None:
            self._file = FileRecord(self)
        return self._file

    def fields(self) -> dict[str, tuple]:
        """Inline fields (and paperkb's own) by written and by sanitised key; frontmatter
        keys are found through :func:`_frontmatter_names`, shared by notes with the same
        keys. Values are typed on first use (most queries read two or three fields)."""
        if self._fields is None:
            raw: dict[str, tuple] = {}
            fm = self.data.get("frontmatter") or {}
            inline: dict[str, list[str]] = {}
            for f in self.data.get("inline_fields") or []:
                inline.setdefault(f["key"], []).append(f["value"])
            if inline:
                names = _frontmatter_names(tuple(fm))
                for key, values in inline.items():
                    # frontmatter and an inline field with one name: Dataview lists both
                    prev = raw.get(key) or (("fm", fm[names[key]]) if key in names else None)
                    entry = ("inline", prev, values)
                    raw[key] = entry
                    ck = canonical_key(key)
                    if ck != key:
                        raw[ck] = entry
            for name in ("citekey", "authors"):
                ours = self.data.get(name)
                if ours:
                    raw[name] = ("ours", ours)
            self._fields = raw
        return self._fields

    def _entry(self, name: str) -> tuple | None:
        fields = self.fields()
        entry = fields.get(name)
        if entry is None:
            fm = self.data.get("frontmatter")
            if fm:
                key = _frontmatter_names(tuple(fm)).get(name)
                if key is not None:
                    entry = ("fm", fm[key])
                    fields[name] = entry
        return entry

    def field(self, name: str) -> Any:
        entry = self._entry(name)
        if entry is None:
            return None
        if self._values is None:
            self._values = {}
        key = id(entry)
        if key not in self._values:
            v = self._typed(entry)
            if self.corpus is not None and isinstance(v, (Link, list)):
                v = self._resolve_links(v, self.corpus)
            self._values[key] = v
        return self._values[key]

    def _typed(self, entry: tuple) -> Any:
        kind = entry[0]
        if kind == "fm":
            return convert_yaml(entry[1])
        if kind == "ours":
            return entry[1]
        values = [parse_field_value(s) for s in entry[2]]
        v = values[0] if len(values) == 1 else values
        if entry[1] is not None:
            prev = self._typed(entry[1])
            v = (prev if isinstance(prev, list) else [prev]) + values
        return v

    def _resolve_links(self, v: Any, corpus: Corpus) -> Any:
        """Links written in fields point at vault paths once resolved (``[[Dune]]`` ->
        ``Books/Dune.md``), so they compare equal to ``file.link``."""
        if isinstance(v, Link):
            path = corpus.resolve(v.path) if v.path else self.path
            return Link(path, v.display, v.subpath, v.embed, v.type) if path and path != v.path else v
        if isinstance(v, list):
            return [self._resolve_links(x, corpus) for x in v]
        return v

    def get(self, name: str) -> Any:
        if name == "file":
            return self.file
        if name == "questions":
            return [dict(q) for q in self.heavy("questions")]
        if name == "claims":
            statuses = self.corpus.claim_statuses() if self.corpus is not None else {}
            out = []
            for c in self.heavy("claims"):
                st = statuses.get(c["id"]) or {}
                out.append({**c, "status": st.get("status", "unverified"), "run_id": st.get("run_id")})
            return out
        return self.field(name)

    def keys(self) -> list[str]:
        fm = self.data.get("frontmatter") or {}
        keys = ["file", *dict.fromkeys([*_frontmatter_names(tuple(fm)), *self.fields()])]
        for name in ("questions", "claims"):
            if name not in keys:
                keys.append(name)
        return keys

    def to_dict(self) -> dict[str, Any]:
        return {k: self.get(k) for k in self.keys() if k != "file"}


class ScalarPage(Page):
    """A page standing in for a note while WHERE and SORT run, when every field they read
    is a plain value (null, boolean, number or string) that ``Page.field`` gave for this
    note's current content and the index kept (:meth:`IndexCorpus.scalar_fields`): the
    note's JSON is then not decoded at all. Only ``file.name``, ``path``, ``folder``,
    ``ext`` and ``link`` (all from the path) can be asked of its ``file``; the query
    engine swaps in the real page before the columns are computed."""

    __slots__ = ("scalars",)

    def __init__(self, path: str, scalars: dict[str, Any], corpus: Corpus | None) -> None:
        super().__init__({"path": path}, corpus, full=True)
        self.scalars = scalars

    def field(self, name: str) -> Any:
        return self.scalars.get(name)

    def get(self, name: str) -> Any:
        if name == "file":
            return self.file
        return self.scalars.get(name)


class FileRecord(Record):
    """The ``file`` object of a page."""

    __slots__ = ("page", "path", "_cache")

    def __init__(self, page: Page) -> None:
        self.page = page
        self.path = None  # not itself a page
        self._cache: dict[str, Any] = {}

    def keys(self) -> list[str]:
        return [k for k in _FILE_KEYS if k != "day" or self.get("day") is not None]

    def get(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = self._compute(name)
        return self._cache[name]

    def _compute(self, name: str) -> Any:
        d = self.page.data
        path: str = d["path"]
        base = path.rsplit("/", 1)[-1]
        if name == "name":
            return base[:-3] if base.lower().endswith(".md") else base.rsplit(".", 1)[0]
        if name == "path":
            return path
        if name == "folder":
            return path.rsplit("/", 1)[0] if "/" in path else ""
        if name == "ext":
            return base.rsplit(".", 1)[-1] if "." in base else ""
        if name == "link":
            return Link(path)
        if name == "size":
            return d.get("size", 0)
        if name in ("ctime", "mtime"):
            return _timestamp(d.get(name))
        if name in ("cday", "mday"):
            t = self.get("ctime" if name == "cday" else "mtime")
            return t.replace(hour=0, minute=0, second=0, microsecond=0) if t else None
        if name == "etags":
            return _unique(["#" + t.lstrip("#") for t in d.get("tags") or []])
        if name == "tags":
            return _unique(["#" + lvl for t in d.get("tags") or [] for lvl in tag_levels(t)])
        if name == "aliases":
            return list(d.get("aliases") or [])
        if name == "frontmatter":
            return dict(d.get("frontmatter") or {})
        if name == "outlinks":
            return self._outlinks()
        if name == "inlinks":
            corpus = self.page.corpus
            return [Link(p) for p in sorted(corpus.linking_to(path))] if corpus else []
        if name == "tasks":
            return [self._item(t, task=True) for t in self.page.heavy("tasks")]
        if name == "lists":
            return [self._item(t, task=bool(t.get("task"))) for t in self.page.heavy("lists")]
        if name == "day":
            m = _DAY_IN_NAME.search(self.get("name"))
            if m:
                day = parse_date(f"{m.group(1)}-{m.group(2)}-{m.group(3)}")
                if day is not None:
                    return day
            v = self.page.field("date")
            return v.replace(hour=0, minute=0, second=0, microsecond=0) if isinstance(v, _dt.datetime) else None
        if name == "starred":
            return False
        return None

    def _outlinks(self) -> list[Link]:
        out: list[Link] = []
        seen: set[tuple[str, str | None]] = set()
        corpus = self.page.corpus
        for ln in self.page.heavy("links"):
            target = ln.get("target") or ""
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # a heading of this note, or an external URL
            resolved = ln.get("resolved")
            if resolved is None and corpus is not None:
                resolved = corpus.resolve(target)
            path = resolved or target
            key = (path, None)
            if key in seen:
                continue
            seen.add(key)
            out.append(Link(path, embed=ln.get("kind") == "embed"))
        return out

    def _item(self, t: dict[str, Any], *, task: bool) -> dict[str, Any]:
        text = t.get("text", "")
        item = {
            "text": text,
            "line": t.get("line"),
            "path": self.page.path,
            "link": Link(self.page.path),
            "task": task,
            "tags": _unique(["#" + m for m in _TAG_IN_TEXT.findall(text)]),
        }
        if task:
            status = t.get("status", " ")
            item.update(
                status=status,
                completed=bool(t.get("completed")),
                checked=status != " ",
                fullyCompleted=bool(t.get("completed")),
            )
        for key, value in re.findall(r"[\[(]([^\[\]():]+)::\s*([^\])]*)[\])]", text):
            item.setdefault(key.strip(), parse_field_value(value))
            item.setdefault(canonical_key(key), parse_field_value(value))
        if task:
            for key, pattern in _TASK_EMOJI_DATES:
                m = pattern.search(text)
                if m and key not in item:
                    item[key] = parse_date(m.group(1))
        item["section"] = self._section(t.get("line"))
        return item

    def _section(self, line: Any) -> Link:
        """The heading above ``line`` as a header link (the note itself above the first)."""
        path = self.page.path
        if not isinstance(line, int):
            return Link(path)
        above = [h for h in self.page.heavy("headings") if isinstance(h.get("line"), int) and h["line"] < line]
        if not above:
            return Link(path)
        return Link(path, None, normalize_header(above[-1].get("text") or "") or None, False, "header")


# the Tasks plugin's dates, which Dataview reads as task fields
_TASK_EMOJI_DATES = [
    ("created", re.compile(r"\u2795\s*(\d{4}-\d{2}-\d{2})")),
    ("start", re.compile(r"\U0001F6EB\s*(\d{4}-\d{2}-\d{2})")),
    ("scheduled", re.compile(r"[\u23F3\u231B]\s*(\d{4}-\d{2}-\d{2})")),
    ("due", re.compile(r"(?:\U0001F4C5|\U0001F4C6|\U0001F5D3\uFE0F?)\s*(\d{4}-\d{2}-\d{2})")),
    ("completion", re.compile(r"\u2705\s*(\d{4}-\d{2}-\d{2})")),
]


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for x in items:
        k = x.casefold()
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out
