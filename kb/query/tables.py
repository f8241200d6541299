"""Bookkeeping shared by the index's helper tables (DQL's ``query_*``, search's
``search_*``): whether they still match the index, and reading the index's notes.

Kept apart from :mod:`kb.query.corpus` so that search and claims can use it without
loading the query engine.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction (the index connection runs in autocommit mode, where each
    row of an ``executemany`` would otherwise be committed on its own)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if conn.in_transaction:
        conn.execute("COMMIT")


def select_notes(conn: sqlite3.Connection, sql: str, todo: list[str] | None, key: str = "path") -> list[tuple]:
    """Rows of ``sql`` (a SELECT without WHERE) for every note, or those whose ``key`` is in ``todo``."""
    if todo is None:
        return conn.execute(sql).fetchall()
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS paperkb_todo(path TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.paperkb_todo")
    conn.executemany("INSERT OR IGNORE INTO temp.paperkb_todo VALUES (?)", [(p,) for p in todo])
    return conn.execute(f"{sql} WHERE {key} IN (SELECT path FROM temp.paperkb_todo)").fetchall()


def note_dicts(conn: sqlite3.Connection, todo: list[str] | None):
    """``(path, hash, note dict)`` for every note (or those in ``todo``), decoded in Python;
    notes whose JSON does not decode are passed over."""
    for path, h, blob in select_notes(conn, "SELECT path, hash, data FROM notes", todo):
        try:
            d = json.loads(blob)
        except (TypeError, ValueError):
            continue
        d["path"] = path
        yield path, h, d


def unchanged(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` (path, hash) already matches the index's notes, checked in SQL."""
    differs = conn.execute(
        f"SELECT EXISTS(SELECT 1 FROM notes AS n LEFT JOIN {table} AS m ON m.path = n.path WHERE m.hash IS NOT n.hash)"
    ).fetchone()[0]
    if differs:
        return False
    return conn.execute(f"SELECT (SELECT count(*) FROM notes) = (SELECT count(*) FROM {table})").fetchone()[0] == 1


def index_stamp(conn: sqlite3.Connection) -> str:
    """The index's schema version and code fingerprint (its ``meta`` table), if any."""
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', 'fingerprint')"))
    except sqlite3.OperationalError:
        return ""
    return f"{rows.get('schema_version', '')}:{rows.get('fingerprint', '')}"


def index_walk(conn: sqlite3.Connection) -> str | None:
    """The digest of the vault walk the index was last found up to date with (see
    ``kb.vault.Vault.refresh_index``), or None. The index drops it whenever it changes, so a
    helper table synced at this digest still matches the index while it is the same."""
    from kb.index import SCAN_DIGEST_KEY

    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCAN_DIGEST_KEY,)).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def synced_at(conn: sqlite3.Connection, table: str, walk: str | None) -> bool:
    """Whether the helper tables whose state is kept in ``table`` were last synced at ``walk``."""
    return walk is not None and state_get(conn, table, "walk") == walk


def remember_walk(conn: sqlite3.Connection, table: str, walk: str | None) -> None:
    """Record that the helper tables of ``table`` match the index at ``walk`` (read before
    they were compared or synced)."""
    if walk is None:
        return
    try:
        state_set(conn, table, "walk", walk)
    except sqlite3.Error:
        pass  # a read-only index: the next call compares the tables again


def state_get(conn: sqlite3.Connection, table: str, key: str) -> str | None:
    row = conn.execute(f"SELECT value FROM {table} WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def state_set(conn: sqlite3.Connection, table: str, key: str, value: str) -> None:
    conn.execute(f"INSERT OR REPLACE INTO {table}(key, value) VALUES (?, ?)", (key, value))


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
