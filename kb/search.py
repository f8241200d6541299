"""Full-text search over a vault with SQLite FTS5, inside the index database.

What is searched: titles, aliases, authors, headings and body text, ranked by bm25 with
the title weighted most. The query uses FTS5 syntax: words (all must match), ``"a
phrase"``, ``prefix*``, ``AND`` / ``OR`` / ``NOT``, parentheses, ``NEAR(a b, 5)`` and
fields as a user types them (``author:hoffmann``, ``title:``, ``citekey:``, ``heading:``,
``body:``; ``tag:`` and ``year:`` filter like ``--tag``/``--year``; see ``FIELDS``; an
unknown field is an error listing the known ones). Plain text that is not valid FTS5 (``Llama-2``)
is searched as quoted words instead of failing.

The ``search_*`` tables are kept in step with the index's ``notes`` table lazily: each
search compares ``(path, hash)`` and re-indexes only notes that changed, so indexing code
never needs to know about search.

Library use::

    from kb.vault import Vault
    from kb.search import search
    for hit in search(Vault("notes"), '"fine-tuned chat" llama*', tag="paper", limit=5):
        print(hit.path, hit.score, hit.snippet)
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from kb.errors import PaperkbError

HIT_START, HIT_END = "\x02", "\x03"  # marks around matched words in snippets
SNIPPET_FTS_MAX_CHARS = 100_000  # longer bodies: snippets by _large_snippet, from a stored preview
SNIPPET_SCAN_CHARS = 1_000_000  # the preview: how far into a large body a snippet looks for a match
COLUMNS = ("title", "aliases", "authors", "headings", "body")
WEIGHTS = (10.0, 6.0, 3.0, 2.0, 1.0)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_state(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS search_docs(
    id INTEGER PRIMARY KEY, path TEXT UNIQUE, hash TEXT, title TEXT, year INTEGER, tags TEXT,
    chars INTEGER, preview TEXT);
CREATE INDEX IF NOT EXISTS search_docs_year ON search_docs(year);
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
    title, aliases, authors, headings, body,
    tokenize = 'porter unicode61 remove_diacritics 2');
"""
# Tables made under another TABLES_VERSION are redone. 4: body length and a bounded preview of large
# bodies (snippets of large notes without reading them whole). 3: the plain title is shown. 2: no prefix indexes (they
# doubled the time to index a vault; prefix* queries on 10,000 notes stay ~10 ms).
TABLES_VERSION = "4"


class SearchError(PaperkbError):
    """A search query FTS5 cannot read, or bad filter arguments."""


@dataclass
class SearchHit:
    path: str
    title: str
    year: int | None
    score: float  # bm25: lower is a better match (FTS5's convention), shown negated
    snippet: str  # hits between HIT_START and HIT_END

    def marked(self, start: str = "**", end: str = "**") -> str:
        return self.snippet.replace(HIT_START, start).replace(HIT_END, end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "title": self.title,
            "year": self.year,
            "score": round(-self.score, 4),
            "snippet": self.marked(),
        }


def _tag_levels(tag: str) -> list[str]:
    parts = tag.lstrip("#").casefold().split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts)) if parts[i]]


def _doc(d: dict[str, Any]) -> tuple[str, str, str, str, str, int | None, str, str]:
    """The indexed columns of a note, then its year, its tag levels and its title as shown.
    The title column also holds the file name, so that both are searched and weighted."""
    path = d["path"]
    name = path.rsplit("/", 1)[-1]
    name = name[:-3] if name.lower().endswith(".md") else name
    shown = d.get("title") or name
    title = shown
    if title != name:
        title = f"{title} ({name})" if name.casefold() not in title.casefold() else title
    aliases = " ; ".join(list(d.get("aliases") or []) + ([d["citekey"]] if d.get("citekey") else []))
    authors = " ; ".join(str(a) for a in d.get("authors") or [])
    headings = " ; ".join(h.get("text", "") for h in d.get("headings") or [])
    year = d.get("year")
    if not isinstance(year, int):
        try:
            year = int(str((d.get("frontmatter") or {}).get("year", "")).strip()[:4])
        except ValueError:
            year = None
    tags = " " + " ".join(sorted({lvl for t in d.get("tags") or [] for lvl in _tag_levels(t)})) + " "
    return title, aliases, authors, headings, d.get("body_text") or "", year, tags, shown


# The fields ``_doc`` reads, cut out of each note's JSON by SQLite (in C): decoding the
# whole note in Python (links, tasks, …) cost more than indexing its words.
_DOC_SQL = (
    "SELECT path, hash, data->>'$.title', data->'$.aliases', data->>'$.citekey', data->'$.authors', "
    "data->'$.headings', data->'$.year', data->'$.frontmatter.year', data->'$.tags', "
    "data->>'$.body_text' FROM notes"
)


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)  # a few times faster than json: 60,000 of these on a first sync
        except orjson.JSONDecodeError:  # what orjson refuses (NaN) json reads
            pass
    return json.loads(text)


# orjson reads an integer past 64 bits as a float: such numbers are left to json
_LONG_DIGITS = re.compile(r"\d{19}")


def _doc_rows_sql(conn: sqlite3.Connection, todo: list[str] | None) -> list[tuple]:
    from kb.query.tables import select_notes

    out = []
    for path, h, title, aliases, citekey, authors, headings, year, fm_year, tags, body in select_notes(
        conn, _DOC_SQL, todo
    ):
        d = {
            "path": path,
            "title": title,
            "aliases": _loads(aliases),
            "citekey": citekey,
            "authors": _loads(authors),
            "headings": _loads(headings),
            "year": _loads(year),
            "frontmatter": {"year": _loads(fm_year)} if fm_year is not None else {},
            "tags": _loads(tags),
            "body_text": body,
        }
        out.append((path, h, _doc(d)))
    return out


def _doc_rows_python(conn: sqlite3.Connection, todo: list[str] | None) -> list[tuple]:
    from kb.query.tables import note_dicts

    return [(path, h, _doc(d)) for path, h, d in note_dicts(conn, todo)]


def _create_tables(conn: sqlite3.Connection, *, drop: bool = False) -> None:
    """The search tables, inside the caller's transaction. Dropping them is far cheaper
    than deleting from FTS5, which reads every deleted row back to unindex its words."""
    if drop:
        conn.execute("DROP TABLE IF EXISTS search_fts")
        conn.execute("DROP TABLE IF EXISTS search_docs")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def sync(conn: sqlite3.Connection) -> int:
    """Bring the search tables in line with ``notes``; returns how many notes changed."""
    from kb.query.tables import (
        index_stamp,
        index_walk,
        remember_walk,
        state_get,
        state_set,
        synced_at,
        unchanged,
        write_transaction,
    )

    conn.execute("CREATE TABLE IF NOT EXISTS search_state(key TEXT PRIMARY KEY, value TEXT)")
    stamp = f"{index_stamp(conn)}/search{TABLES_VERSION}"
    fresh = stamp != state_get(conn, "search_state", "index")  # the index was rebuilt: redo all
    walk = index_walk(conn)
    if not fresh:
        if synced_at(conn, "search_state", walk):  # the index has not changed since the last sync
            return 0
        conn.executescript(_SCHEMA)
        if unchanged(conn, "search_docs"):
            remember_walk(conn, "search_state", walk)
            return 0
    with write_transaction(conn):  # compared and written at once: another process may sync too
        remember_walk(conn, "search_state", walk)  # inside the transaction: kept with the rows
        if fresh:
            _create_tables(conn, drop=True)
            state_set(conn, "search_state", "index", stamp)
        current = dict(conn.execute("SELECT path, hash FROM notes"))
        known = {p: (i, h) for i, p, h in conn.execute("SELECT id, path, hash FROM search_docs")}
        gone = [p for p in known if p not in current]
        changed = [p for p, h in current.items() if p not in known or known[p][1] != h]
        n_changed = len(gone) + len(changed)
        if n_changed and known and n_changed > len(known) // 2:  # most notes changed: start afresh
            _create_tables(conn, drop=True)
            known, gone, changed = {}, [], list(current)
        if n_changed:
            _write_docs(conn, known, gone, changed, current)
    if n_changed:
        from kb.index import checkpoint

        checkpoint(conn)  # the full-text tables are bulky: do not leave them in a large WAL
    return n_changed


def _write_docs(
    conn: sqlite3.Connection, known: dict, gone: list[str], changed: list[str], current: dict[str, str]
) -> None:
    old_ids = [(known[p][0],) for p in gone + changed if p in known]
    conn.executemany("DELETE FROM search_fts WHERE rowid = ?", old_ids)
    conn.executemany("DELETE FROM search_docs WHERE id = ?", old_ids)
    todo = None if len(changed) == len(current) else changed
    try:
        rows = _doc_rows_sql(conn, todo)
    except sqlite3.Error:  # JSON SQLite cannot read (NaN from YAML's .nan): decode in Python
        rows = _doc_rows_python(conn, todo)
    first = (conn.execute("SELECT max(id) FROM search_docs").fetchone()[0] or 0) + 1
    conn.executemany(
        "INSERT INTO search_docs(id, path, hash, title, year, tags, chars, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                first + i,
                path,
                h,
                doc[7],
                doc[5],
                doc[6],
                len(doc[4]),
                doc[4][:SNIPPET_SCAN_CHARS] if len(doc[4]) > SNIPPET_FTS_MAX_CHARS else None,
            )
            for i, (path, h, doc) in enumerate(rows)
        ],
    )
    conn.executemany(
        "INSERT INTO search_fts(rowid, title, aliases, authors, headings, body) VALUES (?, ?, ?, ?, ?, ?)",
        [(first + i, *doc[:5]) for i, (_, _, doc) in enumerate(rows)],
    )


def parse_years(year: str | int | None) -> tuple[int, int] | None:
    """``2023``, ``2020-2023``, ``2020..2023``, ``2020-`` or ``-2019``."""
    if year is None or year == "":
        return None
    s = str(year).strip()
    m = re.fullmatch(r"(\d{4})?\s*(?:-|\.\.)?\s*(\d{4})?", s)
    if not m or not (m.group(1) or m.group(2)):
        raise SearchError(f"--year {s!r}: expected a year (2023) or a range (2020-2023, 2020-, -2019)")
    lo = int(m.group(1)) if m.group(1) else 0
    hi = int(m.group(2)) if m.group(2) else (9999 if re.search(r"-|\.\.", s) else lo)
    if lo > hi:
        raise SearchError(f"--year {s!r}: the range is empty")
    return lo, hi


_TOKEN = re.compile(r'"[^"]*"?|[(),]|\{[^{}"()]*\}:|[^\s(),"]+')
_BARE = re.compile(r"\w+\*?", re.UNICODE)
_COLUMN = re.compile(r"(-?\{?[\w ]+\}?:|-?\w+:)(.*)", re.UNICODE)

# The fields a query may name (``author:hoffmann``), as a user would type them, and the
# full-text column each searches. ``tag:`` and ``year:`` are filters (like --tag, --year).
FIELDS: dict[str, str] = {
    "title": "title",
    "author": "authors",
    "authors": "authors",
    "alias": "aliases",
    "aliases": "aliases",
    "citekey": "aliases",
    "heading": "headings",
    "headings": "headings",
    "body": "body",
    "text": "body",
}
FILTER_FIELDS = ("tag", "year")
KNOWN_FIELDS = "title, author(s), alias(es), citekey, heading(s), body (or text), tag, year"


def _field_column(name: str, text: str) -> str:
    """The full-text column a field name of the query searches; SearchError when unknown."""
    column = FIELDS.get(name.casefold())
    if column is None:
        raise SearchError(f"bad search query {text!r}: unknown field {name!r} (known: {KNOWN_FIELDS})")
    return column


def split_filters(text: str) -> tuple[str, list[str], list[str]]:
    """``(query, tags, years)``: the ``tag:X`` and ``year:2020-2023`` filters taken out of
    a query; they hold for the whole search, so only at its top level (not inside
    parentheses, nor after OR or NOT)."""
    kept: list[str] = []
    tags: list[str] = []
    years: list[str] = []
    depth = 0
    for tok in _TOKEN.findall(text):
        depth += tok == "("
        depth -= tok == ")"
        m = re.fullmatch(r"(tag|year):(.*)", tok, re.I)
        if m is None:
            kept.append(tok)
            continue
        field, value = m.group(1).casefold(), m.group(2).strip()
        if not value:
            raise SearchError(f"bad search query {text!r}: {field}: needs a value ({field}:{_EXAMPLE[field]})")
        if depth > 0 or (kept and kept[-1] in ("OR", "NOT")):
            raise SearchError(
                f"bad search query {text!r}: {field}: filters the whole search; "
                "it cannot stand inside parentheses or after OR/NOT"
            )
        if kept and kept[-1] == "AND":
            kept.pop()
        (tags if field == "tag" else years).append(value)
    return " ".join(kept), tags, years


_EXAMPLE = {"tag": "paper", "year": "2020-2023"}


def _columns(spec: str, text: str) -> str:
    """``author:`` -> ``authors:``, ``{title author}:`` -> ``{title authors}:``, ``-body:`` kept."""
    neg = "-" if spec.startswith("-") else ""
    inner = spec.lstrip("-").rstrip(":")
    if inner.startswith("{"):
        names = inner.strip("{}").split()
        if not names:
            raise SearchError(f"bad search query {text!r}: an empty {{}}: names no field (known: {KNOWN_FIELDS})")
        return neg + "{" + " ".join(dict.fromkeys(_field_column(n, text) for n in names)) + "}:"
    return neg + _field_column(inner, text) + ":"


def prepare_query(text: str, whole: str | None = None) -> str:
    """FTS5 syntax kept; any other word with punctuation (``Llama-2``, ``GPT-4o``) quoted,
    so plain text never trips FTS5's tokenizer rules (``-`` and ``.`` are syntax there).
    Field names are the ones users type (``author:``), mapped onto the columns; an
    unknown one is a SearchError naming the known ones."""
    whole = text if whole is None else whole
    out: list[str] = []
    glue = ""  # a field name waiting for what it applies to: `author:"Jordan Hoffmann"`, `title:(a OR b)`
    for tok in _TOKEN.findall(text):
        piece: str | None
        if tok.startswith('"') or tok in ("(", ")", ",", "AND", "OR", "NOT", "NEAR") or _BARE.fullmatch(tok):
            piece = tok
        elif m := _COLUMN.fullmatch(tok):
            column = _columns(m.group(1), whole)
            if not m.group(2):
                glue += column
                continue
            piece = column + prepare_query(m.group(2), whole)
        else:
            star = tok.endswith("*")
            word = tok.rstrip("*")
            if word and not re.search(r"\w", word):
                continue  # punctuation alone ("-", "+") carries no words
            piece = '"' + word.replace('"', '""') + '"' + ("*" if star else "")
        out.append(glue + piece)
        glue = ""
    if glue:
        raise SearchError(f"bad search query {text!r}: {glue} is followed by nothing to look for")
    return " ".join(out)


def search_conn(
    conn: sqlite3.Connection,
    text: str,
    *,
    tag: str | None = None,
    year: Any = None,
    limit: int = 20,
    snippet_words: int = 12,
) -> list[SearchHit]:
    """Search the index database ``conn`` (the index's ``notes`` table must exist)."""
    if not text or not text.strip():
        raise SearchError('empty search: give some words, a "phrase" or a prefix*')
    if limit < 1:
        raise SearchError(f"--limit must be at least 1, got {limit}")
    typed = text
    text, tags, years_typed = split_filters(text)
    prepared = prepare_query(text, typed)
    if not prepared.strip():
        raise SearchError(f"bad search query {typed!r}: it has no words to look for")
    sync(conn)
    where: list[str] = ["search_fts MATCH ?"]
    args: list[str | int] = [text]
    for t in [tag, *tags] if tag else tags:
        where.append("instr(d.tags, ?) > 0")
        args.append(" " + t.lstrip("#").casefold() + " ")
    for y in [year, *years_typed] if year not in (None, "") else years_typed:
        years = parse_years(y)
        if years:
            where.append("d.year BETWEEN ? AND ?")
            args += list(years)
    weights = ", ".join(str(w) for w in WEIGHTS)
    # rank without snippets, then build snippets only for the rows kept
    rank_sql = (
        f"SELECT d.id, d.path, d.title, d.year, bm25(search_fts, {weights}) AS score "
        "FROM search_fts JOIN search_docs AS d ON d.id = search_fts.rowid "
        f"WHERE {' AND '.join(where)} ORDER BY score, d.path LIMIT ?"
    )
    snip_sql = (
        f"SELECT rowid, snippet(search_fts, -1, '{HIT_START}', '{HIT_END}', '…', {int(snippet_words)}) "
        "FROM search_fts WHERE search_fts MATCH ? AND rowid IN ({ids})"
    )

    def run(q: str) -> list[SearchHit]:
        rows = conn.execute(rank_sql, [q, *args[1:], int(limit)]).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        # FTS5's snippet() re-reads and scores every match of the whole text: on a note of
        # some MB that is minutes. Large notes get a snippet cut from a bounded window.
        previews = dict(
            conn.execute(f"SELECT id, preview FROM search_docs WHERE id IN ({marks}) AND preview IS NOT NULL", ids)
        )
        small = [i for i in ids if i not in previews]
        snippets: dict[int, str] = {}
        if small:
            snippets.update(conn.execute(snip_sql.format(ids=",".join("?" * len(small))), [q, *small]))
        for i, preview in previews.items():
            snippets[i] = _large_snippet(preview, q, int(snippet_words))
        return [SearchHit(p, t, y, s, snippets.get(i, "")) for i, p, t, y, s in rows]

    try:
        return run(prepared)
    except sqlite3.OperationalError as exc:
        msg = str(exc).replace("fts5: ", "")
        raise SearchError(
            f'bad search query {typed!r}: {msg} (use words, "a phrase", prefix*, AND/OR/NOT and parentheses)'
        ) from None


_QUERY_WORD = re.compile(r"\w+\*?", re.UNICODE)


def query_words(fts_query: str) -> list[str]:
    """The words of an FTS5 query (operators, column names and punctuation dropped);
    a trailing ``*`` is kept on prefix words."""
    words = []
    for tok in _QUERY_WORD.findall(re.sub(r"(?:\{[\w ]+\}|\b\w+)\s*:", " ", fts_query)):
        if tok not in ("AND", "OR", "NOT", "NEAR"):
            words.append(tok)
    return words


def _large_snippet(body: str, fts_query: str, n_words: int) -> str:
    """A snippet of about ``n_words`` words around the first match in the stored preview
    (the first ``SNIPPET_SCAN_CHARS``) of a large body, the matched words marked: bounded
    work whatever the note's size."""
    words = query_words(fts_query)
    # FTS5 matches stems (porter): "training" finds "trained". The first letters of each
    # word (at least four) find the same places well enough for a preview.
    stems = sorted(
        {w.rstrip("*").casefold()[: max(4, len(w.rstrip("*")) - 3)] for w in words if w.rstrip("*")},
        key=len,
        reverse=True,
    )
    if not stems:
        return _cut(body, 0, n_words, None)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(s) for s in stems) + r")\w*", re.IGNORECASE)
    hit = pattern.search(body)
    return _cut(body, hit.start() if hit else 0, n_words, pattern)


def _cut(body: str, at: int, n_words: int, pattern: re.Pattern[str] | None) -> str:
    """``n_words`` words of ``body`` from a little before offset ``at``, hits marked."""
    start = max(0, at - 200)
    window = body[start : at + 40 * max(n_words, 1)]
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", window)]
    if not spans:
        return ""
    first = next((k for k, (a, b) in enumerate(spans) if start + b > at), 0)
    first = max(0, first - max(1, n_words // 4))
    chosen = spans[first : first + max(n_words, 1)]
    text = window[chosen[0][0] : chosen[-1][1]]
    if pattern is not None:
        text = pattern.sub(lambda m: HIT_START + m.group() + HIT_END, text)
    lead = "…" if start + chosen[0][0] > 0 else ""
    tail = "…" if start + chosen[-1][1] < len(body) else ""
    return lead + " ".join(text.split()) + tail


def search(
    vault: Any, text: str, *, tag: str | None = None, year: Any = None, limit: int = 20, refresh: bool = True
) -> list[SearchHit]:
    """Search a :class:`kb.vault.Vault` (its index is brought up to date first)."""
    if refresh and getattr(vault, "refresh", True):
        vault.refresh_index()
    conn = vault.connect()
    try:
        return search_conn(conn, text, tag=tag, year=year, limit=limit)
    except sqlite3.OperationalError as exc:
        # A read-only index (a vault folder that cannot be written) whose search tables
        # are missing or stale: move the index to the user's cache folder, as
        # Vault.index does when the notes changed.
        from kb.index import IndexReadOnly, storage_error

        if not getattr(conn, "readonly", False) or not hasattr(vault, "reopen"):
            raise storage_error(exc, getattr(conn, "db_path", "the index")) from None

        vault.reopen(IndexReadOnly(str(exc)))
        vault.index()
        return search_conn(vault.connect(), text, tag=tag, year=year, limit=limit)
