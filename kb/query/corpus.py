"""Where a query's pages come from: a list of notes in memory, or the SQLite index.

The index corpus keeps small helper tables (``query_meta``, ``query_tags``,
``query_links``, ``query_names``) next to the index's ``notes`` table and brings them up to
date lazily, at query time, by comparing ``(path, hash)`` with ``notes``: only changed
notes are decoded. ``FROM #tag``, ``FROM [[note]]`` and link look-ups then run in SQL, and
a query decodes only the notes its FROM selects. A fifth, ``query_scalars``, keeps the plain
field values WHERE and SORT read (:meth:`IndexCorpus.scalar_fields`), so that such a query
decodes only the notes left after LIMIT.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kb.index import batches
from kb.query.pages import Page, tag_levels
from kb.query.tables import (
    index_stamp,
    index_walk,
    note_dicts,
    remember_walk,
    select_notes,
    state_get,
    state_set,
    synced_at,
    unchanged,
    write_transaction,
)


def _is_external(target: str) -> bool:
    head = target.split(":", 1)[0]
    return ":" in target and head.isalpha() and len(head) > 1


def link_rows(data: dict[str, Any]) -> list[str]:
    """The raw targets (resolved when known) a note links to."""
    out = []
    for ln in data.get("links") or []:
        target = ln.get("target") or ""
        if target and not _is_external(target):
            out.append(ln.get("resolved") or target)
    return out


def name_keys(data: dict[str, Any]) -> list[str]:
    """Names a link may use for this note: path, path without .md, file name, aliases, citekey."""
    path = data["path"]
    stem = path[:-3] if path.lower().endswith(".md") else path
    keys = [path, stem, stem.rsplit("/", 1)[-1]]
    keys += list(data.get("aliases") or [])
    if data.get("citekey"):
        keys += [data["citekey"], "@" + data["citekey"]]
    return [k.casefold() for k in keys if k]


class Corpus:
    """The pages a query runs over, and the look-ups FROM and ``file.*`` need."""

    root: Path | None = None

    def __init__(self) -> None:
        self._pages: dict[str, Page] = {}
        self._statuses: dict[str, Any] | None = None
        self.status_source: StatusSource | None = None  # else the one set by use_claim_statuses

    # subclasses implement these
    def paths(self) -> list[str]:
        raise NotImplementedError

    def _load(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def tagged(self, tag: str) -> set[str]:
        raise NotImplementedError

    def linking_to(self, path: str) -> set[str]:
        raise NotImplementedError

    def links_of(self, path: str) -> set[str]:
        raise NotImplementedError

    def resolve(self, target: str, from_path: str | None = None) -> str | None:
        raise NotImplementedError

    # shared
    def in_folder(self, folder: str) -> set[str]:
        """``"papers"`` selects papers/ and its subfolders; ``"papers/Note"`` one note."""
        folder = folder.strip().strip("/")
        if not folder:
            return set(self.paths())
        low = folder.casefold()
        out = set()
        for p in self.paths():
            lp = p.casefold()
            if lp.startswith(low + "/") or lp == low or lp == low + ".md":
                out.add(p)
        return out

    full_pages = True  # whether _load returns whole notes (else SLIM_KEYS only)

    def pages(self, paths: Iterable[str]) -> list[Page]:
        paths = list(paths)
        missing = [p for p in paths if p not in self._pages]
        if missing:
            for path, data in self._load(missing).items():
                self._pages[path] = Page(data, self, full=self.full_pages)
        return [self._pages[p] for p in paths if p in self._pages]

    def full_data(self, path: str) -> dict[str, Any]:
        """The whole note (for pages loaded slim)."""
        return {}

    def scalar_fields(self, paths: list[str], names: list[str]) -> dict[str, dict[str, Any]] | None:
        """``{path: {name: value}}`` for the pages whose fields ``names`` are all plain
        values (see :class:`kb.query.pages.ScalarPage`); None when this corpus keeps none."""
        return None

    def page(self, path: str) -> Page | None:
        found = self.pages([path])
        return found[0] if found else None

    def claim_statuses(self) -> dict[str, Any]:
        """Latest reproduction status per claim id, from the status source the caller
        handed in (:func:`use_claim_statuses`, or this corpus's ``status_source``)."""
        if self._statuses is None:
            self._statuses = {}
            source = self.status_source or _status_source
            if self.root is not None and source is not None:
                try:
                    self._statuses = dict(source(self.root) or {})
                except Exception:  # a broken run record must not break a query
                    self._statuses = {}
        return self._statuses


# kb never imports the reproduction side: whoever runs queries hands in where claim
# statuses come from (the CLI passes ``repro.status.claim_statuses``). Without one,
# every claim reads "unverified".
StatusSource = Callable[[Path], Mapping[str, Any]]
_status_source: StatusSource | None = None


def use_claim_statuses(source: StatusSource | None) -> None:
    """Set the default source of claim statuses for every corpus: a function of the vault
    root returning ``{claim id: {"status": ..., "run_id": ...}}``; None for none."""
    global _status_source
    _status_source = source


class MemoryCorpus(Corpus):
    """Pages from notes held in memory (tests, or a vault without an index)."""

    def __init__(self, notes: Iterable[Any], root: Path | None = None) -> None:
        super().__init__()
        self.root = root
        self._data: dict[str, dict[str, Any]] = {}
        for n in notes:
            d = n if isinstance(n, dict) else n.to_dict()
            self._data[d["path"]] = d
        self._names: dict[str, str] = {}
        for path in sorted(self._data, key=lambda p: (p.count("/"), len(p), p)):
            for k in name_keys(self._data[path]):
                self._names.setdefault(k, path)
        self._tags: dict[str, set[str]] = {}
        self._out: dict[str, set[str]] = {}
        self._in: dict[str, set[str]] = {}
        for path, d in self._data.items():
            for t in d.get("tags") or []:
                for lvl in tag_levels(t):
                    self._tags.setdefault(lvl.casefold(), set()).add(path)
            for target in link_rows(d):
                dst = target if target in self._data else (self.resolve(target) or target)
                self._out.setdefault(path, set()).add(dst)
                self._in.setdefault(dst, set()).add(path)

    def paths(self) -> list[str]:
        return list(self._data)

    def _load(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        return {p: self._data[p] for p in paths if p in self._data}

    def tagged(self, tag: str) -> set[str]:
        return set(self._tags.get(tag.lstrip("#").casefold(), ()))

    def linking_to(self, path: str) -> set[str]:
        return set(self._in.get(path, ()))

    def links_of(self, path: str) -> set[str]:
        return set(self._out.get(path, ()))

    def resolve(self, target: str, from_path: str | None = None) -> str | None:
        if target in self._data:
            return target
        t = target.split("#", 1)[0].split("|", 1)[0].strip().casefold()
        return self._names.get(t) or (self._names.get(t[:-3]) if t.endswith(".md") else None)


# the fields most queries read; the rest (links, tasks, lists, questions, claims) is loaded
# from ``notes`` only for pages whose query touches it
SLIM_KEYS = (
    "path",
    "title",
    "aliases",
    "citekey",
    "authors",
    "year",
    "tags",
    "frontmatter",
    "inline_fields",
    "size",
    "mtime",
    "ctime",
)
HEAVY_KEYS = ("links", "tasks", "lists", "questions", "claims")

# No index on query_tags(path) or query_links(path): only an incremental sync's DELETE and
# outgoing() (once per query) look rows up by path, and a scan costs them a few ms, while
# building those indexes cost a fifth of the first sync after an index build.
# (path, hash) of query_meta without its rows: what a kept scalar value is checked against
_META_HASH_INDEX = "CREATE INDEX IF NOT EXISTS query_meta_hash ON query_meta(path, hash)"
_SCALARS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS query_scalars("
    "path TEXT, name TEXT, hash TEXT, kind TEXT, value, PRIMARY KEY (path, name)) WITHOUT ROWID"
)
_HELPER_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS query_state(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS query_meta(path TEXT PRIMARY KEY, hash TEXT, slim TEXT);
CREATE TABLE IF NOT EXISTS query_tags(path TEXT, tag TEXT);
CREATE INDEX IF NOT EXISTS query_tags_tag ON query_tags(tag);
CREATE TABLE IF NOT EXISTS query_links(path TEXT, target TEXT);
CREATE INDEX IF NOT EXISTS query_links_target ON query_links(target);
CREATE TABLE IF NOT EXISTS query_names(path TEXT, name TEXT);
CREATE INDEX IF NOT EXISTS query_names_name ON query_names(name);
CREATE INDEX IF NOT EXISTS query_names_path ON query_names(path);
{_META_HASH_INDEX};
{_SCALARS_SCHEMA};
"""


_HELPER_TABLES = ("query_meta", "query_tags", "query_links", "query_names", "query_scalars")

# query_scalars.kind: how ``value`` stores what Page.field gave ("x": not a plain value,
# the page must be decoded). Filled on demand, per field name a query reads; a row counts
# only while its hash is the note's current one, so a concurrent update can never leave a
# stale value in use.
_NONE, _BOOL, _INT, _FLOAT, _STR, _OTHER = "n", "b", "i", "f", "s", "x"


@contextmanager
def _no_waiting(conn: sqlite3.Connection) -> Iterator[None]:
    """Writes to query_scalars are only a cache: made when the index can be written at once,
    never waited for (a long `paperkb index` holding the write lock must not hold up a query)."""
    waits = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout=0")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(waits)}")


def _scalar_row(value: Any) -> tuple[str, Any]:
    """(kind, stored value) of a field value."""
    if value is None:
        return _NONE, None
    if value is True or value is False:
        return _BOOL, int(value)
    t = type(value)
    if t is int and -(2**63) <= value < 2**63:
        return _INT, value
    if t is float and math.isfinite(value):  # a REAL holds any finite double exactly
        return _FLOAT, value
    if t is str and (value.isascii() or _utf8_ok(value)):
        return _STR, value
    return _OTHER, None


def _utf8_ok(text: str) -> bool:
    """Whether SQLite can store ``text`` (a lone surrogate cannot be written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scalar_value(kind: str, value: Any) -> Any:
    if kind == _BOOL:
        return bool(value)
    return value  # None, int, float and str come back as they went in


# What the helper tables need, cut out of each note's JSON by SQLite (in C, without
# building Python objects for the whole note): the slim page as JSON text, tags, aliases
# and citekey. Links come from the index's own ``links`` table (the same target and
# resolved values as the JSON, without parsing it), or from the JSON when it has none.
_SLIM_SQL = "json_object('path', path, " + ", ".join(f"'{k}', data->'$.{k}'" for k in SLIM_KEYS[1:]) + ")"
_HELPER_SQL = f"SELECT path, hash, {_SLIM_SQL}, data->'$.tags', data->'$.aliases', data->>'$.citekey' FROM notes"
_LINKS_SQL = "SELECT src, target, resolved FROM links"
_LINKS_JSON_SQL = (
    "SELECT n.path, j.value->>'target', j.value->>'resolved' FROM notes AS n, json_each(n.data, '$.links') AS j"
)


def _create_tables(conn: sqlite3.Connection, *, drop: bool = False, tables: bool = True, indexes: bool = True) -> None:
    """The helper tables and/or their indexes, inside the caller's transaction
    (``executescript`` would commit it)."""
    if drop:
        for table in _HELPER_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in _HELPER_SCHEMA.split(";"):
        is_index = "CREATE INDEX" in statement
        if statement.strip() and (indexes if is_index else tables):
            conn.execute(statement)


def _json_list(text: str | None) -> list:
    value = json.loads(text) if text else None
    return value if isinstance(value, list) else []


def _helper_rows_sql(conn: sqlite3.Connection, todo: list[str] | None) -> tuple[list, list, list, list]:
    meta, tags, names = [], [], []
    for path, h, slim, tag_list, aliases, citekey in select_notes(conn, _HELPER_SQL, todo):
        meta.append((path, h, slim))
        tags += [(path, lvl.casefold()) for t in _json_list(tag_list) for lvl in tag_levels(str(t))]
        d = {"path": path, "aliases": _json_list(aliases), "citekey": citekey}
        names += [(path, k) for k in set(name_keys(d))]
    try:
        pairs = select_notes(conn, _LINKS_SQL, todo, key="src")
    except sqlite3.OperationalError:  # an index without a links table
        pairs = select_notes(conn, _LINKS_JSON_SQL, todo, key="n.path")
    synced = {row[0] for row in meta}
    targets = {
        (path, (resolved or target).casefold())
        for path, target, resolved in pairs
        if target and path in synced and not _is_external(target)
    }
    return meta, tags, names, list(targets)


def _helper_rows_python(conn: sqlite3.Connection, todo: list[str] | None) -> tuple[list, list, list, list]:
    meta, tags, names, links = [], [], [], []
    for path, h, d in note_dicts(conn, todo):
        slim = {k: d.get(k) for k in SLIM_KEYS}
        meta.append((path, h, json.dumps(slim, ensure_ascii=False)))
        tags += [(path, lvl.casefold()) for t in d.get("tags") or [] for lvl in tag_levels(t)]
        names += [(path, k) for k in set(name_keys(d))]
        links += [(path, t) for t in {x.casefold() for x in link_rows(d)}]
    return meta, tags, names, links


class IndexCorpus(Corpus):
    """Pages from the index database (table ``notes(path, size, mtime, hash, data)``)."""

    def __init__(self, conn: sqlite3.Connection, root: Path | None = None) -> None:
        super().__init__()
        self.conn = conn
        self.root = root
        self._paths: list[str] | None = None
        self.sync()

    full_pages = False

    def sync(self) -> int:
        """Bring the helper tables in line with ``notes``; returns how many notes changed."""
        c = self.conn
        c.execute("CREATE TABLE IF NOT EXISTS query_state(key TEXT PRIMARY KEY, value TEXT)")
        cols = [r[1] for r in c.execute("PRAGMA table_info(query_meta)")]
        stamp = index_stamp(c)
        # made by an older paperkb, or the index was rebuilt (parser changed: the same file
        # hash may now give other data): every derived row is redone
        fresh = bool(cols and "slim" not in cols) or stamp != state_get(c, "query_state", "index")
        walk = index_walk(c)
        if not fresh:
            if synced_at(c, "query_state", walk):  # the index has not changed since the last sync
                self._paths = None
                return 0
            c.executescript(_HELPER_SCHEMA)
            if unchanged(c, "query_meta"):
                self._paths = None  # read on first use
                remember_walk(c, "query_state", walk)
                return 0
        # compared inside the write transaction: another process syncing at the same time
        # has either finished (nothing left to do) or not started
        with write_transaction(c):
            if fresh:  # dropping the tables is far cheaper than deleting their rows
                _create_tables(c, drop=True)
                state_set(c, "query_state", "index", stamp)
            current = dict(c.execute("SELECT path, hash FROM notes"))
            known = dict(c.execute("SELECT path, hash FROM query_meta"))
            gone = [p for p in known if p not in current]
            changed = [p for p, h in current.items() if known.get(p, object()) != h]
            self._paths = list(current)
            remember_walk(c, "query_state", walk)  # inside the transaction: kept with the rows
            if not gone and not changed:
                return 0
            # After a (re)build every note is new: fill empty tables, then build their
            # indexes once (one sort is several times cheaper than growing B-trees row by
            # row). When most notes changed, starting from empty tables is cheaper too.
            bulk = not known or len(gone) + len(changed) > len(known) // 2
            redo = changed
            if bulk:
                _create_tables(c, drop=True, indexes=False)
                redo = list(current)
            else:
                # the index re-resolves the links of notes that did not change (same hash,
                # other data) when a note they link to changes, appears or goes: redo them too
                redo = changed + self._relinked(gone + changed, current)
                for chunk in batches(gone + redo, 500):
                    marks = ",".join("?" * len(chunk))
                    for table in _HELPER_TABLES:
                        c.execute(f"DELETE FROM {table} WHERE path IN ({marks})", chunk)
            todo = None if len(redo) == len(current) else redo
            try:
                meta, tags, names, links = _helper_rows_sql(c, todo)
            except sqlite3.Error:  # JSON SQLite cannot read (NaN from YAML's .nan): decode in Python
                meta, tags, names, links = _helper_rows_python(c, todo)
            c.executemany("INSERT INTO query_meta VALUES (?, ?, ?)", meta)
            c.executemany("INSERT INTO query_tags VALUES (?, ?)", tags)
            c.executemany("INSERT INTO query_names VALUES (?, ?)", names)
            c.executemany("INSERT INTO query_links VALUES (?, ?)", links)
            if bulk:
                _create_tables(c, tables=False)
        return len(gone) + len(changed)

    def _relinked(self, touched: list[str], current: dict[str, str]) -> list[str]:
        """Unchanged notes whose links may now resolve differently: those linking to a
        name (path, file name, alias, citekey) a touched note had or has, and those the
        index now resolves to a touched note."""
        c = self.conn
        targets = {p.casefold() for p in touched}
        for chunk in batches(touched, 500):
            marks = ",".join("?" * len(chunk))
            targets.update(r[0] for r in c.execute(f"SELECT name FROM query_names WHERE path IN ({marks})", chunk))
            for path, blob in c.execute(f"SELECT path, data FROM notes WHERE path IN ({marks})", chunk):
                try:
                    d = json.loads(blob)
                except (TypeError, ValueError):
                    continue
                d["path"] = path
                targets.update(name_keys(d))
        found: set[str] = set()
        for chunk in batches(sorted(targets), 500):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in c.execute(f"SELECT path FROM query_links WHERE target IN ({marks})", chunk))
        try:
            for chunk in batches(touched, 500):
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in c.execute(f"SELECT src FROM links WHERE resolved IN ({marks})", chunk))
        except sqlite3.OperationalError:  # an index without a links table
            pass
        found.difference_update(touched)
        return sorted(p for p in found if p in current)

    def paths(self) -> list[str]:
        if self._paths is None:
            self._paths = [r[0] for r in self.conn.execute("SELECT path FROM query_meta")]
        return self._paths

    def _path_set(self) -> set[str]:
        if getattr(self, "_pathset", None) is None:
            self._pathset = set(self.paths())
        return self._pathset

    def _max_vars(self) -> int:
        try:  # SQLite >= 3.32 allows 32766 parameters; older ones 999
            return max(self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 10, 100)
        except AttributeError:  # Python < 3.11
            return 900

    def full_data(self, path: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT data FROM notes WHERE path = ?", (path,)).fetchone()
        try:
            return json.loads(row[0]) if row else {}
        except (TypeError, ValueError):
            return {}

    def scalar_fields(self, paths: list[str], names: list[str]) -> dict[str, dict[str, Any]] | None:
        """Fields ``names`` of the pages at ``paths`` whose values are all plain (see
        :class:`~kb.query.pages.ScalarPage`), from ``query_scalars``; a page not yet there is
        decoded once and its values kept for the next query (unless the index is read-only)."""
        try:
            return self._scalar_fields(paths, names)
        except sqlite3.Error:  # a table made by other code, JSON SQLite cannot read: decode pages
            return None

    def _scalar_fields(self, paths: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
        c = self.conn
        have = c.execute(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('query_scalars', 'query_meta_hash')"
        ).fetchone()[0]
        if have < 2:  # an index whose helper tables older code made
            with _no_waiting(c):
                c.execute(_SCALARS_SCHEMA)
                c.execute(_META_HASH_INDEX)
        values: dict[str, dict[str, Any]] = {p: {} for p in paths}
        other: set[str] = set()
        step = self._max_vars() - 1
        for name in names:
            for chunk in batches(paths, step):
                marks = ",".join("?" * len(chunk))
                # (the planner would look the hash up through the primary key and the row: the
                # covering index answers it alone, in half the time)
                rows = c.execute(
                    "SELECT s.path, s.kind, s.value FROM query_scalars AS s "
                    "JOIN query_meta AS m INDEXED BY query_meta_hash ON m.path = s.path AND m.hash = s.hash "
                    f"WHERE s.name = ? AND s.path IN ({marks})",
                    [name, *chunk],
                )
                for path, kind, value in rows:
                    if kind == _OTHER:
                        other.add(path)
                    else:  # _scalar_value, inlined: this loop runs once per page
                        values[path][name] = bool(value) if kind == _BOOL else value
        todo = [p for p, v in values.items() if p not in other and len(v) < len(names)]
        if todo:
            from kb.query.pages import Page

            fresh: list[tuple] = []
            for chunk in batches(todo, step):
                marks = ",".join("?" * len(chunk))
                for path, h, blob in c.execute(
                    f"SELECT path, hash, slim FROM query_meta WHERE path IN ({marks})", chunk
                ).fetchall():
                    try:
                        data = json.loads(blob)
                    except (TypeError, ValueError):
                        other.add(path)
                        continue
                    data["path"] = path
                    page = Page(data, None)  # no corpus: only links are resolved with one, never plain values
                    for name in names:
                        kind, stored = _scalar_row(page.field(name))
                        fresh.append((path, name, h, kind, stored))
                        if kind == _OTHER:
                            other.add(path)
                        else:
                            values[path][name] = _scalar_value(kind, stored)
            try:
                with _no_waiting(c), write_transaction(c):
                    c.executemany("INSERT OR REPLACE INTO query_scalars VALUES (?, ?, ?, ?, ?)", fresh)
            except (sqlite3.Error, ValueError):
                pass  # read-only or busy: the values are used this time only
        # a page missing from query_meta (gone) has no values: it is left to the slow path too
        return {p: v for p, v in values.items() if p not in other and len(v) == len(names)}

    def _load(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        rows: list = []
        for chunk in batches(paths, self._max_vars()):
            marks = ",".join("?" * len(chunk))
            rows += self.conn.execute(f"SELECT path, slim FROM query_meta WHERE path IN ({marks})", chunk).fetchall()
        for path, blob in rows:
            try:
                d = json.loads(blob)
            except (TypeError, ValueError):
                continue
            d["path"] = path
            out[path] = d
        return out

    def tagged(self, tag: str) -> set[str]:
        rows = self.conn.execute("SELECT path FROM query_tags WHERE tag = ?", (tag.lstrip("#").casefold(),))
        return {r[0] for r in rows}

    def _targets_for(self, path: str) -> list[str]:
        # a link is stored resolved when the index resolved it, else as written: match both
        names = [r[0] for r in self.conn.execute("SELECT name FROM query_names WHERE path = ?", (path,))]
        return [path] + names

    def linking_to(self, path: str) -> set[str]:
        out: set[str] = set()
        targets = sorted({t.casefold() for t in self._targets_for(path)})
        for chunk in batches(targets, 500):
            marks = ",".join("?" * len(chunk))
            out |= {r[0] for r in self.conn.execute(f"SELECT path FROM query_links WHERE target IN ({marks})", chunk)}
        return out

    def links_of(self, path: str) -> set[str]:
        out = set()
        for (target,) in self.conn.execute("SELECT target FROM query_links WHERE path = ?", (path,)):
            out.add(self.resolve(target) or target)
        return out

    def resolve(self, target: str, from_path: str | None = None) -> str | None:
        t = target.split("#", 1)[0].split("|", 1)[0].strip()
        if not t:
            return None
        if t in self._path_set():
            return t
        rows = [r[0] for r in self.conn.execute("SELECT path FROM query_names WHERE name = ?", (t.casefold(),))]
        if not rows:
            return None
        return min(rows, key=lambda p: (p.count("/"), len(p), p))
