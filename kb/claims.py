"""The claims of a vault, read from its SQLite index (no note is re-parsed).

``paperkb status`` and ``paperkb claims`` must answer in a fraction of a second on a
10,000-note vault. The index keeps every parsed note as one JSON document; pulling the
claims out of all of them costs a JSON parse of each document on every call. So this
module keeps its own small table in the index database (the index allows other modules'
tables), ``claim_notes``: per note its content hash, title, citekey and claims JSON. A
call brings it up to date with the ``notes`` table — only notes whose hash changed are
read again, and the whole table is rebuilt when the index's code fingerprint changes —
then reads it, filtered in SQL by note path and by tag (through the index's ``tags``
table).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from kb.index import SCAN_DIGEST_KEY
from kb.model import tag_key

_TABLE = "claim_notes"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE} (path TEXT PRIMARY KEY, hash TEXT, title TEXT, citekey TEXT, "
    "claims TEXT NOT NULL)"
)
_FINGERPRINT_KEY = "claim_notes_fingerprint"
# Bump when what this module stores changes: kb/claims.py is not part of the index's code
# fingerprint (editing it must not re-parse the vault), so the table carries its own.
_LAYOUT = "1"
_SYNCED_WALK_KEY = "claim_notes_walk"
# The notes whose stored JSON has a non-empty claims list start their list like this
# (``kb.index.note_json`` writes compact JSON); others are not parsed at all.
_HAS_CLAIMS = "instr(n.data, '\"claims\":[{') > 0"


def sync(conn: sqlite3.Connection) -> None:
    """Bring ``claim_notes`` up to date with the index's ``notes`` table."""
    conn.execute(_SCHEMA)
    meta = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('fingerprint', ?, ?, ?)",
            (_FINGERPRINT_KEY, SCAN_DIGEST_KEY, _SYNCED_WALK_KEY),
        ).fetchall()
    )
    fingerprint = meta.get("fingerprint", "") + ":" + _LAYOUT
    rebuild = meta.get(_FINGERPRINT_KEY) != fingerprint
    # The index deletes its walk digest whenever it changes (kb.vault): the same digest as
    # at the last sync means the notes table has not changed since, and the comparison
    # of every note's hash below can be skipped.
    walk = meta.get(SCAN_DIGEST_KEY)
    if not rebuild and walk is not None and meta.get(_SYNCED_WALK_KEY) == walk:
        return
    if not rebuild:
        stale = conn.execute(
            f"SELECT 1 FROM notes n LEFT JOIN {_TABLE} c ON c.path = n.path WHERE c.hash IS NOT n.hash LIMIT 1"
        ).fetchone()
        gone = conn.execute(f"SELECT 1 FROM {_TABLE} c WHERE c.path NOT IN (SELECT path FROM notes) LIMIT 1").fetchone()
        if stale is None and gone is None:
            _mark_synced(conn, walk)
            return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rebuild:
            conn.execute(f"DELETE FROM {_TABLE}")
        else:
            conn.execute(f"DELETE FROM {_TABLE} WHERE path NOT IN (SELECT path FROM notes)")
        changed = "" if rebuild else f"AND n.hash IS NOT (SELECT c.hash FROM {_TABLE} c WHERE c.path = n.path)"
        conn.execute(
            f"INSERT OR REPLACE INTO {_TABLE} (path, hash, title, citekey, claims) "
            f"SELECT n.path, n.hash, n.data ->> '$.title', n.data ->> '$.citekey', n.data -> '$.claims' "
            f"FROM notes n WHERE {_HAS_CLAIMS} {changed}"
        )
        conn.execute(
            f"INSERT OR REPLACE INTO {_TABLE} (path, hash, title, citekey, claims) "
            f"SELECT n.path, n.hash, NULL, NULL, '[]' FROM notes n WHERE NOT {_HAS_CLAIMS} {changed}"
        )
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_FINGERPRINT_KEY, fingerprint))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    _mark_synced(conn, walk)


def _mark_synced(conn: sqlite3.Connection, walk: str | None) -> None:
    """Record the index's walk digest (read before the sync) that ``claim_notes`` matches."""
    if walk is None or getattr(conn, "readonly", False):
        return
    try:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_SYNCED_WALK_KEY, walk))
    except sqlite3.Error:
        pass  # only spares the next call a check


def indexed_claims(vault: Any, *, note_path: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
    """Every claim of ``vault`` (a ``kb.vault.Vault`` or a vault folder), in path and line order.

    Each is a dict: ``id, statement, experiments, line, source, params, expect, needs, note
    (vault path), title, citekey``. ``note_path`` keeps one note's claims; ``tag`` keeps the
    notes carrying that tag or one below it (``paper`` matches ``paper/ml``).
    """
    return [
        claim_entry(c, path, title, citekey)
        for path, title, citekey, c in claim_records(vault, note_path=note_path, tag=tag)
    ]


def claim_entry(c: dict[str, Any], path: str, title: str, citekey: str | None) -> dict[str, Any]:
    """One claim as :func:`indexed_claims` lists it, from its stored dict and its note."""
    return {
        "id": c["id"],
        "statement": c.get("statement", ""),
        "experiments": c.get("experiments") or [],
        "line": c.get("line", 0),
        "source": c.get("source", "callout"),
        "params": c.get("params") or {},
        "expect": c.get("expect") or [],
        "needs": c.get("needs") or "",
        "note": path,
        "title": title,
        "citekey": citekey,
    }


def claim_records(
    vault: Any, *, note_path: str | None = None, tag: str | None = None
) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """:func:`indexed_claims` as ``(note path, title, citekey, claim as stored)``, for callers
    that build their own records (``repro.status``) without an intermediate dict per claim."""
    from kb.vault import Vault

    own = not isinstance(vault, Vault)
    v = Vault(Path(vault)) if own else vault
    try:
        conn = v.ensure_index()
        sync(conn)
        where = "claims != '[]'"
        args: list[Any] = []
        if note_path is not None:
            where += " AND path = ?"
            args.append(note_path)
        if tag is not None:
            key = tag_key(tag)
            # "key/..." as a range of the tags_key index ('0' follows '/'), not a scan of all tags
            where += " AND path IN (SELECT path FROM tags WHERE key = ? OR (key >= ? AND key < ?))"
            args += [key, key + "/", key + "0"]
        # One JSON text for every matching note, decoded by one json.loads: far cheaper than
        # a decode per note (claims is stored as JSON text already: spliced in as it is).
        (text,) = conn.execute(
            "SELECT '[' || coalesce(group_concat('[' || json_quote(path) || ',' || json_quote(title) || ',' "
            "|| json_quote(citekey) || ',' || claims || ']', ','), '') || ']' "
            f"FROM (SELECT path, title, citekey, claims FROM {_TABLE} WHERE {where} ORDER BY path)",
            args,
        ).fetchone()
        try:
            records = json.loads(text)
        except ValueError:  # a damaged table: worded as SQLite's own JSON check would be
            raise sqlite3.DatabaseError("malformed JSON") from None
        out: list[tuple[str, str, str | None, dict[str, Any]]] = []
        for path, title, citekey, claims in records:
            if not title:
                name = path.rsplit("/", 1)[-1]
                title = name[:-3] if name.lower().endswith(".md") else name
            if len(claims) > 1:
                claims.sort(key=lambda c: c.get("line", 0))
            out += [(path, title, citekey, c) for c in claims]
        return out
    finally:
        if own:
            v.close()
