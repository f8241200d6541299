"""Which notes an export is about, and the vault's notes in a light form for the citation
graph (read from the index tables, so a one-note summary does not load 10,000 notes)."""

from __future__ import annotations

import json
from typing import Iterable

from kb.model import Link, Note


def light_notes(vault) -> list[Note]:
    """Every note with only what the paper rule and the citation graph need: path, title,
    citekey, DOI, year, tags, frontmatter and links (resolved)."""
    conn = vault._ensure()  # the index, brought up to date
    tags: dict[str, list[str]] = {}
    for path, tag in conn.execute("SELECT path, tag FROM tags ORDER BY rowid"):
        tags.setdefault(path, []).append(tag)
    links: dict[str, list[Link]] = {}
    for src, line, kind, target, is_citation, resolved in conn.execute(
        "SELECT src, line, kind, target, is_citation, resolved FROM links ORDER BY src, idx"
    ):
        links.setdefault(src, []).append(
            Link(target=target, kind=kind, line=line, is_citation=bool(is_citation), resolved=resolved)
        )
    notes = []
    for path, title, citekey, doi, year, fm in conn.execute(
        "SELECT path, json_extract(data, '$.title'), json_extract(data, '$.citekey'), "
        "json_extract(data, '$.doi'), json_extract(data, '$.year'), json_extract(data, '$.frontmatter') "
        "FROM notes ORDER BY path"
    ):
        frontmatter = json.loads(fm) if fm else {}
        notes.append(Note(path=path, title=title or "", citekey=citekey, doi=doi,
                          year=year if isinstance(year, int) else None, tags=tags.get(path, []),
                          frontmatter=frontmatter if isinstance(frontmatter, dict) else {},
                          links=links.get(path, [])))
    return notes


def select_paths(vault, names: Iterable[str] = (), *, query: str | None = None,
                 tag: str | None = None) -> list[str] | None:
    """Paths of the notes named, matched by a DQL query, or carrying a tag (nested tags
    included: ``ml`` picks ``ml/nlp``); None means the whole vault."""
    from kb.errors import NoteNotFound, PaperkbError
    from kb.model import tag_key

    names = list(names)
    if not names and query is None and tag is None:
        return None
    paths: list[str] = []
    for name in names:
        path = vault.find(name)
        if path is None:
            vault.note(name)  # raises NoteNotFound with close matches
            raise NoteNotFound(f"no note named {name!r}")
        paths.append(path)
    if tag is not None:
        key = tag_key(tag)
        if not key:
            raise PaperkbError("--tag needs a tag name", exit_code=2)
        rows = vault._ensure().execute(
            "SELECT DISTINCT path FROM tags WHERE key = ? OR key LIKE ? ESCAPE '\\'",
            (key, key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"),
        )
        paths.extend(p for (p,) in rows)
    if query is not None:
        from kb.query import run_query

        result = run_query(vault, query)
        for row in result.rows:
            if row.path:
                paths.append(row.path)
            for member in row.group or ():
                if member.path:
                    paths.append(member.path)
    seen: set[str] = set()
    return [p for p in paths if not (p in seen or seen.add(p))]
