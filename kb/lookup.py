"""Finding a note from a name typed by a person: stricter than ``Vault.find`` (refuses a
name that fits several notes equally well) and more helpful (suggests notes whose names
contain the words typed).

Library use::

    from kb.vault import Vault
    from kb.lookup import find_unique

    path = find_unique(Vault("notes"), "llama")   # NoteNotFound with .suggestions if none fits
"""

from __future__ import annotations

import re
from typing import Any

from paperkb.errors import NoteNotFound, PaperkbError

_KIND_RANK = {"path": 0, "name": 1, "alias": 2, "citekey": 3, "title": 4}


def find_unique(vault: Any, name: str) -> str:
    """The path of the one note ``name`` names in ``vault`` (a ``kb.vault.Vault``).

    A name tied between several notes (two files ``Note.md`` in different folders, one
    alias on two notes) raises PaperkbError listing them, since guessing would show the
    wrong paper; a name fitting nothing raises NoteNotFound whose ``suggestions`` are the
    close matches (by spelling, else notes whose names contain its words)."""
    path = vault.find(name)
    if path is None:
        conn = vault.connect()
        suggestions = close_matches(conn, name) or loose_matches(conn, name)
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise NoteNotFound(f"no note named {name!r} in {vault.root}{hint}", suggestions=suggestions)
    tied = equally_good(vault.connect(), name)
    if len(tied) > 1:
        raise PaperkbError(
            f"{name!r} names {len(tied)} notes: {', '.join(tied[:5])}; give the path to pick one",
            suggestions=tied[:5],
        )
    return path


def close_matches(conn: Any, name: str, limit: int = 3) -> list[str]:
    """Notes whose file name, alias, citekey or title is spelled close to ``name``."""
    import difflib  # only on a miss: keeps `paperkb show` start-up lean

    from kb.resolve import norm

    spelled: dict[str, tuple[str, str]] = {}
    for key, path, label in conn.execute("SELECT key, path, label FROM names WHERE kind != 'path'"):
        spelled.setdefault(key, (label, path))
    shown: list[str] = []
    for key in difflib.get_close_matches(norm(name), list(spelled), n=5, cutoff=0.6):
        label, path = spelled[key]
        text = label if path.rsplit("/", 1)[-1][:-3] == label else f"{label} ({path})"
        if text not in shown:
            shown.append(text)
    return shown[:limit]


def backlink_count(conn: Any, path: str) -> int:
    """How many other notes link to the note at ``path``."""
    row = conn.execute("SELECT COUNT(DISTINCT src) FROM links WHERE resolved=? AND src != ?", (path, path)).fetchone()
    return int(row[0])


def equally_good(conn: Any, name: str) -> list[str]:
    """The notes tied for the best match of ``name`` (more than one: ambiguous)."""
    from kb.resolve import norm, strip_md

    raw = name.strip().replace("\\", "/")
    keys = sorted({norm(raw), norm(strip_md(raw)), norm(raw.lstrip("@")), norm(strip_md(raw).lstrip("@"))} - {""})
    if not keys:
        return []
    by_rank: dict[int, set[str]] = {}
    rows = conn.execute(f"SELECT path, kind FROM names WHERE key IN ({','.join('?' * len(keys))})", keys)
    for path, kind in rows:
        by_rank.setdefault(_KIND_RANK.get(kind, 9), set()).add(path)
    if not by_rank:
        return []
    return sorted(by_rank[min(by_rank)], key=lambda p: (p.count("/"), len(p), p))


def loose_matches(conn: Any, name: str, limit: int = 3) -> list[str]:
    """Notes whose names contain every word of ``name`` (or a close spelling of it)."""
    from kb.resolve import norm

    words = [w for w in re.split(r"[\W_]+", norm(name)) if w]
    if not words:
        return []
    shown: dict[str, str] = {}
    for key, path, kind, label in conn.execute("SELECT key, path, kind, label FROM names"):
        if kind == "path" or path in shown:
            continue
        key_words = [w for w in re.split(r"[\W_]+", key) if w]
        if all(_fits(w, key, key_words) for w in words):
            shown[path] = label if path.rsplit("/", 1)[-1][:-3] == label else f"{label} ({path})"
    return sorted(shown.values(), key=str.lower)[:limit]


def _fits(word: str, key: str, key_words: list[str]) -> bool:
    import difflib  # only on a miss: keeps `paperkb show` start-up lean

    return word in key or bool(difflib.get_close_matches(word, key_words, n=1, cutoff=0.8))


__all__ = ["find_unique", "backlink_count", "close_matches", "equally_good", "loose_matches"]
