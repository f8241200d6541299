"""A ``zotero.sqlite`` built the way Zotero builds one, for the Zotero import tests.

The tables come from Zotero's own SQL files (tests/data/zotero, see SOURCE.md); the item
types, fields and creator types are filled from Zotero's global schema in the order and
with the ids that ``Zotero.Schema._updateGlobalSchema`` gives them, including the
``*Combined`` tables Zotero fills at startup. Items are then inserted as Zotero stores
them: values shared in ``itemDataValues``, dates as Zotero's multipart ``YYYY-MM-DD
original`` strings, creators in ``creators``/``itemCreators``, attachments and annotations
as child items, trashed items in ``deletedItems``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "zotero"
CUSTOM_ID_OFFSET = 10_000  # Zotero.ItemTypes.customIDOffset
USER_LIBRARY = 1


def create_database(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")  # test speed: no fsync per commit (the schema is the same)
    for name in ("system.sql", "userdata.sql", "triggers.sql"):
        db.executescript((SCHEMA / name).read_text(encoding="utf-8"))
    _global_schema(db, json.loads((SCHEMA / "schema.json").read_text(encoding="utf-8")))
    db.execute(
        "INSERT INTO libraries (libraryID, type, editable, filesEditable) VALUES (?, 'user', 1, 1)", (USER_LIBRARY,)
    )
    db.commit()
    return db


def _global_schema(db: sqlite3.Connection, data: dict) -> None:
    """Zotero.Schema._updateGlobalSchema on an empty database, in Python."""
    field_ids: dict[str, int] = {}
    creator_ids: dict[str, int] = {}
    for item_type in data["itemTypes"]:
        for f in item_type["fields"]:
            for name in (f["field"], f.get("baseField")):
                if name and name not in field_ids:
                    field_ids[name] = len(field_ids) + 1
        for c in item_type["creatorTypes"]:
            creator_ids.setdefault(c["creatorType"], len(creator_ids) + 1)
    db.executemany("INSERT INTO fields VALUES (?, ?, NULL)", [(i, n) for n, i in field_ids.items()])
    db.executemany("INSERT INTO creatorTypes VALUES (?, ?)", [(i, n) for n, i in creator_ids.items()])
    for type_id, item_type in enumerate(data["itemTypes"], start=1):
        db.execute("INSERT INTO itemTypes VALUES (?, ?, NULL, 1)", (type_id, item_type["itemType"]))
        for index, f in enumerate(item_type["fields"]):
            db.execute("INSERT INTO itemTypeFields VALUES (?, ?, 0, ?)", (type_id, field_ids[f["field"]], index))
            if f.get("baseField"):
                db.execute(
                    "INSERT INTO baseFieldMappings VALUES (?, ?, ?)",
                    (type_id, field_ids[f["baseField"]], field_ids[f["field"]]),
                )
        for c in item_type["creatorTypes"]:
            db.execute(
                "INSERT INTO itemTypeCreatorTypes VALUES (?, ?, ?)",
                (type_id, creator_ids[c["creatorType"]], 1 if c.get("primary") else 0),
            )
    db.execute("INSERT INTO version VALUES ('globalSchema', ?)", (data["version"],))
    off = CUSTOM_ID_OFFSET
    db.execute(
        "INSERT INTO itemTypesCombined SELECT itemTypeID, typeName, display, 0 AS custom FROM itemTypes UNION "
        f"SELECT customItemTypeID + {off} AS itemTypeID, typeName, display, 1 AS custom FROM customItemTypes"
    )
    db.execute(
        "INSERT INTO fieldsCombined SELECT fieldID, fieldName, NULL AS label, fieldFormatID, 0 AS custom "
        f"FROM fields UNION SELECT customFieldID + {off} AS fieldID, fieldName, label, NULL, 1 AS custom "
        "FROM customFields"
    )
    db.execute(
        "INSERT INTO itemTypeFieldsCombined SELECT itemTypeID, fieldID, hide, orderIndex FROM itemTypeFields "
        f"UNION SELECT customItemTypeID + {off} AS itemTypeID, COALESCE(fieldID, customFieldID + {off}) "
        "AS fieldID, hide, orderIndex FROM customItemTypeFields"
    )
    db.execute(
        "INSERT INTO baseFieldMappingsCombined SELECT itemTypeID, baseFieldID, fieldID FROM baseFieldMappings "
        f"UNION SELECT customItemTypeID + {off} AS itemTypeID, baseFieldID, customFieldID + {off} AS fieldID "
        "FROM customBaseFieldMappings"
    )


def multipart_date(text: str, sql: str) -> str:
    """Zotero.Date.strToMultipart: ``'2017-12-00 December 2017'`` (SQL date, then the text)."""
    return f"{sql} {text}"


@dataclass
class Library:
    db: sqlite3.Connection
    data_dir: Path
    _next_key: int = 0
    keys: dict[str, int] = field(default_factory=dict)

    def _key(self) -> str:
        alphabet = "23456789ABCDEFGHIJKLMNPQRSTUVWXYZ"  # Zotero.Utilities.generateObjectKey's alphabet
        self._next_key += 1
        n, out = self._next_key * 7919, ""
        for _ in range(8):
            n, r = divmod(n, len(alphabet))
            out += alphabet[r]
        return out

    def _id(self, table: str, column: str, where: str, value) -> int:
        row = self.db.execute(f"SELECT {column} FROM {table} WHERE {where} = ?", (value,)).fetchone()
        assert row, (table, value)
        return row[0]

    def item(
        self,
        item_type: str,
        fields: dict[str, str],
        *,
        creators=(),
        tags=(),
        key: str | None = None,
        added: str = "2026-11-02 10:00:00",
        modified: str | None = None,
        parent_collections=(),
    ) -> tuple[int, str]:
        type_id = self._id("itemTypes", "itemTypeID", "typeName", item_type)
        key = key or self._key()
        cur = self.db.execute(
            "INSERT INTO items (itemTypeID, dateAdded, dateModified, clientDateModified, libraryID, key) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (type_id, added, modified or added, modified or added, USER_LIBRARY, key),
        )
        item_id = cur.lastrowid
        for name, value in fields.items():
            field_id = self._id("fields", "fieldID", "fieldName", name)
            self.db.execute("INSERT OR IGNORE INTO itemDataValues (value) VALUES (?)", (value,))
            value_id = self._id("itemDataValues", "valueID", "value", value)
            self.db.execute("INSERT INTO itemData VALUES (?, ?, ?)", (item_id, field_id, value_id))
        for index, (kind, first, last) in enumerate(creators):
            mode = 1 if first is None else 0
            self.db.execute(
                "INSERT OR IGNORE INTO creators (firstName, lastName, fieldMode) VALUES (?, ?, ?)",
                (first or "", last, mode),
            )
            creator_id = self.db.execute(
                "SELECT creatorID FROM creators WHERE firstName = ? AND lastName = ? AND fieldMode = ?",
                (first or "", last, mode),
            ).fetchone()[0]
            self.db.execute(
                "INSERT INTO itemCreators VALUES (?, ?, ?, ?)",
                (item_id, creator_id, self._id("creatorTypes", "creatorTypeID", "creatorType", kind), index),
            )
        for name in tags:
            self.db.execute("INSERT OR IGNORE INTO tags (name) VALUES (?)", (name,))
            self.db.execute("INSERT INTO itemTags VALUES (?, ?, 0)", (item_id, self._id("tags", "tagID", "name", name)))
        for collection_id in parent_collections:
            self.db.execute("INSERT INTO collectionItems VALUES (?, ?, 0)", (collection_id, item_id))
        self.db.commit()
        return item_id, key

    def collection(self, name: str, parent: int | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO collections (collectionName, parentCollectionID, libraryID, key) VALUES (?, ?, ?, ?)",
            (name, parent, USER_LIBRARY, self._key()),
        )
        self.db.commit()
        return cur.lastrowid

    def pdf(self, parent: int, file_name: str, *, content: bytes = b"%PDF-1.4\n%%EOF\n") -> tuple[int, str]:
        """A stored PDF (linkMode 0, imported_file) at storage/KEY/file_name, as Zotero keeps it."""
        att_id, key = self.item("attachment", {"title": "Full Text PDF"})
        self.db.execute(
            "INSERT INTO itemAttachments (itemID, parentItemID, linkMode, contentType, path) "
            "VALUES (?, ?, 0, 'application/pdf', ?)",
            (att_id, parent, "storage:" + file_name),
        )
        folder = self.data_dir / "storage" / key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / file_name).write_bytes(content)
        self.db.commit()
        return att_id, key

    def annotation(
        self,
        attachment: int,
        *,
        text: str,
        comment: str = "",
        color: str = "#ffd400",
        page: str = "1",
        kind: int = 1,
        position: int = 0,
        modified: str = "2026-11-03 09:00:00",
    ) -> str:
        ann_id, key = self.item("annotation", {}, added=modified)
        page_index = int(page) - 1 if page.isdigit() else 0
        self.db.execute(
            "INSERT INTO itemAnnotations (itemID, parentItemID, type, authorName, text, comment, color, pageLabel, "
            "sortIndex, position, isExternal) VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, ?, 0)",
            (
                ann_id,
                attachment,
                kind,
                text,
                comment,
                color,
                page,
                f"{page_index:05d}|{position:06d}|00100",
                json.dumps({"pageIndex": page_index, "rects": [[72.0, 600.0, 300.0, 612.0]]}),
            ),
        )
        self.db.commit()
        return key

    def trash(self, item_id: int) -> None:
        self.db.execute("INSERT INTO deletedItems (itemID) VALUES (?)", (item_id,))
        self.db.commit()


def new_library(data_dir: Path) -> Library:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Library(create_database(data_dir / "zotero.sqlite"), data_dir)


def better_bibtex_database(data_dir: Path, keys: list[tuple[int, str, str]]) -> None:
    """``better-bibtex.sqlite`` with Better BibTeX's ``citationkey`` table (item key -> citekey)."""
    db = sqlite3.connect(data_dir / "better-bibtex.sqlite")
    db.execute(
        "CREATE TABLE citationkey (itemID INTEGER NOT NULL, itemKey TEXT NOT NULL, libraryID INTEGER NOT NULL, "
        "citationKey TEXT NOT NULL CHECK (citationKey <> ''), pinned INTEGER CHECK (pinned in (0, 1)), "
        "lastPinned TEXT, PRIMARY KEY (itemID))"
    )
    for item_id, item_key, citekey in keys:  # (Zotero itemID, item key, citekey)
        db.execute("INSERT INTO citationkey VALUES (?, ?, ?, ?, 0, NULL)", (item_id, item_key, USER_LIBRARY, citekey))
    db.commit()
    db.close()
