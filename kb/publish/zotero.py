"""Zotero in: one note per item of the user's local Zotero library that has no note yet.

``zotero.sqlite`` is opened read-only and *immutable* (SQLite URI ``mode=ro&immutable=1``):
Zotero keeps the database locked while it runs, and an immutable reader takes no lock and
writes nothing, so a running Zotero is never disturbed (what it wrote last to its WAL may
be missed until it checkpoints, usually when it closes).

Tables are read by name (``itemTypesCombined``, ``fieldsCombined``,
``baseFieldMappingsCombined``...), never by Zotero's numeric ids. Citekeys come from
Zotero 7's ``citationKey`` field, else Better BibTeX's ``better-bibtex.sqlite`` (its
``citationkey`` table, or the older ``better-bibtex`` JSON store), else a ``Citation Key:``
line in Extra, else the key Better BibTeX would make (``vaswaniAttentionAllYou2017``).

An item becomes a BibTeX-like entry (the fields Better BibTeX's export gives it) and then
a note from the vault's template (kb.publish.notetemplate), with Zotero's own extras: tags,
collections, the ``zotero://select`` link, the PDF attachment and its annotations.

``.paperkb/zotero-imports.json`` records each note paperkb wrote (its item, the SHA-256 of
the text written): ``--update`` rewrites only a note whose text is still exactly that, so
text a user wrote is never touched.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.publish.bibtex import (
    BibEntry,
    ImportReport,
    Person,
    arxiv_id,
    bbt_citekey,
    item_context,
    known_ids,
    note_file_name,
    parse_person,
)
from paperkb.errors import PaperkbError

STATE_FILE = "zotero-imports.json"  # in .paperkb/
MAX_SECONDS = 120.0  # reading one library
MAX_ITEMS = 200_000
_NOT_ITEMS = ("attachment", "note", "annotation")

# Zotero item type -> BibTeX type, as Better BibTeX exports them
_ENTRY_TYPE = {
    "journalArticle": "article",
    "magazineArticle": "article",
    "newspaperArticle": "article",
    "conferencePaper": "inproceedings",
    "preprint": "misc",
    "book": "book",
    "bookSection": "incollection",
    "thesis": "phdthesis",
    "report": "techreport",
    "manuscript": "unpublished",
}
# Zotero (base) field -> BibTeX field, as Better BibTeX exports them
_FIELD = {
    "volume": "volume",
    "pages": "pages",
    "ISSN": "issn",
    "ISBN": "isbn",
    "series": "series",
    "edition": "edition",
    "shortTitle": "shorttitle",
    "DOI": "doi",
    "url": "url",
    "abstractNote": "abstract",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# Zotero's annotation colours, by the names its reader gives them
_COLOURS = {
    "#ffd400": "yellow",
    "#ff6666": "red",
    "#5fb236": "green",
    "#2ea8e5": "blue",
    "#a28ae5": "purple",
    "#e56eee": "magenta",
    "#f19837": "orange",
    "#aaaaaa": "grey",
}
_ANNOTATION_TYPES = {1: "highlight", 2: "note", 3: "image", 4: "ink", 5: "underline", 6: "text"}


class ZoteroError(PaperkbError):
    pass


def default_data_dir() -> Path:
    """Zotero's default data directory: ``~/Zotero`` on macOS, Windows and Linux."""
    return Path.home() / "Zotero"


@dataclass
class Annotation:
    key: str
    kind: str  # highlight, underline, note, image, ink, text
    text: str
    comment: str
    color: str
    page: str
    sort_index: str
    attachment_key: str
    modified: str = ""


@dataclass
class ZoteroItem:
    item_id: int
    key: str
    library_id: int
    group_id: int | None
    item_type: str
    fields: dict[str, str]  # Zotero field names, with each type-specific field also under its base name
    creators: list[tuple[str, Person]]  # (creator type, name)
    tags: list[str]
    collections: list[str]  # paths: "Parent/Child"
    date_added: str
    date_modified: str
    citekey: str = ""
    pdf: Path | str | None = None
    pdf_key: str = ""
    annotations: list[Annotation] = field(default_factory=list)

    @property
    def library_path(self) -> str:
        """How zotero:// links name the library: ``library`` (yours) or ``groups/ID``."""
        return f"groups/{self.group_id}" if self.group_id else "library"

    @property
    def select_uri(self) -> str:
        return f"zotero://select/{self.library_path}/items/{self.key}"


# --- reading the database -----------------------------------------------------------------
def open_database(path: Path) -> sqlite3.Connection:
    """``path`` read-only and immutable: no lock taken, nothing written, Zotero undisturbed."""
    if not path.is_file():
        raise ZoteroError(f"no Zotero database at {path} (pass Zotero's data directory, the folder of zotero.sqlite)")
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ZoteroError(f"{path}: cannot read it as an SQLite database: {exc}") from None
    deadline = time.monotonic() + MAX_SECONDS
    db.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)  # 1 aborts the query
    return db


def _table(db: sqlite3.Connection, *names: str) -> str:
    """The first of ``names`` that the database has with rows (Zotero fills the *Combined
    tables at startup; an older database has only the plain ones)."""
    for name in names:
        try:
            if db.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone():
                return name
        except sqlite3.DatabaseError:
            continue
    return names[-1]


def read_library(
    data_dir: Path,
    *,
    collection: str | None = None,
    tag: str | None = None,
    since: str | None = None,
) -> list[ZoteroItem]:
    """The regular items (not attachments, notes or annotations; not in the trash) of the
    Zotero library in ``data_dir``, with the filters the CLI offers."""
    path = data_dir / "zotero.sqlite"
    db = open_database(path)
    try:
        return _read(db, data_dir, collection=collection, tag=tag, since=since)
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise ZoteroError(f"{path}: reading took longer than {MAX_SECONDS:g} s") from None
        raise ZoteroError(f"{path}: not a Zotero database this version of paperkb can read ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise ZoteroError(f"{path}: {exc}") from None
    finally:
        db.close()


def _read(db: sqlite3.Connection, data_dir: Path, *, collection, tag, since) -> list[ZoteroItem]:
    types = _table(db, "itemTypesCombined", "itemTypes")
    fields_table = _table(db, "fieldsCombined", "fields")
    base_table = _table(db, "baseFieldMappingsCombined", "baseFieldMappings")
    excluded = ",".join("?" * len(_NOT_ITEMS))
    deleted = "AND i.itemID NOT IN (SELECT itemID FROM deletedItems)" if _has_table(db, "deletedItems") else ""
    rows = db.execute(
        f"SELECT i.itemID, i.key, i.libraryID, t.typeName, i.dateAdded, i.dateModified FROM items i "
        f"JOIN {types} t ON t.itemTypeID = i.itemTypeID WHERE t.typeName NOT IN ({excluded}) {deleted} "
        f"ORDER BY i.itemID LIMIT {MAX_ITEMS + 1}",
        _NOT_ITEMS,
    ).fetchall()
    if len(rows) > MAX_ITEMS:
        raise ZoteroError(f"the library has more than {MAX_ITEMS} items; import a --collection at a time")
    groups = dict(db.execute("SELECT libraryID, groupID FROM groups").fetchall()) if _has_table(db, "groups") else {}
    base_of = {
        (type_id, field_id): base
        for type_id, field_id, base in db.execute(
            f"SELECT m.itemTypeID, m.fieldID, f.fieldName FROM {base_table} m "
            f"JOIN {fields_table} f ON f.fieldID = m.baseFieldID"
        )
    }
    item_type_ids = dict(db.execute("SELECT itemID, itemTypeID FROM items").fetchall())
    values: dict[int, dict[str, str]] = {}
    for item_id, field_id, name, value in db.execute(
        f"SELECT d.itemID, d.fieldID, f.fieldName, v.value FROM itemData d "
        f"JOIN {fields_table} f ON f.fieldID = d.fieldID JOIN itemDataValues v ON v.valueID = d.valueID"
    ):
        entry = values.setdefault(item_id, {})
        entry[name] = str(value)
        base = base_of.get((item_type_ids.get(item_id), field_id))
        if base:
            entry.setdefault(base, str(value))
    creators: dict[int, list[tuple[str, Person]]] = {}
    for item_id, first, last, mode, kind in db.execute(
        "SELECT ic.itemID, c.firstName, c.lastName, c.fieldMode, ct.creatorType FROM itemCreators ic "
        "JOIN creators c ON c.creatorID = ic.creatorID JOIN creatorTypes ct ON ct.creatorTypeID = ic.creatorTypeID "
        "ORDER BY ic.itemID, ic.orderIndex"
    ):
        creators.setdefault(item_id, []).append((kind, _person(first or "", last or "", mode)))
    tags: dict[int, list[str]] = {}
    for item_id, name in db.execute(
        "SELECT it.itemID, t.name FROM itemTags it JOIN tags t ON t.tagID = it.tagID ORDER BY it.itemID, t.name"
    ):
        tags.setdefault(item_id, []).append(name)
    paths = _collection_paths(db)
    in_collections: dict[int, list[int]] = {}
    for coll_id, item_id in db.execute("SELECT collectionID, itemID FROM collectionItems"):
        in_collections.setdefault(item_id, []).append(coll_id)
    pdfs = _pdfs(db, data_dir)
    annotations = _annotations(db)

    wanted_collections: set[int] | None = None
    if collection:
        wanted_collections = _matching_collections(paths, collection)
        if not wanted_collections:
            known = ", ".join(sorted(paths.values())[:20]) or "none"
            raise ZoteroError(f"no collection {collection!r} in the library (collections: {known})", exit_code=2)
    items = []
    for item_id, key, library_id, type_name, added, modified in rows:
        item_tags = tags.get(item_id, [])
        colls = in_collections.get(item_id, [])
        if wanted_collections is not None and not wanted_collections.intersection(colls):
            continue
        if tag and tag.casefold() not in {t.casefold() for t in item_tags}:
            continue
        pdf = pdfs.get(item_id)
        item_annotations = annotations.get(pdf[2], []) if pdf else []
        if since and max([str(added), str(modified)] + [a.modified for a in item_annotations]) < since:
            continue  # neither the item nor its annotations changed since
        item = ZoteroItem(
            item_id=item_id,
            key=str(key),
            library_id=library_id,
            group_id=groups.get(library_id),
            item_type=str(type_name),
            fields=values.get(item_id, {}),
            creators=creators.get(item_id, []),
            tags=item_tags,
            collections=sorted(paths[c] for c in colls if c in paths),
            date_added=str(added),
            date_modified=str(modified),
            pdf=pdf[1] if pdf else None,
            pdf_key=pdf[0] if pdf else "",
            annotations=item_annotations,
        )
        items.append(item)
    _assign_citekeys(db, data_dir, items)
    return items


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _person(first: str, last: str, mode: int | None) -> Person:
    """A Zotero creator as BibTeX's parts: a one-field name (``fieldMode`` 1: an institution)
    stays whole in braces; particles in the last name (``van den Driessche``) become von."""
    if mode == 1 or not first:
        text = " ".join(last.split())
        return Person(last="{" + text + "}" if " " in text else text)
    last = " ".join(last.split())
    if " " in last and not last.startswith("{"):
        p = parse_person(f"{last}, {first}")
        if p.von:
            return p
        return Person(first=" ".join(first.split()), last="{" + last + "}")
    return parse_person(f"{last}, {first}")


def _collection_paths(db: sqlite3.Connection) -> dict[int, str]:
    rows = {
        cid: (name, parent)
        for cid, name, parent in db.execute("SELECT collectionID, collectionName, parentCollectionID FROM collections")
    }
    paths: dict[int, str] = {}
    for cid in rows:
        parts, seen, cur = [], set(), cid
        while cur in rows and cur not in seen:  # a loop in bad data ends here
            seen.add(cur)
            parts.append(str(rows[cur][0]).replace("/", "-"))
            cur = rows[cur][1]
        paths[cid] = "/".join(reversed(parts))
    return paths


def _matching_collections(paths: dict[int, str], wanted: str) -> set[int]:
    """Collections named ``wanted`` (a name or a path ``A/B``), with their subcollections."""
    wanted = wanted.strip("/").casefold()
    roots = [p for p in paths.values() if p.casefold() == wanted or p.rsplit("/", 1)[-1].casefold() == wanted]
    return {cid for cid, p in paths.items() if any(p == r or p.startswith(r + "/") for r in roots)}


def _pdfs(db: sqlite3.Connection, data_dir: Path) -> dict[int, tuple[str, Path | str, int]]:
    """item -> (attachment key, file, attachment itemID) of its first PDF (stored files live
    in ``storage/KEY/``; linked files keep their path)."""
    out: dict[int, tuple[str, Path | str, int]] = {}
    for parent, att_id, key, link_mode, path in db.execute(
        "SELECT a.parentItemID, a.itemID, i.key, a.linkMode, a.path FROM itemAttachments a "
        "JOIN items i ON i.itemID = a.itemID WHERE a.contentType = 'application/pdf' AND a.parentItemID IS NOT NULL "
        "ORDER BY a.parentItemID, a.itemID"
    ):
        if parent in out or not path:
            continue
        text = str(path)
        if text.startswith("storage:") and link_mode in (0, 1):
            name = text[len("storage:") :]
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                continue
            out[parent] = (str(key), data_dir / "storage" / str(key) / name, att_id)
        elif link_mode == 2:
            out[parent] = (str(key), text if text.startswith("attachments:") else Path(text), att_id)
    return out


def _annotations(db: sqlite3.Connection) -> dict[int, list[Annotation]]:
    """attachment itemID -> its annotations in reading order (Zotero's sortIndex)."""
    if not _has_table(db, "itemAnnotations"):
        return {}
    out: dict[int, list[Annotation]] = {}
    deleted = "WHERE a.itemID NOT IN (SELECT itemID FROM deletedItems)" if _has_table(db, "deletedItems") else ""
    for parent, key, kind, text, comment, color, page, sort_index, att_key, modified in db.execute(
        "SELECT a.parentItemID, i.key, a.type, a.text, a.comment, a.color, a.pageLabel, a.sortIndex, p.key, "
        "i.dateModified "
        "FROM itemAnnotations a JOIN items i ON i.itemID = a.itemID JOIN items p ON p.itemID = a.parentItemID "
        f"{deleted} ORDER BY a.parentItemID, a.sortIndex"
    ):
        out.setdefault(parent, []).append(
            Annotation(
                key=str(key),
                kind=_ANNOTATION_TYPES.get(kind, "annotation"),
                text=str(text or ""),
                comment=str(comment or ""),
                color=str(color or ""),
                page=str(page or ""),
                sort_index=str(sort_index or ""),
                attachment_key=str(att_key),
                modified=str(modified or ""),
            )
        )
    return out


_CITEKEY_IN_EXTRA = re.compile(r"(?im)^\s*citation key\s*:\s*(\S+)\s*$")


def _assign_citekeys(db: sqlite3.Connection, data_dir: Path, items: list[ZoteroItem]) -> None:
    bbt = _better_bibtex_keys(data_dir)
    taken: set[str] = set()
    generated = []
    for item in items:
        key = item.fields.get("citationKey", "").strip() or bbt.get((item.library_id, item.key), "")
        if not key:
            m = _CITEKEY_IN_EXTRA.search(item.fields.get("extra", ""))
            key = m.group(1) if m else ""
        if key:
            item.citekey = key
            taken.add(key.casefold())
        else:
            generated.append(item)
    for item in generated:  # Better BibTeX's way with clashes: a, b, c... after the key
        authors = [p for kind, p in item.creators if kind == "author"] or [p for _k, p in item.creators]
        base = bbt_citekey(authors[0].family if authors else "", item.fields.get("title", ""), _year(item))
        key, n = base, 0
        while key.casefold() in taken:
            key = base + _suffix(n)
            n += 1
        item.citekey = key
        taken.add(key.casefold())


def _suffix(n: int) -> str:
    letters = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(ord("a") + r) + letters
    return letters


def _better_bibtex_keys(data_dir: Path) -> dict[tuple[int, str], str]:
    """(libraryID, item key) -> citekey from Better BibTeX's database, if there is one."""
    path = data_dir / "better-bibtex.sqlite"
    if not path.is_file():
        return {}
    try:
        db = open_database(path)
    except ZoteroError as exc:
        print(f"warning: {exc}; citekeys are generated", file=sys.stderr)
        return {}
    out: dict[tuple[int, str], str] = {}
    try:
        if _has_table(db, "citationkey"):  # Better BibTeX 6.7 and later
            for library_id, key, citekey in db.execute("SELECT libraryID, itemKey, citationKey FROM citationkey"):
                if citekey:
                    out[(int(library_id or 1), str(key))] = str(citekey)
        elif _has_table(db, "better-bibtex"):  # older: a LokiJS store as JSON
            row = db.execute("SELECT data FROM \"better-bibtex\" WHERE name = 'better-bibtex.citekey'").fetchone()
            data = json.loads(row[0]) if row and row[0] and len(row[0]) < 200_000_000 else {}
            for rec in data.get("data", []) if isinstance(data, dict) else []:
                if isinstance(rec, dict) and rec.get("citekey") and rec.get("itemKey"):
                    out[(int(rec.get("libraryID") or 1), str(rec["itemKey"]))] = str(rec["citekey"])
    except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
        print(f"warning: {path}: cannot read it ({exc}); citekeys are generated", file=sys.stderr)
    finally:
        db.close()
    return out


# --- item -> entry -> note ----------------------------------------------------------------
def _year(item: ZoteroItem) -> str:
    m = re.match(r"(\d{4})", item.fields.get("date", ""))
    return m.group(1) if m and m.group(1) != "0000" else ""


def entry_of_item(item: ZoteroItem) -> BibEntry:
    """The BibTeX entry Better BibTeX would export for ``item`` (its standard fields)."""
    f = item.fields
    kind = _ENTRY_TYPE.get(item.item_type, "misc")
    fields: dict[str, str] = {"title": f.get("title", "")}
    authors = [p.bibtex for k, p in item.creators if k == "author"]
    editors = [p.bibtex for k, p in item.creators if k == "editor"]
    if authors:
        fields["author"] = " and ".join(authors)
    if editors:
        fields["editor"] = " and ".join(editors)
    year = _year(item)
    if year:
        fields["year"] = year
        month = re.match(r"\d{4}-(\d\d)", f.get("date", ""))
        if month and 1 <= int(month.group(1)) <= 12:
            fields["month"] = _MONTHS[int(month.group(1)) - 1]
    venue = f.get("publicationTitle", "")
    if venue:
        fields[
            {"article": "journal", "inproceedings": "booktitle", "incollection": "booktitle"}.get(kind, "journal")
        ] = venue
    if f.get("issue") or (f.get("number") and kind != "misc"):
        fields["number"] = f.get("issue") or f.get("number", "")
    if f.get("publisher"):
        key = {"techreport": "institution", "phdthesis": "school"}.get(kind, "publisher")
        fields[key] = f["publisher"]
    if f.get("place"):
        fields["address"] = f["place"]
    for zotero_name, bibtex_name in _FIELD.items():
        if f.get(zotero_name):
            fields[bibtex_name] = f[zotero_name]
    if f.get("accessDate"):
        fields["urldate"] = f["accessDate"][:10]
    if f.get("language"):
        fields["language"] = f["language"]
    if item.tags:
        fields["keywords"] = ", ".join(item.tags)
    eprint = arxiv_id(f.get("archiveID", ""), f.get("DOI", ""), f.get("url", ""), f.get("extra", ""))
    if kind == "misc" and eprint:
        fields["eprint"] = eprint
        fields["archiveprefix"] = "arXiv"
    return BibEntry(item.citekey, kind, fields)


def _annotation_context(a: Annotation, library: str = "library") -> dict[str, Any]:
    color = a.color.lower()
    page = re.sub(r"\s+", " ", a.page).strip()
    query = f"page={page}&annotation={a.key}" if page.isdigit() else f"annotation={a.key}"
    uri = f"zotero://open-pdf/{library}/items/{a.attachment_key}?{query}"
    return {
        "key": a.key,
        "type": a.kind,
        "text": a.text,
        "comment": a.comment,
        "color": color if re.fullmatch(r"#[0-9a-f]{3,8}", color) else "",
        "color_name": _COLOURS.get(color, ""),
        "page": page,
        "uri": uri,
    }


def pdf_context(path: Path | str | None) -> dict[str, str] | None:
    if path is None:
        return None
    if isinstance(path, Path) and path.is_absolute():
        return {"path": str(path), "uri": path.as_uri()}
    return {"path": str(path), "uri": ""}


def context_of(item: ZoteroItem, *, today: str | None = None) -> dict[str, Any]:
    """The template variables for ``item`` (docs/templates.md)."""
    entry = entry_of_item(item)
    context = item_context(
        entry,
        item_type=item.item_type,
        keywords=list(item.tags),
        collections=item.collections,
        zotero={
            "key": item.key,
            "library_id": item.library_id,
            "group_id": item.group_id,
            "select_uri": item.select_uri,
            "date_added": item.date_added,
            "date_modified": item.date_modified,
            "fields": dict(item.fields),
        },
        pdf=pdf_context(item.pdf),
        annotations=[_annotation_context(a, item.library_path) for a in item.annotations],
        today=today,
    )
    return context


# --- what paperkb wrote ------------------------------------------------------------------
def _state_path(root: Path) -> Path:
    return root / ".paperkb" / STATE_FILE


def load_state(root: Path) -> dict[str, dict[str, Any]]:
    """vault path -> {"item": "LIB/KEY", "sha256": ..., "today": ...} of the notes paperkb wrote."""
    path = _state_path(root)
    try:
        data = json.loads(path.read_bytes()[:50_000_000])
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        print(f"warning: {path}: cannot read it ({exc}); --update will leave every note alone", file=sys.stderr)
        return {}
    notes = data.get("notes") if isinstance(data, dict) else None
    return {str(k): v for k, v in notes.items() if isinstance(v, dict)} if isinstance(notes, dict) else {}


def save_state(root: Path, notes: dict[str, dict[str, Any]]) -> None:
    """Atomically (a temporary file, then a rename): a kill leaves the old or the new file."""
    path = _state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"version": 1, "notes": notes}, fh, indent=1, sort_keys=True, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.paperkb.tmp")
    with open(tmp, "x", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --- the import ----------------------------------------------------------------------------
def import_zotero(
    vault,
    data_dir: Path | str | None = None,
    *,
    folder: str = "",
    collection: str | None = None,
    tag: str | None = None,
    since: str | None = None,
    dry_run: bool = False,
    update: bool = False,
    today: str | None = None,
) -> ImportReport:
    """One note per item without a note (by citekey, DOI or arXiv id); with ``update``, the
    notes paperkb wrote and nobody changed since are written again from the library."""
    from kb.publish.notetemplate import NoteTemplate

    data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if since is not None:
        since = _since(since)
    items = read_library(data_dir, collection=collection, tag=tag, since=since)
    root = vault.root
    target = (root / folder).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ZoteroError(f"folder {folder!r} is outside the vault", exit_code=2)
    template = NoteTemplate.for_vault(root)
    report = ImportReport()
    with _import_lock(root, dry_run):  # two imports at once: one after the other, no record lost
        state = load_state(root)
        keys, dois, arxivs = known_ids(vault.notes())
        before = json.dumps(state, sort_keys=True)
        try:
            _import_items(
                items,
                root,
                target,
                template,
                state,
                keys,
                dois,
                arxivs,
                report,
                dry_run=dry_run,
                update=update,
                today=today,
            )
        finally:  # a template error halfway still records the notes already written
            if not dry_run and json.dumps(state, sort_keys=True) != before:
                save_state(root, state)
    return report


@contextlib.contextmanager
def _import_lock(root: Path, dry_run: bool):
    """An exclusive lock on ``.paperkb/zotero-imports.lock`` (POSIX ``flock``; the kernel
    drops it when the process dies, so a kill -9 leaves no stale lock)."""
    if dry_run or os.name != "posix":
        yield
        return
    import fcntl

    path = root / ".paperkb" / "zotero-imports.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _import_items(items, root, target, template, state, keys, dois, arxivs, report, *, dry_run, update, today) -> bool:
    by_item = {str(v.get("item")): p for p, v in state.items()}
    changed = False
    for item in items:
        item_id = f"{item.library_id}/{item.key}"
        written = by_item.get(item_id)
        context = context_of(item, today=today)
        doi = str(context["doi"]).casefold()
        arxiv = re.sub(r"v\d+$", "", str(context["arxiv"])).casefold()
        has_note = (
            written is not None
            or item.citekey.casefold() in keys
            or (doi and doi in dois)
            or (arxiv and arxiv in arxivs)
        )
        if has_note:
            if update and written is not None:
                changed |= _update_note(root, written, state[written], item, template, today, report, dry_run)
            else:
                report.skipped.append((item.citekey, "has a note"))
            continue
        name = note_file_name(str(context["title"]), item.citekey)
        path = target / name
        if path.exists() or path.is_symlink():
            path = target / f"{name[:-3]} ({item.citekey}).md"
        if path.exists() or path.is_symlink():
            report.skipped.append((item.citekey, f"{path.name} exists"))
            continue
        rel = path.relative_to(root).as_posix()
        if dry_run:
            report.created.append(rel)
        else:
            try:
                text = template.render(context)
                target.mkdir(parents=True, exist_ok=True)
                with open(path, "x", encoding="utf-8") as fh:  # "x": never replace a file
                    fh.write(text)
            except OSError as exc:
                report.skipped.append((item.citekey, f"cannot write {rel}: {exc.strerror or exc}"))
                continue
            state[rel] = {
                "item": item_id,
                "citekey": item.citekey,
                "sha256": _sha256(text.encode("utf-8")),
                "today": context["today"],
            }
            changed = True
            report.created.append(rel)
        keys.add(item.citekey.casefold())
        if doi:
            dois.add(doi)
        if arxiv:
            arxivs.add(arxiv)
    return changed


def _update_note(
    root: Path, rel: str, record: dict[str, Any], item: ZoteroItem, template, today, report, dry_run: bool
) -> bool:
    path = root / rel
    if path.is_symlink() or not path.is_file():
        report.skipped.append((item.citekey, f"{rel} is gone or is not a plain file: left alone"))
        return False
    try:
        current = path.read_bytes()
    except OSError as exc:
        report.skipped.append((item.citekey, f"cannot read {rel}: {exc.strerror or exc}"))
        return False
    if _sha256(current) != record.get("sha256"):
        report.skipped.append((item.citekey, f"{rel} was changed since paperkb wrote it: left alone"))
        return False
    text = template.render(context_of(item, today=str(record.get("today") or today or "")))
    if text.encode("utf-8") == current:
        report.skipped.append((item.citekey, "up to date"))
        return False
    if not dry_run:
        try:
            _replace(path, text)
        except OSError as exc:
            report.skipped.append((item.citekey, f"cannot write {rel}: {exc.strerror or exc}"))
            return False
        record["sha256"] = _sha256(text.encode("utf-8"))
    report.updated.append(rel)
    return True


def _since(text: str) -> str:
    """``--since`` as Zotero's UTC timestamps read (``YYYY-MM-DD[ HH:MM:SS]``)."""
    try:
        value = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ZoteroError(f"--since {text!r}: not a date (write 2026-12-01 or 2026-12-01T09:30)", exit_code=2) from None
    if value.tzinfo is not None:
        value = value.astimezone(_dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def describe(items: Iterable[ZoteroItem]) -> list[dict[str, Any]]:
    return [
        {"citekey": i.citekey, "key": i.key, "type": i.item_type, "title": i.fields.get("title", "")} for i in items
    ]


__all__ = ["ZoteroError", "ZoteroItem", "default_data_dir", "read_library", "entry_of_item", "import_zotero"]
