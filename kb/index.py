"""The SQLite index of a vault: a cache of parsed, link-resolved notes.

Lives at ``<vault>/.paperkb/index.db`` (WAL mode). Deleting ``.paperkb/`` loses nothing:
the next run re-parses the vault.

Tables (other modules may add their own, e.g. full-text ``search_*`` tables; we never
drop a table we do not own):

* ``meta(key, value)``: schema version and code fingerprint; a mismatch rebuilds.
* ``notes(path, size, mtime, hash, data, ctime)``: ``data`` is ``note.to_dict()`` as compact JSON
  with links resolved and problems (parse + resolution) included.
* ``names(key, path, kind, label)``: how a note can be named (path, file name, alias,
  citekey, title); ``key`` normalised by ``kb.resolve.norm``, ``label`` as written.
* ``links(src, idx, line, kind, target, key, heading, block, display, is_citation,
  resolved)``: every link, with ``key = kb.resolve.link_key(target)``.
* ``problems(path, line, severity, message, source)``: ``source`` is ``parse`` or
  ``resolve``.
* ``tags(path, tag, key)`` and ``files(path, size, mtime)`` (attachments).

Updating is incremental: a file is re-read only when its size, mtime or ctime changed, and
re-parsed only when its blake2b hash changed too. After parsing, only the notes whose
links could resolve differently are re-resolved: the changed notes, the notes linking to
a name that appeared or disappeared, and the notes linking to a changed note (its
headings may have moved).
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import re
import sqlite3
import stat as _stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import orjson

from kb.citing import DEFAULT_CITATION_RULE, CitationRule, load_citation_rule
from kb.errors import VaultError
from kb.model import LIST_FIELDS, Note, Problem, json_safe
from kb.prompts import DEFAULT_PROMPTS, prompts_fingerprint
from kb.vault_prompts import load_prompts

# The meta row holding the digest of the last walk of the vault that the index was found
# (or brought) up to date with; see kb.vault.Vault.refresh_index. Deleted whenever an update
# changes the index, so other caches of the index (kb.claims, kb.search, kb.query.tables) may key on it.
SCAN_DIGEST_KEY = "scan_digest"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = "6"  # 6: notes.ctime
INDEX_DIR = ".paperkb"
INDEX_FILE = "index.db"

# A cold vault smaller than this is parsed in-process: starting workers costs more.
PARALLEL_MIN_FILES = 400
BATCH_SIZE = 100
PROGRESS_MIN_FILES = 200
# Up to this many notes to (re)resolve, names are looked up in the index one by one.
LAZY_NAMES_MAX = 200

_SECONDARY_INDEXES = ("links_src", "links_key", "links_resolved", "problems_path", "tags_path", "tags_key")
_OWN_TABLES = ("meta", "notes", "names", "links", "problems", "tags", "files")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS notes (
    path TEXT PRIMARY KEY, size INTEGER, mtime REAL, hash TEXT, data TEXT, ctime REAL);
-- covers the stat comparison of every run: no need to touch the large data pages
CREATE INDEX IF NOT EXISTS notes_stat ON notes(path, size, mtime, hash, ctime);
CREATE TABLE IF NOT EXISTS names (key TEXT, path TEXT, kind TEXT, label TEXT);
CREATE INDEX IF NOT EXISTS names_key ON names(key);
CREATE INDEX IF NOT EXISTS names_path ON names(path);
CREATE TABLE IF NOT EXISTS links (
    src TEXT, idx INTEGER, line INTEGER, kind TEXT, target TEXT, key TEXT, heading TEXT,
    block TEXT, display TEXT, is_citation INTEGER, resolved TEXT);
CREATE INDEX IF NOT EXISTS links_src ON links(src);
CREATE INDEX IF NOT EXISTS links_key ON links(key);
CREATE INDEX IF NOT EXISTS links_resolved ON links(resolved);
CREATE TABLE IF NOT EXISTS problems (path TEXT, line INTEGER, severity TEXT, message TEXT, source TEXT);
CREATE INDEX IF NOT EXISTS problems_path ON problems(path);
CREATE TABLE IF NOT EXISTS tags (path TEXT, tag TEXT, key TEXT);
CREATE INDEX IF NOT EXISTS tags_path ON tags(path);
CREATE INDEX IF NOT EXISTS tags_key ON tags(key);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime REAL);
"""


@dataclass
class IndexStats:
    """What one ``update`` did."""

    notes: int = 0  # notes in the index afterwards
    attachments: int = 0
    parsed: int = 0  # files read and parsed
    touched: int = 0  # stat changed but content identical (hash): not parsed
    deleted: int = 0
    resolved: int = 0  # notes whose links were (re)resolved
    workers: int = 1
    seconds: float = 0.0
    rebuilt: bool = False  # the index was (re)created from scratch
    changed_paths: list[str] = field(default_factory=list)  # parsed notes (new or changed)
    deleted_paths: list[str] = field(default_factory=list)
    # files left out because their names are not valid UTF-8 (shown with \x escapes)
    bad_names: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.parsed or self.deleted or self.resolved)


# --------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------
def _utf8(name: str) -> bool:
    """Whether a name from the file system is valid UTF-8 (Python hands undecodable bytes
    over as lone surrogates, which neither SQLite nor JSON can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown_name(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# the manifests kb.publish.site and kb.publish.markdown keep in a folder they export to
EXPORT_MANIFESTS = frozenset({".paperkb-site.json", ".paperkb-markdown.json"})


def is_note_file(name: str) -> bool:
    return name.lower().endswith(".md")


def scan(
    root: Path, unlisted: list[str] | None = None, bad_names: list[str] | None = None
) -> tuple[dict[str, tuple[int, float, float]], dict[str, tuple[int, float]]]:
    """Every note ``{path: (size, mtime, ctime)}`` and attachment ``{path: (size, mtime)}``.

    Skips dot-folders and dot-files (``.paperkb``, ``.obsidian``, ``.trash``, ``.git``),
    folders holding a paperkb export (a site or Markdown manifest: ``EXPORT_MANIFESTS``),
    symlinks that lead outside the vault, and anything but regular files (a FIFO or a
    device would block a reader); symlinked folders are not followed (no loops).
    Folders that cannot be listed are appended to ``unlisted`` (as ``"sub/folder/"``).
    A file or folder whose name is not valid UTF-8 cannot be stored or linked to: it is
    left out and its name (undecodable bytes as ``\\xNN``) appended to ``bad_names``.
    """
    notes: dict[str, tuple[int, float, float]] = {}
    files: dict[str, tuple[int, float]] = {}
    real_root = os.path.realpath(root)
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if not prefix:
                raise VaultError(f"cannot read the vault folder {root}: {_os_reason(exc)}") from None
            if unlisted is not None:
                unlisted.append(prefix)
            continue
        if prefix and any(entry.name in EXPORT_MANIFESTS for entry in entries):
            continue  # a site or Markdown export paperkb wrote: its copies are not notes
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            if not name.isascii() and not _utf8(name):
                if bad_names is not None:
                    bad_names.append(_shown_name(prefix + name))
                continue
            try:
                # the common case first: a regular file (its type comes with the
                # directory listing; only its stat is a system call)
                if entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, prefix + name + "/"))
                    continue
                elif entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if os.path.commonpath([real_root, real]) != real_root or os.path.isdir(real):
                        continue
                    st = os.stat(real)
                    if not _stat.S_ISREG(st.st_mode):
                        continue  # a FIFO, device or socket: reading it could block for ever
                else:
                    continue
            except (OSError, ValueError):
                continue
            if name[-3:].lower() == ".md":  # is_note_file, inlined: this loop runs per file
                notes[prefix + name] = (st.st_size, st.st_mtime, st.st_ctime)
            else:
                files[prefix + name] = (st.st_size, st.st_mtime)
    return notes, files


def note_dict(note: Note) -> dict:
    """``note.to_dict()``, several times faster: the nested records hold only scalars and
    lists of strings, so a shallow copy of each is enough (``dataclasses.asdict`` deep-copies)."""
    d = dict(note.__dict__)
    for name in LIST_FIELDS:
        d[name] = [dict(x.__dict__) for x in d[name]]
    d["frontmatter"] = json_safe(note.frontmatter)
    return d


def note_json(note: Note) -> str:
    """The note as the index stores it: compact JSON in ``Note.to_dict()``'s field order.

    orjson writes a dataclass at C speed (about a tenth of ``json.dumps`` of the dict);
    what it refuses (an integer past 64 bits, a lone surrogate) goes through ``json``
    with the same separators."""
    frontmatter = note.frontmatter
    note.frontmatter = json_safe(frontmatter)
    try:
        return orjson.dumps(note).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(note_dict(note), ensure_ascii=False, separators=(",", ":"))
    finally:
        note.frontmatter = frontmatter


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# --------------------------------------------------------------------------------------
# Parsing (runs in worker processes for a cold vault)
# --------------------------------------------------------------------------------------
def _parse_bytes(
    data: bytes,
    path: str,
    mtime: float,
    ctime: float,
    citations: CitationRule = DEFAULT_CITATION_RULE,
    prompts: frozenset[str] = DEFAULT_PROMPTS,
) -> Note:
    from kb.parse import parse_note

    try:
        note = parse_note(data, path, mtime=mtime, ctime=ctime, fast=True, citations=citations, prompts=prompts)
    except Exception as exc:  # the parser promises not to raise; a bug must not stop indexing
        note = Note(path=path, title=path.rsplit("/", 1)[-1][:-3], size=len(data), mtime=mtime, ctime=ctime)
        note.problems.append(Problem(path, 1, "error", f"could not parse: {_parse_failure(exc)}"))
    note.size = len(data)
    return note


def _parse_failure(exc: Exception) -> str:
    """Why a note could not be parsed, in words (a parser bug keeps its type for the report)."""
    if isinstance(exc, MemoryError):
        return "out of memory (the note is too large)"
    if isinstance(exc, RecursionError):
        return "the note is nested too deeply"
    return f"internal error ({type(exc).__name__}: {exc}); please report it"


@dataclass
class Parsed:
    """A parsed note as a worker hands it back: already serialised, so the main process
    neither unpickles nor re-serialises the whole note.

    ``data`` is the note's JSON cut at each link's ``resolved`` value (one more piece
    than links), ending with an empty ``problems`` list; ``finish`` fills both in.
    """

    path: str
    data: list[str]
    links: list  # the note's Link objects (resolution fills .resolved)
    problems: list[Problem]
    names: list[tuple[str, str, str, str]]  # kb.resolve.name_rows
    keys: set[str]  # kb.resolve.note_keys
    headings: list
    blocks: set[str]
    tags: list[str]

    def finish(self, found: list[Problem]) -> str:
        """The final JSON: links resolved, parse + resolution problems appended."""
        pieces = self.data
        out = [pieces[0]]
        for link, piece in zip(self.links, pieces[1:]):
            target = link.resolved
            out.append("null" if target is None else _json_string(target))  # = json.dumps(target, ensure_ascii=False)
            out.append(piece)
        data = "".join(out)
        all_problems = self.problems + found
        problems = (
            json.dumps([p.__dict__ for p in all_problems], ensure_ascii=False, separators=(",", ":"))
            if all_problems
            else "[]"
        )
        return data[: -len(_EMPTY_PROBLEMS_TAIL)] + '"problems":' + problems + "}"


_EMPTY_PROBLEMS_TAIL = '"problems":[]}'
_json_string = json.encoder.encode_basestring  # a str as JSON, non-ASCII kept (C speed-up)


def prepare(note: Note, nonce: str) -> Parsed:
    """Serialise ``note`` for the index, leaving placeholders for what resolution adds."""
    from kb import resolve as R

    problems, note.problems = note.problems, []
    for i, link in enumerate(note.links):
        link.resolved = f"\x00{nonce}:{i}\x00"
    data = note_json(note)
    for link in note.links:
        link.resolved = None
    note.problems = problems
    if not data.endswith(_EMPTY_PROBLEMS_TAIL):  # pragma: no cover - the model's field order changed
        raise RuntimeError("Note.to_dict() must end with the problems list")
    # the placeholders come out in link order (the links list is serialised in order);
    # the nonce is random, so no note text can contain one
    pieces = _placeholder_re(nonce).split(data)
    if len(pieces) != len(note.links) + 1:  # pragma: no cover - a link's placeholder went missing
        raise RuntimeError("a link's resolved placeholder was not found in the note's JSON")
    tags = []
    seen: set[str] = set()
    for tag in note.tags:
        key = tag.lstrip("#").casefold()
        if key not in seen:
            seen.add(key)
            tags.append(tag.lstrip("#"))
    return Parsed(
        path=note.path,
        data=pieces,
        links=note.links,
        problems=problems,
        names=R.name_rows(note),
        keys=R.note_keys(note.path, note.aliases, note.citekey),
        headings=note.headings,
        blocks={R.norm(b.id) for b in note.block_ids},
        tags=tags,
    )


@lru_cache(maxsize=4)
def _placeholder_re(nonce: str) -> re.Pattern[str]:
    return re.compile(r'"\\u0000' + nonce + r':\d+\\u0000"')


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bounded burst of work.

    Parsing allocates some 200 markdown-it tokens a note, so the collector runs every few
    notes and walks every live object each time: about a fifth of the parse time. The
    work below makes no reference cycles worth collecting early (tokens, notes and rows
    are trees), and the collector resumes (and catches up) when the burst ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_batch(root: str, items: list[tuple[str, float, float, str | None]], nonce: str) -> list[tuple]:
    """Read, hash and (when the hash changed) parse each file.

    Returns ``(path, size, mtime, hash, Parsed_or_None)``; ``None`` means "content as
    indexed" or, with hash ``None``, "file vanished or unreadable".
    """
    with gc_paused():
        return _parse_batch_now(root, items, nonce)


def _parse_batch_now(root: str, items: list[tuple[str, float, float, str | None]], nonce: str) -> list[tuple]:
    out: list[tuple] = []
    # the vault's rules (read once per change of their files: cached by their stat)
    citations, prompts = load_citation_rule(root), load_prompts(root)
    for path, mtime, ctime, old_hash in items:
        try:
            data = read_regular_file(os.path.join(root, path))
        except FileNotFoundError:
            out.append((path, 0, mtime, None, None))
            continue
        except OSError as exc:
            # kept as a note with the error, not dropped as "deleted": the file is there
            note = Note(path=path, title=path.rsplit("/", 1)[-1][:-3], mtime=mtime, ctime=ctime)
            note.problems.append(Problem(path, 1, "error", f"cannot read this note: {_os_reason(exc)}"))
            out.append((path, -1, mtime, "", prepare(note, nonce)))
            continue
        digest = content_hash(data)
        if digest == old_hash:
            out.append((path, len(data), mtime, digest, None))
        else:
            out.append(
                (
                    path,
                    len(data),
                    mtime,
                    digest,
                    prepare(_parse_bytes(data, path, mtime, ctime, citations, prompts), nonce),
                )
            )
    return out


def read_regular_file(path: str) -> bytes:
    """The bytes of ``path`` if it is a regular file (after following links).

    Opened without blocking first: a FIFO, a device or a socket behind a ``.md`` name
    (or a link to one) must not hang the index; they raise ``OSError`` instead."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not _stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc) or "unknown error").lower()


def batches(items: list, size: int = 500) -> Iterator[list]:
    """``items`` in lists of ``size``: SQLite takes a bounded number of ``?`` in one ``IN (...)``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------
# kb modules whose code does not shape the index content (queries over it).
# kb modules that read the index but do not fill it: changing them must not rebuild it
_NOT_INDEXING = {
    "__init__.py",
    "errors.py",
    "graph.py",
    "vault.py",
    "check.py",
    "read_tables.py",
    "search.py",
    "claims.py",
    "lookup.py",
    "locate.py",
}


def code_fingerprint() -> str:
    """Changes when the code that fills the index changes (kb/*.py but the query-side
    modules, and kb/syntax/*.py), so a stale cache is rebuilt. Only stats a few dozen
    files: cheap enough for ``show``."""
    here = os.path.dirname(os.path.abspath(__file__))
    parts = [SCHEMA_VERSION]
    for folder in (here, os.path.join(here, "syntax")):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".py") and entry.name not in _NOT_INDEXING:
                try:
                    st = entry.stat()
                except OSError:
                    continue
                parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()


class IndexConnection(sqlite3.Connection):
    """The index database, knowing where it lives and whether it may be written."""

    db_path: Path
    readonly: bool = False


class IndexReadOnly(VaultError):
    """The index must change but its folder cannot be written (a read-only vault)."""


class IndexCorrupt(VaultError):
    """SQLite found the index file damaged; the caller deletes and rebuilds it."""


def is_corrupt(exc: BaseException) -> bool:
    """A damaged or foreign file (SQLITE_CORRUPT, SQLITE_NOTADB), as opposed to a busy,
    locked, full or read-only one: only the former may be deleted and rebuilt."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)
    message = str(exc)
    return "not a database" in message or "malformed" in message


def storage_error(exc: BaseException, db_path: Path | str, action: str = "writing") -> VaultError:
    """An error of SQLite or of the disk in plain words (no Python exception name)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    where = _shown(db_path)
    if primary == 13 or getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in str(exc):
        return VaultError(f"disk full while {action} {where}; free some space and run the command again")
    if primary == 8 or getattr(exc, "errno", None) in (errno.EACCES, errno.EROFS, errno.EPERM):
        return IndexReadOnly(f"cannot write {where}: the folder is read-only")
    if primary == 5 or primary == 6:
        return VaultError(f"{where} stayed locked by another paperkb process; try again when it has finished")
    if is_corrupt(exc):
        return IndexCorrupt(f"{where} is damaged")
    if isinstance(exc, MemoryError):
        return VaultError(f"out of memory while {action} {where}")
    detail = getattr(exc, "strerror", None) or str(exc) or "unknown error"
    return VaultError(f"cannot use {where}: {detail}")


def _shown(db_path: Path | str) -> str:
    """``.paperkb/index.db`` rather than a long absolute path, when it is the usual place."""
    p = Path(db_path)
    return f"{INDEX_DIR}/{p.name}" if p.parent.name == INDEX_DIR else str(p)


# --------------------------------------------------------------------------------------
# The writer lock: one process at a time changes an index
# --------------------------------------------------------------------------------------
LOCK_FILE = "index.lock"
LOCK_WAIT_S = 600.0
_held_locks: dict[str, list] = {}  # lock path -> [fd, depth]; POSIX locks belong to the process
_held_guard = threading.RLock()


@contextmanager
def writer_lock(folder: Path, *, wait_s: float | None = None) -> Iterator[None]:
    """Hold ``<folder>/index.lock`` while changing the index.

    SQLite's own locks serialise single transactions, not "read what is stored, parse,
    write": two cold indexers would both parse everything, and a process deleting a file
    it believes broken must be sure nobody else is writing it. A POSIX record lock
    (``lockf``) is released by the kernel when its process dies, however it dies, and is
    not inherited by forked parse workers. Re-entrant within a process. Where the folder
    cannot hold a lock file (read-only), nothing is written anyway: no lock is taken.
    """
    path = os.path.join(str(folder), LOCK_FILE)
    with _held_guard:  # threads of one process share the lock (and wait here for it)
        held = _held_locks.get(path)
        if held is not None:
            held[1] += 1
        else:
            fd = _acquire(path, LOCK_WAIT_S if wait_s is None else wait_s)
            if fd is not None:
                held = _held_locks[path] = [fd, 1]
    if held is None:
        yield
        return
    try:
        yield
    finally:
        with _held_guard:
            held[1] -= 1
            if held[1] == 0:
                del _held_locks[path]
                os.close(held[0])  # releases the lock


def _acquire(path: str, wait_s: float) -> int | None:
    """An open descriptor of the lock file, locked; None where no lock can be had."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    delay = 0.005
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                return fd  # a file system without locks: go on unlocked, as SQLite would
        if time.monotonic() >= deadline:
            os.close(fd)
            raise VaultError(
                f"another paperkb process has been updating the index of this vault for over {wait_s:.0f} s "
                f"({_shown(path)}); try again when it has finished"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _dirty_mark(folder: Path, dirty: bool) -> bool:
    """Record in the held lock file that a write is under way (True) or done (False);
    returns whether the mark was already there, i.e. a writer died in the middle of a
    write. Written through the lock's own descriptor: closing any other descriptor of
    the file would drop the process's lock."""
    with _held_guard:
        held = _held_locks.get(os.path.join(str(folder), LOCK_FILE))
    if held is None:
        return False
    fd = held[0]
    try:
        was = os.pread(fd, 16, 0).startswith(b"writing")
        os.ftruncate(fd, 0)
        if dirty:
            os.pwrite(fd, b"writing %d\n" % os.getpid(), 0)
        return was
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# Opening the index
# --------------------------------------------------------------------------------------
BUSY_TIMEOUT_S = 60.0
WAL_TRUNCATE_BYTES = 1 << 20  # a WAL larger than this after an update is checkpointed away
JOURNAL_SIZE_LIMIT = 4 << 20


def connect(db_path: Path) -> IndexConnection:
    """Open (creating if needed) the index database in WAL mode.

    A file SQLite calls damaged or "not a database" (truncated, overwritten) is a broken
    cache: under the writer lock it is deleted and rebuilt. Any other failure (locked,
    busy, disk full) is reported and deletes nothing. A folder that cannot be written
    raises ``IndexReadOnly`` (see ``open_index`` for what to do then)."""
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, db_path, "creating") from None
    try:
        # creating the file and switching it to WAL happen under the lock: two processes
        # doing it at once can deadlock inside SQLite ("database is locked" at once)
        if not _has_content(db_path):
            with writer_lock(db_path.parent):
                return _open(db_path)
        try:
            return _open(db_path)
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
        return rebuild(db_path)
    except (OSError, sqlite3.Error) as exc:
        raise storage_error(exc, db_path, "opening") from None


def rebuild(db_path: Path) -> IndexConnection:
    """Delete a damaged index and start an empty one, unless another process rebuilt it
    while we waited for the lock. ``runs.db`` and every other file are left alone."""
    with writer_lock(db_path.parent):
        try:
            conn = _open(db_path)
            if _quick_check(conn):
                return conn
            conn.close()
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
        remove_index_files(db_path)
        return _open(db_path)


def remove_index_files(db_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)


def _has_content(db_path: Path) -> bool:
    try:
        return db_path.stat().st_size > 0
    except OSError:
        return False


def _quick_check(conn: sqlite3.Connection) -> bool:
    """SQLite's structural check of the whole file (about a millisecond per MB)."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_corrupt(exc):
            return False
        raise
    return rows == [("ok",)]


def _open(db_path: Path) -> IndexConnection:
    conn = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None, factory=IndexConnection)
    conn.db_path = db_path
    try:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def open_readonly(db_path: Path) -> IndexConnection:
    """An existing index opened for reading only (its folder cannot be written)."""
    last: sqlite3.Error | None = None
    # mode=ro shares SQLite's locks with writers; immutable=1 is for a folder where even
    # the WAL's shared-memory file cannot be made (then nobody can be writing it either)
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        uri = f"{db_path.resolve().as_uri()}?{flags}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, factory=IndexConnection)
        except sqlite3.Error as exc:
            last = exc
            continue
        conn.db_path, conn.readonly = db_path, True
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            conn.execute("SELECT 1 FROM notes LIMIT 1").fetchall()
            return conn
        except sqlite3.Error as exc:
            conn.close()
            last = exc
    raise storage_error(last or OSError("cannot open"), db_path, "reading")


def user_cache_path(root: Path) -> Path:
    """Where the index of a vault whose folder cannot be written is kept instead:
    ``$XDG_CACHE_HOME/paperkb/<hash of the vault path>/index.db``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.blake2b(str(Path(root).resolve()).encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
    return Path(base) / "paperkb" / key / INDEX_FILE


def open_index(root: Path, db_path: Path | None = None) -> IndexConnection:
    """The index of the vault at ``root``: ``.paperkb/index.db`` when it can be written;
    else that file read-only when it exists (``update`` raises ``IndexReadOnly`` if it is
    out of date); else a copy in the user's cache folder."""
    db_path = db_path or Path(root) / INDEX_DIR / INDEX_FILE
    try:
        return connect(db_path)
    except IndexReadOnly:
        pass
    except VaultError:
        if os.access(db_path.parent, os.W_OK) or not db_path.parent.is_dir():
            raise
    if db_path.is_file():
        try:
            return open_readonly(db_path)
        except VaultError:
            pass
    return connect(user_cache_path(root))


def checkpoint(conn: sqlite3.Connection) -> None:
    """Fold a large WAL back into the database and truncate it. Waits at most briefly
    for readers: a busy checkpoint is simply tried again after the next update."""
    path = getattr(conn, "db_path", None)
    if path is None:
        return
    try:
        if os.path.getsize(str(path) + "-wal") <= WAL_TRUNCATE_BYTES:
            return
    except OSError:
        return
    try:
        conn.execute("PRAGMA busy_timeout=200")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error:
        pass
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")


def _db_path(conn: sqlite3.Connection) -> Path:
    path = getattr(conn, "db_path", None)
    if path is None:
        row = conn.execute("PRAGMA database_list").fetchone()
        path = Path(row[2]) if row and row[2] else Path(INDEX_FILE)
    return Path(path)


def _stored_fingerprint(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
    except sqlite3.DatabaseError as exc:
        if is_corrupt(exc):
            raise
        return None  # no meta table yet
    return row[0] if row else None


def ensure_schema(conn: sqlite3.Connection, root: Path | str | None = None) -> bool:
    """Create the tables; rebuild them when the version differs. True if (re)built.
    With ``root``, the vault's citation rule (``kb.citing``) and template prompts
    (``kb.prompts``) are part of the version: changing either re-reads every note."""
    fingerprint = code_fingerprint()
    if root is not None:
        rule = load_citation_rule(root)
        if rule != DEFAULT_CITATION_RULE:
            fingerprint += ":" + rule.fingerprint()
        prompts = load_prompts(root)
        if prompts != DEFAULT_PROMPTS:
            fingerprint += ":p" + prompts_fingerprint(prompts)
    if _stored_fingerprint(conn) == fingerprint:
        return False
    if getattr(conn, "readonly", False):
        raise IndexReadOnly(
            f"{_shown(_db_path(conn))} was made by another version of paperkb and the folder is read-only"
        )
    with writer_lock(_db_path(conn).parent):
        if _stored_fingerprint(conn) == fingerprint:  # another process rebuilt it while we waited
            return False
        drops = "".join(f"DROP TABLE IF EXISTS {table};" for table in _OWN_TABLES)
        conn.executescript("BEGIN IMMEDIATE;" + drops + _SCHEMA + "COMMIT;")
        conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [("schema_version", SCHEMA_VERSION), ("fingerprint", fingerprint)],
        )
    return True


def update(
    root: Path,
    conn: sqlite3.Connection,
    *,
    progress: bool = False,
    workers: int | None = None,
    force: bool = False,
) -> IndexStats:
    """Bring the index up to date with the files of ``root``.

    ``force`` re-reads and re-hashes every note whatever its size and times say, and
    runs SQLite's integrity check. Errors come as ``VaultError`` in plain words;
    ``IndexCorrupt`` (the file is damaged: delete and rebuild it, see ``Vault.index``)
    and ``IndexReadOnly`` (the index must change but cannot be written) are subclasses.
    """
    db_path = _db_path(conn)
    # a cold build holds every parsed note until it is written: with the collector
    # running, each of its passes would walk them all again
    try:
        with gc_paused():
            return _update(root, conn, progress=progress, workers=workers, force=force)
    except VaultError:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise storage_error(exc, db_path) from None
    except MemoryError:
        raise VaultError(
            f"out of memory while indexing {root}; a note may be too large (see `paperkb check`)"
        ) from None


@dataclass
class _Plan:
    """What an update must do, from the stored stats and the files on disk."""

    stored: dict[str, tuple[int, float, str, float | None]]
    stored_files: dict[str, tuple[int, float]]
    todo: list[tuple[str, float, float, str | None]]
    deleted: list[str]
    files_changed: bool
    files_touched: bool

    @property
    def empty(self) -> bool:
        return not self.todo and not self.deleted and not self.files_touched


def _plan(
    conn: sqlite3.Connection, notes_on_disk: dict, files_on_disk: dict, force: bool, unlisted: Sequence[str] = ()
) -> _Plan:
    stored = {p: (s, m, h, c) for p, s, m, h, c in conn.execute("SELECT path, size, mtime, hash, ctime FROM notes")}
    stored_files = {p: (s, m) for p, s, m in conn.execute("SELECT path, size, mtime FROM files")}
    if unlisted:
        # A folder we may not list (its permissions changed) has not lost its notes:
        # keep what the index knows of them rather than count them deleted.
        prefixes = tuple(unlisted)
        for p, (s, m, _, c) in stored.items():
            if p.startswith(prefixes) and p not in notes_on_disk:
                notes_on_disk[p] = (s, m, c)
        for p, v in stored_files.items():
            if p.startswith(prefixes) and p not in files_on_disk:
                files_on_disk[p] = v
    todo: list[tuple[str, float, float, str | None]] = []
    for path, (size, mtime, ctime) in notes_on_disk.items():
        old = stored.get(path)
        # the ctime too: an edit that keeps the size and puts the mtime back (`touch -d`,
        # some sync tools) still moves the ctime, which no user program can set
        if force or old is None or old[0] != size or old[1] != mtime or old[3] != ctime:
            todo.append((path, mtime, ctime, old[2] if old else None))
    deleted = sorted(set(stored) - set(notes_on_disk))
    files_changed = files_on_disk.keys() != stored_files.keys()
    files_touched = files_changed or any(stored_files.get(p) != v for p, v in files_on_disk.items())
    return _Plan(stored, stored_files, todo, deleted, files_changed, files_touched)


def _update(root: Path, conn: sqlite3.Connection, *, progress: bool, workers: int | None, force: bool) -> IndexStats:
    start = time.perf_counter()
    stats = IndexStats()
    stats.rebuilt = ensure_schema(conn, root)
    unlisted: list[str] = []
    notes_on_disk, files_on_disk = scan(root, unlisted, stats.bad_names)
    plan = _plan(conn, notes_on_disk, files_on_disk, force, unlisted)
    if plan.empty and not force:
        stats.notes, stats.attachments = len(plan.stored), len(plan.stored_files)
        stats.seconds = time.perf_counter() - start
        return stats
    if getattr(conn, "readonly", False):
        raise IndexReadOnly(f"{_shown(_db_path(conn))} is out of date and its folder is read-only")
    folder = _db_path(conn).parent
    with writer_lock(folder):
        # Another process may have brought the index up to date while we waited.
        plan = _plan(conn, notes_on_disk, files_on_disk, force, unlisted)
        crashed = _dirty_mark(folder, True)
        if (crashed or force) and not _quick_check(conn):
            raise IndexCorrupt(f"{_shown(_db_path(conn))} is damaged")
        if plan.empty:
            _dirty_mark(folder, False)
            stats.notes, stats.attachments = len(plan.stored), len(plan.stored_files)
            stats.seconds = time.perf_counter() - start
            return stats
        _write_update(root, conn, plan, notes_on_disk, files_on_disk, stats, progress=progress, workers=workers)
        _dirty_mark(folder, False)
    checkpoint(conn)
    stats.seconds = time.perf_counter() - start
    return stats


def _write_update(
    root: Path,
    conn: sqlite3.Connection,
    plan: _Plan,
    notes_on_disk: dict,
    files_on_disk: dict,
    stats: IndexStats,
    *,
    progress: bool,
    workers: int | None,
) -> None:
    import secrets  # only when something must be parsed (show's start-up stays lean)

    stored, stored_files, deleted = plan.stored, plan.stored_files, plan.deleted
    nonce = secrets.token_hex(8)
    results = _read_and_parse(str(root), plan.todo, nonce, progress=progress, workers=workers, stats=stats)
    parsed: dict[str, Parsed] = {}
    file_stat: dict[str, tuple[int, float, float, str]] = {}
    stat_only: list[tuple[int, float, float, str, str]] = []
    for path, size, mtime, digest, note in results:
        if digest is None:  # gone since the scan
            if path in stored:
                deleted.append(path)
            notes_on_disk.pop(path, None)
            continue
        disk_size, _, ctime = notes_on_disk[path]
        if size < 0:  # unreadable: a stub note with the error, retried when its stat changes
            size = disk_size
        if note is None:
            stat_only.append((size, mtime, ctime, digest, path))
        else:
            parsed[path] = note
            file_stat[path] = (size, mtime, ctime, digest)
    stats.parsed, stats.touched = len(parsed), len(stat_only)
    stats.deleted = len(deleted)
    stats.changed_paths = sorted(parsed)
    stats.deleted_paths = deleted

    # A build from nothing: no fsync while writing it. A crash of paperkb still leaves a
    # consistent file (SQLite commits atomically); only a power failure could corrupt
    # it, and the index is a cache that `rm -r .paperkb` rebuilds.
    bulk = not stored and len(parsed) >= PARALLEL_MIN_FILES
    rollback_journal = False
    if bulk:
        conn.execute("PRAGMA synchronous=OFF")
        rollback_journal = _leave_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if stat_only:
            conn.executemany("UPDATE notes SET size=?, mtime=?, ctime=?, hash=? WHERE path=?", stat_only)
        if parsed or deleted or plan.files_changed:
            stats.resolved = _apply(
                conn, parsed, file_stat, deleted, files_on_disk, stored_files, plan.files_changed, nonce
            )
        elif plan.files_touched:
            _write_files(conn, files_on_disk)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        if bulk:
            conn.execute("PRAGMA synchronous=NORMAL")
        if rollback_journal:
            _enter_wal(conn)
    stats.notes = len(notes_on_disk)
    stats.attachments = len(files_on_disk)


def _leave_wal(conn: sqlite3.Connection) -> bool:
    """Switch a cold build to a rollback journal; True when it did.

    In WAL mode every page of the new index (some 17 KB a note) is written twice: to the
    log, then by the checkpoint into the file (about 0.7 s of 10,000 notes' build, all of
    it on the serial tail). A rollback journal keeps only the pages the empty index had
    before the build (a few): new pages go straight into the file, and a build that is
    killed is still undone (SQLite rolls the hot journal back at the next open). Leaving
    WAL needs the only connection to the file; when a reader holds one, stay in WAL."""
    conn.execute("PRAGMA busy_timeout=0")  # never wait for a reader: WAL works too
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.OperationalError:  # busy: another connection has the file open
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return mode is not None and str(mode[0]).lower() == "delete"


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Back to WAL after a cold build (readers then never block the writer). When a reader
    holds the file, the next connection's _open switches it instead."""
    conn.execute("PRAGMA busy_timeout=200")
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.OperationalError:
        pass
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read_and_parse(
    root: str, todo: list, nonce: str, *, progress: bool, workers: int | None, stats: IndexStats
) -> list[tuple]:
    if not todo:
        return []
    n_new = sum(1 for item in todo if item[3] is None)
    n_workers = workers if workers is not None else available_cpus()
    parallel = n_workers > 1 and n_new >= PARALLEL_MIN_FILES
    show_bar = progress and len(todo) >= PROGRESS_MIN_FILES
    results: list[tuple] = []
    if not parallel:
        with _Bar(show_bar, len(todo)) as bar:
            for batch in batches(todo, BATCH_SIZE):
                results.extend(_parse_batch(root, batch, nonce))
                bar.advance(len(batch))
        return results

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import kb.parse

    kb.parse.prepare()  # build the parser once here; the forked workers inherit it ready

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    stats.workers = n_workers
    n_batches = (len(todo) + BATCH_SIZE - 1) // BATCH_SIZE
    with ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    ) as pool:
        # map() submits every batch (and forks the workers) before the progress bar's
        # refresh thread starts: no thread is running when we fork.
        parsed_batches = pool.map(_parse_batch, [root] * n_batches, batches(todo, BATCH_SIZE), [nonce] * n_batches)
        with _Bar(show_bar, len(todo)) as bar:
            for batch_result in parsed_batches:
                results.extend(batch_result)
                bar.advance(len(batch_result))
    return results


PARENT_POLL_S = 0.5


def _init_worker(parent_pid: int) -> None:
    """Run in each parse worker as it starts. The worker is forked while the parent has the
    cyclic collector paused (``gc_paused``); left that way for the worker's whole life, any
    reference cycle made while parsing would pile up, so collection resumes here (each
    batch still pauses it for its own burst)."""
    gc.enable()
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """Run in each parse worker: end it when the indexing process dies (even by
    ``kill -9``, which gives the pool no chance to stop its workers). Linux delivers
    SIGKILL at once (PR_SET_PDEATHSIG); elsewhere, and as a backstop, a thread notices
    the worker was re-parented."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, ImportError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="paperkb-parent-watch", daemon=True).start()


class _Bar:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        # rich draws nothing where stderr is no terminal: do not import it or start its
        # refresh thread there (a piped or scripted index)
        enabled = enabled and _stderr_is_terminal()
        self.progress = _progress_bar(total) if enabled else None
        self.total = total

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task("parsing notes", total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False


def _progress_bar(total: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


class _SqlNames:
    """One kind of name (``kb.resolve.NameTable``) read from the ``names`` table on demand."""

    def __init__(self, conn: sqlite3.Connection, kind: str) -> None:
        self.conn, self.kind = conn, kind
        self.cache: dict[str, list[str]] = {}

    def get(self, key: str, default: list[str] | None = None) -> list[str] | None:
        if key not in self.cache:
            self.cache[key] = [
                p for (p,) in self.conn.execute("SELECT path FROM names WHERE key=? AND kind=?", (key, self.kind))
            ]
        return self.cache[key] or default


def _write_files(conn: sqlite3.Connection, files_on_disk: dict[str, tuple[int, float]]) -> None:
    conn.execute("DELETE FROM files")
    conn.executemany(
        "INSERT INTO files(path, size, mtime) VALUES (?, ?, ?)", [(p, s, m) for p, (s, m) in files_on_disk.items()]
    )


def _apply(
    conn: sqlite3.Connection,
    parsed: dict[str, Parsed],
    file_stat: dict[str, tuple[int, float, float, str]],
    deleted: list[str],
    files_on_disk: dict[str, tuple[int, float]],
    stored_files: dict[str, tuple[int, float]],
    files_changed: bool,
    nonce: str,
) -> int:
    """Write parsed notes, drop deleted ones, re-resolve what may have changed."""
    changed = list(parsed) + list(deleted)
    old_keys = _stored_keys(conn, changed)
    cold = not old_keys and len(parsed) > 0 and conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0
    again: set[str] = set()
    if not cold:
        moved = _moved_keys(parsed, changed, old_keys, files_on_disk, stored_files, files_changed)
        again = _linking_notes(conn, moved, changed) - set(parsed) - set(deleted)
    # Drop old rows of changed and deleted notes (a cold build has none: its tables are
    # empty, filled in this same transaction).
    if not cold:
        for table, col in (
            ("notes", "path"),
            ("names", "path"),
            ("links", "src"),
            ("problems", "path"),
            ("tags", "path"),
        ):
            conn.executemany(f"DELETE FROM {table} WHERE {col}=?", [(p,) for p in changed])
    if files_changed or stored_files != files_on_disk:
        _write_files(conn, files_on_disk)
    conn.executemany(
        "INSERT INTO names(key, path, kind, label) VALUES (?, ?, ?, ?)",
        [row for item in parsed.values() for row in item.names],
    )
    loaded, parse_problems = _load_notes(conn, again)
    resolver = _resolver(conn, parsed, loaded, list(files_on_disk))
    if loaded:
        conn.executemany("DELETE FROM links WHERE src=?", [(p,) for p in loaded])
        conn.executemany("DELETE FROM problems WHERE path=?", [(p,) for p in loaded])
    if cold:
        # Building secondary indexes once after a bulk insert is much faster than
        # maintaining them row by row.
        for name in _SECONDARY_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
    n_done = _write_resolved(conn, resolver, parsed, loaded, parse_problems, file_stat)
    if cold:
        for statement in _SCHEMA.split(";"):
            if "CREATE INDEX" in statement:
                conn.execute(statement)
    return n_done


def _stored_keys(conn: sqlite3.Connection, changed: list[str]) -> dict[str, set[str]]:
    """The keys (file names, aliases, citekeys) the index holds for the notes in ``changed``."""
    old_keys: dict[str, set[str]] = {}
    for chunk in batches(changed, 500):
        q = ",".join("?" * len(chunk))
        for key, path, _kind in conn.execute(
            f"SELECT key, path, kind FROM names WHERE path IN ({q}) AND kind IN ('name','alias','citekey')", chunk
        ):
            old_keys.setdefault(path, set()).add(key.lstrip("@"))
    return old_keys


def _moved_keys(
    parsed: dict[str, Parsed],
    changed: list[str],
    old_keys: dict[str, set[str]],
    files_on_disk: dict[str, tuple[int, float]],
    stored_files: dict[str, tuple[int, float]],
    files_changed: bool,
) -> set[str]:
    """The keys that appeared or disappeared: a link by one of them may now resolve elsewhere."""
    from kb import resolve as R

    moved: set[str] = set()
    for path in changed:
        new = parsed[path].keys if path in parsed else set()
        moved |= new ^ old_keys.get(path, set())
    if files_changed:
        for path in files_on_disk.keys() ^ stored_files.keys():
            moved.add(R.norm(path.rsplit("/", 1)[-1]))
    return moved


def _linking_notes(conn: sqlite3.Connection, moved_keys: set[str], changed: list[str]) -> set[str]:
    """The notes with a link by a moved key or to a changed note: they must be re-resolved."""
    found: set[str] = set()
    for chunk in batches(sorted(moved_keys), 500):
        q = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT DISTINCT src FROM links WHERE key IN ({q})", chunk))
    for chunk in batches(changed, 500):
        q = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT DISTINCT src FROM links WHERE resolved IN ({q})", chunk))
    return found


def _load_notes(conn: sqlite3.Connection, paths: set[str]) -> tuple[dict[str, Note], dict[str, list[Problem]]]:
    """The stored notes at ``paths`` and the problems their parse reported."""
    loaded: dict[str, Note] = {}
    parse_problems: dict[str, list[Problem]] = {}
    for chunk in batches(sorted(paths), 500):
        q = ",".join("?" * len(chunk))
        for path, data in conn.execute(f"SELECT path, data FROM notes WHERE path IN ({q})", chunk):
            loaded[path] = Note.from_dict(json.loads(data))
        for path, line, sev, msg in conn.execute(
            f"SELECT path, line, severity, message FROM problems WHERE source='parse' AND path IN ({q})", chunk
        ):
            parse_problems.setdefault(path, []).append(Problem(path, line, sev, msg))
    return loaded, parse_problems


def _resolver(conn: sqlite3.Connection, parsed: dict[str, Parsed], loaded: dict[str, Note], attachments: list[str]):
    """A link resolver over the index's names; the headings and block ids of the notes in
    memory are at hand, others are read on demand."""
    from kb import resolve as R

    known: dict[str, R.Anchors | None] = {path: R.Anchors(p.headings, p.blocks) for path, p in parsed.items()}
    known.update((path, R.Anchors(n.headings, {R.norm(b.id) for b in n.block_ids})) for path, n in loaded.items())

    def anchors(path: str) -> R.Anchors | None:
        if path not in known:
            row = conn.execute("SELECT data FROM notes WHERE path=?", (path,)).fetchone()
            if row is None:
                known[path] = None
            else:
                d = json.loads(row[0])
                n = Note.from_dict({"path": path, "headings": d.get("headings"), "block_ids": d.get("block_ids")})
                known[path] = R.Anchors(n.headings, {R.norm(b.id) for b in n.block_ids})
        return known[path]

    if len(parsed) + len(loaded) <= LAZY_NAMES_MAX:
        # A small update: look names up in the index as needed instead of loading all.
        return R.Resolver.from_tables(
            {k: _SqlNames(conn, k) for k in (R.PATH, R.NAME, R.ALIAS, R.CITEKEY)}, attachments, anchors
        )
    return R.Resolver(conn.execute("SELECT key, path, kind FROM names").fetchall(), attachments, anchors)


def _link_rows(path: str, links: list) -> list[tuple]:
    """The ``links`` table's rows of one note's (resolved) links."""
    from kb import resolve as R

    return [
        (
            path,
            i,
            ln.line,
            ln.kind,
            ln.target,
            R.link_key(ln.target) if ln.target else "",
            ln.heading,
            ln.block,
            ln.display,
            int(bool(ln.is_citation)),
            ln.resolved,
        )
        for i, ln in enumerate(links)
    ]


def _write_resolved(
    conn: sqlite3.Connection,
    resolver,
    parsed: dict[str, Parsed],
    loaded: dict[str, Note],
    parse_problems: dict[str, list[Problem]],
    file_stat: dict[str, tuple[int, float, float, str]],
) -> int:
    """Resolve the links of the new notes (inserted) and of the re-resolved ones (updated),
    500 notes at a time; returns how many notes were written."""
    todo = [(p, True) for p in parsed] + [(p, False) for p in loaded]
    for chunk in batches(todo, 500):
        note_rows: list[tuple] = []
        link_rows: list[tuple] = []
        problem_rows: list[tuple] = []
        tag_rows: list[tuple] = []
        updates: list[tuple[str, str]] = []
        for path, is_new in chunk:
            # pop: a resolved, serialised note is not needed again (keeps memory flat)
            item: Parsed | Note = parsed.pop(path) if is_new else loaded.pop(path)
            own = item.problems if is_new else parse_problems.get(path, [])
            found = resolver.resolve_links(path, item.links)
            problem_rows.extend((p.path, p.line, p.severity, p.message, "parse") for p in own)
            problem_rows.extend((p.path, p.line, p.severity, p.message, "resolve") for p in found)
            link_rows.extend(_link_rows(path, item.links))
            if isinstance(item, Parsed):  # (is_new)
                note_rows.append((path, *file_stat[path], item.finish(found)))
                tag_rows.extend((path, tag, tag.casefold()) for tag in item.tags)
            else:
                item.problems = own + found
                updates.append((note_json(item), path))
        conn.executemany("INSERT INTO notes(path, size, mtime, ctime, hash, data) VALUES (?, ?, ?, ?, ?, ?)", note_rows)
        conn.executemany("UPDATE notes SET data=? WHERE path=?", updates)
        conn.executemany("INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", link_rows)
        conn.executemany("INSERT INTO problems VALUES (?, ?, ?, ?, ?)", problem_rows)
        conn.executemany("INSERT INTO tags VALUES (?, ?, ?)", tag_rows)
    return len(todo)
