"""The claims of a vault, read from its SQLite index (no note is re-parsed).

``paperkb status`` and ``paperkb claims`` must answer quickly on a large vault: the index
already holds every parsed note as JSON, so the claims, the note's title, citekey and tags
are pulled out with SQLite's JSON functions, filtered in SQL by note and tag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kb.model import tag_key


def indexed_claims(vault: Any, *, note_path: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
    """Every claim of ``vault`` (a ``kb.vault.Vault`` or a vault folder), in path and line order.

    Each is a dict: ``id, statement, experiments, line, source, params, expect, needs, note
    (vault path), title, citekey``. ``note_path`` keeps one note's claims; ``tag`` keeps the
    notes carrying that tag or one below it (``paper`` matches ``paper/ml``).
    """
    from kb.vault import Vault

    own = not isinstance(vault, Vault)
    v = Vault(Path(vault)) if own else vault
    try:
        conn = v._ensure()
        sql = ("SELECT path, json_extract(data, '$.title'), json_extract(data, '$.citekey'), "
               "json_extract(data, '$.claims') FROM notes WHERE json_array_length(data, '$.claims') > 0")
        args: list[Any] = []
        if note_path is not None:
            sql += " AND path = ?"
            args.append(note_path)
        if tag is not None:
            key = tag_key(tag)
            sql += " AND path IN (SELECT path FROM tags WHERE key = ? OR substr(key, 1, ?) = ?)"
            args += [key, len(key) + 1, key + "/"]
        sql += " ORDER BY path"
        out: list[dict[str, Any]] = []
        for path, title, citekey, claims in conn.execute(sql, args):
            name = path.rsplit("/", 1)[-1]
            name = name[:-3] if name.lower().endswith(".md") else name
            for c in json.loads(claims):
                out.append({
                    "id": c["id"], "statement": c.get("statement", ""), "experiments": list(c.get("experiments") or []),
                    "line": c.get("line", 0), "source": c.get("source", "callout"),
                    "params": dict(c.get("params") or {}), "expect": list(c.get("expect") or []),
                    "needs": c.get("needs") or "", "note": path, "title": title or name, "citekey": citekey,
                })
        return out
    finally:
        if own:
            v.close()
