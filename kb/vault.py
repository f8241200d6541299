"""A vault: an Obsidian folder of notes, with its SQLite index.

The library entry point::

    from kb.vault import Vault

    vault = Vault("notes")
    vault.index(progress=True)            # incremental; cheap when nothing changed
    note = vault.note("touvronLlamaOpenFoundation2023")   # by path, name, alias, citekey, title
    for link in note.links:
        print(link.target, "->", link.resolved)
    for problem in vault.problems():
        print(problem.format())

``notes()``, ``note()`` and the other queries bring the index up to date first (a stat of
every file when nothing changed) unless the vault was opened with ``refresh=False``.
Nothing here imports markdown-it or networkx unless a file must be parsed.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISLNK

from kb.errors import NoteNotFound, VaultError
from kb.index import (
    INDEX_DIR,
    INDEX_FILE,
    SCAN_DIGEST_KEY,
    IndexCorrupt,
    IndexReadOnly,
    IndexStats,
    code_fingerprint,
    connect,
    ensure_schema,
    open_index,
    rebuild,
    update,
    user_cache_path,
)
from kb.model import Claim, Note, Problem, Question


def stat_walk(root: Path) -> list:
    """What :meth:`Vault.refresh_index` digests: per folder (dot-folders skipped, as the
    index does) each entry's name and lstat size, times and mode, and for a symlink also
    what its target's stat gives. It holds everything ``kb.index.scan`` reports (and a
    little more, which can only cost an extra update), read through a descriptor of each
    folder: a stat by name inside the folder is cheaper for the kernel than one by path,
    ~15% of the walk on 10,000 notes. Folders that cannot be listed are marked."""
    out: list = []
    stack = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        fd = None
        try:
            if _LIST_BY_FD:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            # listing order is kept as the folder gives it: were it to change with nothing
            # else, the cost is one needless update
            with os.scandir(folder if fd is None else fd) as entries:
                listing = list(entries)
            for entry in listing:
                name = entry.name
                if name[0] == ".":
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    out.append((prefix + name, "error", exc.errno))
                    continue
                mode = st.st_mode
                out.append((prefix + name, mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
                if S_ISDIR(mode):
                    stack.append((prefix + name + "/", os.path.join(folder, name)))
                elif S_ISLNK(mode):
                    try:
                        target = os.stat(os.path.join(folder, name))
                        out.append(("->", target.st_mode, target.st_size, target.st_mtime_ns, target.st_ctime_ns))
                    except OSError as exc:
                        out.append(("->", "error", exc.errno))
        except OSError as exc:
            out.append((prefix, "unlisted", exc.errno))
        finally:
            if fd is not None:
                os.close(fd)
    return out


# os.scandir of a folder descriptor (POSIX); elsewhere folders are listed by path
_LIST_BY_FD = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")


# Which way of naming a note wins when a name matches several notes.
_KIND_RANK = {"path": 0, "name": 1, "alias": 2, "citekey": 3, "title": 4}


@dataclass
class LinkRow:
    """One link as stored in the index (what ``links`` and ``backlinks`` list)."""

    src: str
    line: int
    kind: str
    target: str
    heading: str | None
    block: str | None
    display: str | None
    is_citation: bool
    resolved: str | None

    @property
    def edge(self) -> str:
        """The graph edge kind: ``embeds``, ``cites`` or ``mentions``."""
        if self.kind == "embed":
            return "embeds"
        return "cites" if self.is_citation else "mentions"

    def to_dict(self) -> dict:
        return {
            "source": self.src,
            "line": self.line,
            "kind": self.kind,
            "edge": self.edge,
            "target": self.target,
            "heading": self.heading,
            "block": self.block,
            "display": self.display,
            "resolved": self.resolved,
        }


class Vault:
    """An Obsidian vault and its index at ``<root>/.paperkb/index.db``."""

    def __init__(self, root: Path | str, *, refresh: bool = True) -> None:
        path = Path(root).expanduser()
        if not path.exists():
            raise VaultError(f"vault folder not found: {path}")
        if not path.is_dir():
            raise VaultError(f"vault is not a folder: {path}")
        self.root: Path = path.resolve()
        self.index_path: Path = self.root / INDEX_DIR / INDEX_FILE
        self.refresh = refresh
        self._conn: sqlite3.Connection | None = None
        self._fresh = False
        self.last_stats: IndexStats | None = None

    def __repr__(self) -> str:
        return f"Vault({str(self.root)!r})"

    # ---- the index -----------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """The index database (created on first use). Shared by this Vault's queries.

        In a vault whose folder cannot be written, an existing complete index is opened
        read-only, and otherwise the index is kept in the user's cache folder."""
        if self._conn is None:
            self._conn = open_index(self.root, self.index_path)
            self.index_path = self._conn.db_path
        return self._conn

    def reopen(self, exc: Exception) -> None:
        """After ``IndexCorrupt`` or ``IndexReadOnly``: reopen the index where it can be
        (re)built (a damaged file is deleted first; the index is only a cache)."""
        path = self.index_path
        self.close()
        if isinstance(exc, IndexCorrupt):
            self._conn = rebuild(path)
        else:
            self._conn = connect(user_cache_path(self.root))
        self.index_path = self._conn.db_path

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def index(self, *, progress: bool = False, workers: int | None = None, force: bool = False) -> IndexStats:
        """Bring the index up to date: parse new and changed notes, drop deleted ones.

        ``force`` re-reads and re-hashes every note (an edit that kept the size and put
        the times back is then seen) and checks the database's integrity. A damaged
        index is deleted and rebuilt by itself."""
        for attempt in range(3):
            try:
                stats = update(self.root, self.connect(), progress=progress, workers=workers, force=force)
                break
            except (IndexCorrupt, IndexReadOnly) as exc:
                if attempt == 2:
                    raise
                self.reopen(exc)
        if (stats.changed or stats.rebuilt) and not getattr(self._conn, "readonly", False):
            # the stored walk no longer describes the index; refresh_index stores a new one
            try:
                self.connect().execute("DELETE FROM meta WHERE key=?", (SCAN_DIGEST_KEY,))
            except sqlite3.Error:
                pass
        self._fresh = True
        self.last_stats = stats
        return stats

    def ensure_index(self) -> sqlite3.Connection:
        """The index database, brought up to date with the notes first (once per Vault; see
        :meth:`refresh_index`): what every read of the index starts with."""
        conn = self.connect()
        if not self._fresh:
            if self.refresh:
                self.refresh_index()
            else:
                # Without refresh, still build the index if there is none or it was made
                # by other code (the schema may differ).
                try:
                    stale = (
                        ensure_schema(conn, self.root) or conn.execute("SELECT 1 FROM notes LIMIT 1").fetchone() is None
                    )
                except (IndexCorrupt, IndexReadOnly) as exc:
                    self.reopen(exc)
                    stale = True
                except sqlite3.DatabaseError as exc:
                    from kb.index import is_corrupt

                    if not is_corrupt(exc):
                        raise
                    self.reopen(IndexCorrupt(str(exc)))
                    stale = True
                if stale:
                    self.index()
                self._fresh = True
        return self.connect()

    def refresh_index(self) -> None:
        """Bring the index up to date before a query, cheaply when nothing changed.

        The walk of the vault (:func:`stat_walk`, a stat of every file: an edited note is always seen) is
        digested together with the indexing code's fingerprint and compared with the
        digest stored after the last refresh; when they match, no stored row needs to be
        read. Otherwise :meth:`index` runs as usual and the digest of the walk taken
        *before* it is stored: the index then reflects at least that state. A stale
        digest can only cost an extra update, never hide a change: any edit, creation
        or deletion moves a size, time or path, and a ctime never goes back."""
        digest = None
        try:
            conn = self.connect()
            rebuilt = ensure_schema(conn, self.root)
            # marshal format 2: no back-references, so equal walks give equal bytes
            digest = hashlib.blake2b(
                marshal.dumps((code_fingerprint(), stat_walk(self.root)), 2), digest_size=16
            ).hexdigest()
            row = conn.execute("SELECT value FROM meta WHERE key=?", (SCAN_DIGEST_KEY,)).fetchone()
            if not rebuilt and row is not None and row[0] == digest:
                self._fresh = True
                return
        except (VaultError, sqlite3.Error, OSError):
            digest = None  # the full update below meets the same problem and words it
        self.index()
        if digest is not None and not getattr(self._conn, "readonly", False):
            try:
                self.connect().execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (SCAN_DIGEST_KEY, digest)
                )
            except sqlite3.Error:
                pass  # only a cache of the check: the next command updates as before

    # ---- notes -----------------------------------------------------------------------
    def notes(self) -> list[Note]:
        """Every note, links resolved, sorted by path."""
        conn = self.ensure_index()
        return [Note.from_dict(json.loads(d)) for (d,) in conn.execute("SELECT data FROM notes ORDER BY path")]

    def paths(self) -> list[str]:
        conn = self.ensure_index()
        return [p for (p,) in conn.execute("SELECT path FROM notes ORDER BY path")]

    def find(self, name: str) -> str | None:
        """The path of the note called ``name`` (path, file name, alias, citekey or
        title; case-insensitive), or None."""
        from kb.resolve import norm, path_order, same_spelling, strip_md

        conn = self.ensure_index()
        raw = name.strip().replace("\\", "/")
        keys = {norm(raw), norm(strip_md(raw)), norm(raw.lstrip("@")), norm(strip_md(raw).lstrip("@"))}
        keys.discard("")
        if not keys:
            return None
        q = ",".join("?" * len(keys))
        rows = conn.execute(f"SELECT key, path, kind FROM names WHERE key IN ({q})", sorted(keys)).fetchall()
        if not rows:
            # a path suffix: "folder/Note"
            key = norm(strip_md(raw)).strip("/")
            if "/" in key:
                base = key.rsplit("/", 1)[-1]
                cands = [
                    p
                    for (p,) in conn.execute("SELECT path FROM names WHERE key=? AND kind='name'", (base,))
                    if norm(strip_md(p)).endswith("/" + key)
                ]
                if cands:
                    return sorted(cands, key=path_order)[0]
            return None
        # exact spelling first within a kind: "Note" is Note.md before note.md
        rows.sort(key=lambda r: (_KIND_RANK.get(r[2], 9), not same_spelling(r[1], raw), path_order(r[1])))
        return rows[0][1]

    def note(self, name: str) -> Note:
        """The note called ``name``; raises ``NoteNotFound`` naming close matches."""
        path = self.find(name)
        if path is None:
            raise NoteNotFound(self._not_found_message(name))
        return self.note_at(path)

    def note_at(self, path: str) -> Note:
        conn = self.ensure_index()
        row = conn.execute("SELECT data FROM notes WHERE path=?", (path,)).fetchone()
        if row is None:
            raise NoteNotFound(f"no note at {path!r} in {self.root}")
        return Note.from_dict(json.loads(row[0]))

    def _not_found_message(self, name: str) -> str:
        from kb.resolve import norm

        conn = self.connect()
        spelled: dict[str, tuple[str, str]] = {}
        for key, path, label in conn.execute("SELECT key, path, label FROM names WHERE kind != 'path'"):
            spelled.setdefault(key, (label, path))
        import difflib  # only when a name is not found: keeps `paperkb show` start-up lean

        close = difflib.get_close_matches(norm(name), list(spelled), n=5, cutoff=0.6)
        shown: list[str] = []
        for key in close:
            label, path = spelled[key]
            text = label if path.rsplit("/", 1)[-1][:-3] == label else f"{label} ({path})"
            if text not in shown:
                shown.append(text)
        hint = f"; did you mean: {', '.join(shown[:3])}?" if shown else ""
        return f"no note named {name!r} in {self.root}{hint}"

    # ---- links, tags, problems --------------------------------------------------------
    def _link_rows(self, where: str, args: tuple) -> list[LinkRow]:
        conn = self.ensure_index()
        return [
            LinkRow(src, line, kind, target, heading, block, display, bool(cit), resolved)
            for src, line, kind, target, heading, block, display, cit, resolved in conn.execute(
                "SELECT src, line, kind, target, heading, block, display, is_citation, resolved "
                f"FROM links WHERE {where} ORDER BY src, idx",
                args,
            )
        ]

    def outgoing(self, name: str) -> list[LinkRow]:
        """The links written in the note called ``name``, in order."""
        path = self._path_or_raise(name)
        return self._link_rows("src=?", (path,))

    def backlinks(self, name: str) -> list[LinkRow]:
        """The links of other notes that resolve to the note called ``name``."""
        path = self._path_or_raise(name)
        return self._link_rows("resolved=? AND src != ?", (path, path))

    def ghost_backlinks(self, name: str) -> list[LinkRow]:
        """The unresolved links to ``name``: a work with no note yet (a ghost) that other
        notes link to by that name, citekey (``[[@key]]`` and ``[[key]]`` alike) or title."""
        from kb.resolve import link_key

        key = link_key(name.strip())
        if not key:
            return []
        return self._link_rows("resolved IS NULL AND key=?", (key,))

    def _path_or_raise(self, name: str) -> str:
        path = self.find(name)
        if path is None:
            raise NoteNotFound(self._not_found_message(name))
        return path

    def tags(self) -> list[tuple[str, int]]:
        """``(tag, number of notes)``, most used first; spelled as first written."""
        conn = self.ensure_index()
        rows = conn.execute(
            "SELECT MIN(tag), COUNT(DISTINCT path) AS n, key FROM tags GROUP BY key ORDER BY n DESC, key"
        ).fetchall()
        return [(tag, n) for tag, n, _ in rows]

    def problems(self) -> list[Problem]:
        """Every parse and resolution problem, sorted by path and line."""
        conn = self.ensure_index()
        order = {"error": 0, "warning": 1, "info": 2}
        rows = conn.execute("SELECT path, line, severity, message FROM problems").fetchall()
        problems = [Problem(*r) for r in rows]
        problems.sort(key=lambda p: (p.path, p.line, order.get(p.severity, 3), p.message))
        return problems

    def problem_counts(self) -> dict[str, int]:
        """How many problems of each severity (``{"error": 2, "warning": 5, ...}``)."""
        conn = self.ensure_index()
        return dict(conn.execute("SELECT severity, COUNT(*) FROM problems GROUP BY severity").fetchall())

    def _json_field(self, field: str) -> list[tuple[str, list]]:
        """``(path, value)`` of one list field of every note where it is not empty, read
        with SQLite's JSON functions instead of loading whole notes."""
        conn = self.ensure_index()
        rows = conn.execute(
            f"SELECT path, json_extract(data, '$.{field}') FROM notes "
            f"WHERE json_array_length(data, '$.{field}') > 0 ORDER BY path"
        )
        return [(path, json.loads(value)) for path, value in rows]

    def questions(self, *, open_only: bool = False) -> list[tuple[str, Question]]:
        """``(path, question)`` for every question callout, in path and line order;
        ``open_only``: the unanswered ones the user asked (not a template's empty prompts)."""
        out = []
        for path, items in self._json_field("questions"):
            for q in items:
                question = Question(**q)
                if not open_only or question.open:
                    out.append((path, question))
        return out

    def claims(self) -> list[tuple[str, Claim]]:
        """``(path, claim)`` for every claim of the vault."""
        return [(path, Claim(**c)) for path, items in self._json_field("claims") for c in items]

    def attachments(self) -> list[str]:
        conn = self.ensure_index()
        return [p for (p,) in conn.execute("SELECT path FROM files ORDER BY path")]

    # ---- the graph --------------------------------------------------------------------
    def graph(self):
        """The citation graph (a networkx MultiDiGraph; see ``kb.graph``), built from the
        index tables: no note is loaded."""
        from kb.graph import build_graph_from_index

        return build_graph_from_index(self.ensure_index())
