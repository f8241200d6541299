"""Which notes an export is about, and the vault's notes in a light form for the citation
graph (read from the index tables, so a one-note summary does not load 10,000 notes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from kb.index import batches
from kb.model import Note


class LightLink:
    """What the citation graph needs of a link (a full ``kb.model.Link`` costs more to build,
    and a 10,000-note vault has 100,000 links)."""

    __slots__ = ("target", "kind", "resolved", "is_citation")

    def __init__(self, target: str, kind: str, resolved: str | None, is_citation: bool) -> None:
        self.target, self.kind, self.resolved, self.is_citation = target, kind, resolved, is_citation


class _Front(msgspec.Struct, gc=False):
    type: Any = None
    marker: Any = msgspec.field(default=msgspec.UNSET, name="paperkb-export")  # kb.publish.papers.EXPORT_MARKER


class _Light(msgspec.Struct, gc=False):
    """The fields of a stored note (``notes.data``) a light note keeps; msgspec skips the
    rest of the ~10 KB unread (SQLite's json_extract parsed all of it)."""

    title: Any = None
    citekey: Any = None
    doi: Any = None
    year: Any = None
    frontmatter: _Front | None = None


_decode_light = msgspec.json.Decoder(_Light).decode


class _SiteFields(_Light, gc=False):
    """A light note's fields plus what the site's index page needs of a stored note, so
    one decode of each ~10 KB document serves both (three SQLite json_extract passes
    parsed every document three times)."""

    claims: Any = None
    dataview_blocks: msgspec.Raw = msgspec.Raw(b"null")
    authors: Any = None


_decode_site = msgspec.json.Decoder(_SiteFields).decode


class SiteExtra(msgspec.Struct, gc=False):
    """Of a stored note: its claims (the dicts the index holds), whether it has dataview
    blocks, and its first three authors padded with "" to the number of authors."""

    claims: list
    dataview: bool
    authors: list


def _site_extra(data: bytes) -> tuple[_Light, SiteExtra]:
    """The light fields and the site's extra fields of one stored note, with the values
    SQLite's json_extract / json_array_length gave for them."""
    d: Any
    try:
        d = _decode_site(data)
        claims, blocks, authors = d.claims, d.dataview_blocks, d.authors
        has_blocks = bool(blocks) and bytes(blocks) not in (b"null", b"[]") and _nonempty_list(blocks)
    except msgspec.MsgspecError:  # not strict JSON (NaN) or not what the model writes
        import json

        raw = json.loads(data)
        raw = raw if isinstance(raw, dict) else {}
        d = _light_from_dict(raw)
        claims, authors = raw.get("claims"), raw.get("authors")
        has_blocks = isinstance(raw.get("dataview_blocks"), list) and bool(raw["dataview_blocks"])
    claims = [c for c in claims if isinstance(c, dict)] if isinstance(claims, list) else []
    first: list = []
    if isinstance(authors, list):
        first = [a for a in (_sql_value(a) for a in authors[:3]) if isinstance(a, str)]
        first += [""] * max(0, len(authors) - len(first))
    return d, SiteExtra(claims, has_blocks, first)


def _light_from_dict(d: Any) -> _Light:
    """The light fields of a stored note decoded by ``json`` (what msgspec refused)."""
    d = d if isinstance(d, dict) else {}
    front = d["frontmatter"] if isinstance(d.get("frontmatter"), dict) else {}
    return _Light(
        d.get("title"),
        d.get("citekey"),
        d.get("doi"),
        d.get("year"),
        _Front(front.get("type"), front.get("paperkb-export", msgspec.UNSET)),
    )


def _nonempty_list(raw: msgspec.Raw) -> bool:
    try:
        value = msgspec.json.decode(raw)
    except msgspec.MsgspecError:
        return False
    return isinstance(value, list) and bool(value)


def _light_fields(data: bytes, light: _Light | None = None) -> tuple[Any, Any, Any, Any, Any, bool]:
    """(title, citekey, doi, year, frontmatter type, export marker present) of a stored note,
    as SQLite's json_extract would give them (an object or list as its JSON text, true as 1)."""
    if light is None:
        try:
            light = _decode_light(data)
        except msgspec.MsgspecError:  # not what the model writes: the general parser
            import json

            light = _light_from_dict(json.loads(data))
    front = light.frontmatter or _Front()
    return (
        _sql_value(light.title),
        _sql_value(light.citekey),
        _sql_value(light.doi),
        _sql_value(light.year),
        _sql_value(front.type),
        front.marker is not msgspec.UNSET,
    )


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return msgspec.json.encode(value).decode()
    return value


def light_notes(vault, paths: Iterable[str] | None = None) -> list[Note]:
    """Every note (or the notes at ``paths``) with only what the paper rule and the citation
    graph need: path, title, citekey, DOI, year, tags, links (resolved) and of the
    frontmatter only ``type`` and the export marker."""
    conn = vault.ensure_index()  # the index, brought up to date
    if paths is None:
        wheres: list[tuple[str, tuple]] = [("", ())]
    else:
        wheres = [(f" WHERE {{col}} IN ({','.join('?' * len(c))})", tuple(c)) for c in batches(sorted(set(paths)))]
    tags: dict[str, list[str]] = {}
    links: dict[str, list] = {}
    rows = []
    for where, args in wheres:
        for path, tag in conn.execute(f"SELECT path, tag FROM tags{where.format(col='path')} ORDER BY rowid", args):
            tags.setdefault(path, []).append(tag)
        for src, kind, target, is_citation, resolved in conn.execute(
            f"SELECT src, kind, target, is_citation, resolved FROM links{where.format(col='src')} ORDER BY src, idx",
            args,
        ):
            links.setdefault(src, []).append(LightLink(target, kind, resolved, bool(is_citation)))
        rows.extend(conn.execute(f"SELECT path, CAST(data AS BLOB) FROM notes{where.format(col='path')}", args))
    notes = []
    for path, data in sorted(rows):
        title, citekey, doi, year, kind, marker = _light_fields(data)
        notes.append(_light_note(path, title, citekey, doi, year, kind, marker, tags.get(path, []), links))
    return notes


def _light_note(path: str, title, citekey, doi, year, kind, marker, tag_list: list, links: dict) -> Note:
    """A note holding only what the paper rule and the citation graph read."""
    from kb.publish.papers import EXPORT_MARKER

    frontmatter: dict = {}
    if kind is not None:
        frontmatter["type"] = kind
    if marker:
        frontmatter[EXPORT_MARKER] = True
    return Note(
        path=path,
        title=title or "",
        citekey=citekey,
        doi=doi,
        year=year if isinstance(year, int) else None,
        tags=tag_list,
        frontmatter=frontmatter,
        links=links.get(path, []),
    )


_CACHE_FIELDS = 11  # hash, title, citekey, doi, year, type, export marker, tags, claims, dataview, authors


def _cached(entry: Any, content_hash: Any) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == _CACHE_FIELDS
        and content_hash is not None
        and entry[0] == content_hash
        and isinstance(entry[7], list)
        and isinstance(entry[8], list)
        and isinstance(entry[10], list)
        and all(isinstance(c, dict) for c in entry[8])
        and all(isinstance(t, str) for t in entry[7])
    )


def site_notes(vault, cache: Any = None) -> tuple[list[Note], dict[str, SiteExtra], dict[str, Any]]:
    """``light_notes(vault)`` and every note's :class:`SiteExtra`, for the static site.

    What a note's content alone decides (title, citekey, DOI, year, type, export marker,
    tags, claims, dataview blocks, authors) is taken from ``cache`` (what the last call
    returned, kept by the caller) for every note whose content hash is unchanged: after one
    note changed, one stored note is read instead of 10,000. Links are always read from the
    index, since where they resolve depends on the other notes. Returns (notes, extra, the
    new cache)."""
    conn = vault.ensure_index()  # the index, brought up to date
    row = conn.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
    index_version = row[0] if row else ""
    old: dict = {}
    if isinstance(cache, dict) and cache.get("index") == index_version and isinstance(cache.get("notes"), dict):
        old = cache["notes"]
    entries: dict[str, list] = {}
    todo: list[str] = []
    for path, content_hash in conn.execute("SELECT path, hash FROM notes"):
        entry = old.get(path)
        if isinstance(entry, list) and _cached(entry, content_hash):
            entries[path] = entry
        else:
            todo.append(path)
    for chunk in batches(sorted(todo)):
        marks = ",".join("?" * len(chunk))
        tags: dict[str, list[str]] = {}
        for path, tag in conn.execute(f"SELECT path, tag FROM tags WHERE path IN ({marks}) ORDER BY rowid", chunk):
            tags.setdefault(path, []).append(tag)
        for path, content_hash, data in conn.execute(
            f"SELECT path, hash, CAST(data AS BLOB) FROM notes WHERE path IN ({marks})", chunk
        ):
            light, more = _site_extra(data)
            title, citekey, doi, year, kind, marker = _light_fields(data, light)
            entries[path] = [
                content_hash, title, citekey, doi, year, kind, marker,
                tags.get(path, []), more.claims, more.dataview, more.authors,
            ]  # fmt: skip
    links: dict[str, list] = {}
    for src, kind, target, is_citation, resolved in conn.execute(
        "SELECT src, kind, target, is_citation, resolved FROM links ORDER BY src, idx"
    ):
        links.setdefault(src, []).append(LightLink(target, kind, resolved, bool(is_citation)))
    notes: list[Note] = []
    extra: dict[str, SiteExtra] = {}
    for path in sorted(entries):
        _, title, citekey, doi, year, kind, marker, tag_list, claims, dataview, authors = entries[path]
        notes.append(_light_note(path, title, citekey, doi, year, kind, marker, list(tag_list), links))
        extra[path] = SiteExtra(claims, bool(dataview), authors)
    return notes, extra, {"index": index_version, "notes": entries}


def neighbourhood_paths(vault, paths: Iterable[str]) -> set[str]:
    """``paths``, the notes they link to and the notes that link to them: enough to know
    what the notes at ``paths`` cite and who cites or mentions them."""
    conn = vault.ensure_index()
    near = set(paths)
    for chunk in batches(sorted(near)):
        marks = ",".join("?" * len(chunk))
        near.update(
            p
            for (p,) in conn.execute(
                f"SELECT resolved FROM links WHERE src IN ({marks}) AND resolved IS NOT NULL", chunk
            )
        )
        near.update(p for (p,) in conn.execute(f"SELECT src FROM links WHERE resolved IN ({marks})", chunk))
    return near


def select_paths(
    vault, names: Iterable[str] = (), *, query: str | None = None, tag: str | None = None
) -> list[str] | None:
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
        rows = vault.ensure_index().execute(
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
    return list(dict.fromkeys(paths))  # first occurrence of each, in order
