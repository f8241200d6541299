"""The index survives concurrent writers, damaged files, kills, full disks and read-only
vaults (issue 12, items 1, 7, 8, 9 and 11)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kb import index as I
from kb.errors import PaperkbError, VaultError
from kb.vault import Vault

ROOT = Path(__file__).resolve().parents[2]


def make_notes(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"n{i:03d}.md").write_text(f"# Note {i}\n\nLinks to [[n{(i + 1) % n:03d}]].\n", encoding="utf-8")
    return root


def run_py(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# ---- 1. concurrent writers and damaged files -----------------------------------------
def test_locked_index_is_reported_not_deleted(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 5)
    with Vault(vault) as v:
        v.index()
    db = vault / ".paperkb" / "index.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO meta(key, value) VALUES ('held', '1')")
    monkeypatch.setattr(I, "BUSY_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(VaultError) as err:
            I.connect(db)
        assert "locked" in str(err.value) and "Error" not in str(err.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Vault(vault) as v:  # nothing was deleted: the index is still there and whole
        assert len(v.paths()) == 5 and v.index().parsed == 0


def test_malformed_index_rebuilds_itself_and_keeps_runs_db(tmp_path):
    vault = make_notes(tmp_path / "v", 30)
    with Vault(vault) as v:
        v.index()
    runs = vault / ".paperkb" / "runs.db"
    runs.write_bytes(b"not the index")
    db = vault / ".paperkb" / "index.db"
    data = bytearray(db.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)  # every page but the header page
    db.write_bytes(bytes(data))
    with Vault(vault) as v:
        stats = v.index()
        assert stats.parsed == 30 and len(v.paths()) == 30
    assert integrity(db) == "ok"
    assert runs.read_bytes() == b"not the index"


def test_damage_found_by_the_integrity_check_of_force(tmp_path):
    vault = make_notes(tmp_path / "v", 200)
    with Vault(vault) as v:
        v.index()
    db = vault / ".paperkb" / "index.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root_page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='links_key'").fetchone()[0]
    conn.close()
    page = 4096
    with open(db, "r+b") as fh:  # scribble over one index page that a plain update never reads
        fh.seek((root_page - 1) * page + 100)
        fh.write(b"\xff" * 200)
    with Vault(vault) as v:
        assert v.index().parsed == 0  # an ordinary update does not look there
        stats = v.index(force=True)
    assert stats.parsed == 200 and integrity(db) == "ok"


def test_two_cold_indexers_at_once_share_the_work(tmp_path):
    vault = make_notes(tmp_path / "v", 80)
    code = """
        import sys
        from kb.vault import Vault
        with Vault(sys.argv[1]) as v:
            print(v.index(workers=1).parsed)
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(vault)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
    parsed = sorted(int(o.strip()) for o, _ in outs)
    assert parsed == [0, 0, 80]  # the writer lock: one parsed everything, the others found it done
    assert integrity(vault / ".paperkb" / "index.db") == "ok"


def test_writer_lock_wait_is_bounded(tmp_path):
    folder = tmp_path / ".paperkb"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\nfcntl.lockf(fd, fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\ntime.sleep(30)", str(folder / I.LOCK_FILE)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(VaultError, match="another paperkb process"):
            with I.writer_lock(folder, wait_s=0.3):
                pass
        assert time.monotonic() - t0 < 5
    finally:
        holder.kill()
        holder.wait()
    with I.writer_lock(folder, wait_s=5):  # released with its process
        with I.writer_lock(folder):  # re-entrant
            pass


# ---- 7. workers die with their parent ------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and /proc")
def test_kill_9_of_a_cold_index_leaves_no_workers(tmp_path):
    psutil = pytest.importorskip("psutil")
    vault = make_notes(tmp_path / "v", 40)
    code = """
        import sys, time
        from kb import index as I
        real = I._parse_batch_now
        def slow(root, items, nonce):
            time.sleep(0.5)
            return real(root, items, nonce)
        I._parse_batch_now = slow
        I.PARALLEL_MIN_FILES, I.BATCH_SIZE = 1, 2
        from kb.vault import Vault
        Vault(sys.argv[1]).index(workers=2)
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(vault)], env=env)
    try:
        deadline = time.monotonic() + 30
        kids: list = []
        while time.monotonic() < deadline and len(kids) < 2:
            kids = psutil.Process(proc.pid).children(recursive=True)
            time.sleep(0.05)
        assert len(kids) >= 2, "the index never started its workers"
        time.sleep(0.3)
        proc.kill()
        proc.wait()
        gone, alive = psutil.wait_procs(kids, timeout=5)
        assert not alive, f"orphaned parse workers: {[p.pid for p in alive]}"
    finally:
        for p in psutil.Process().children(recursive=True):
            p.kill()


# ---- 8. same-size edits and --force --------------------------------------------------
def test_same_size_edit_with_mtime_put_back_is_seen(tmp_path):
    vault = make_notes(tmp_path / "v", 3)
    note = vault / "n001.md"
    with Vault(vault) as v:
        v.index()
        before = os.stat(note)
        time.sleep(0.02)
        note.write_text(note.read_text().replace("Note 1", "Edit 1"), encoding="utf-8")
        os.utime(note, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(note).st_size == before.st_size and os.stat(note).st_mtime_ns == before.st_mtime_ns
        stats = v.index()
        assert stats.changed_paths == ["n001.md"]
        assert v.note_at("n001.md").title == "Edit 1"


def test_force_rehashes_every_note(tmp_path):
    vault = make_notes(tmp_path / "v", 4)
    note = vault / "n002.md"
    with Vault(vault) as v:
        v.index()
        before = os.stat(note)
        note.write_text(note.read_text().replace("Note 2", "Xote 2"), encoding="utf-8")
        os.utime(note, ns=(before.st_atime_ns, before.st_mtime_ns))
        # a file system whose ctime does not move (some network and FUSE mounts)
        v.connect().execute("UPDATE notes SET ctime=? WHERE path='n002.md'", (os.stat(note).st_ctime,))
        assert v.index().parsed == 0
        stats = v.index(force=True)
        assert stats.changed_paths == ["n002.md"] and stats.touched == 3
        assert v.note_at("n002.md").title == "Xote 2"


def test_index_force_flag_on_the_command_line(tmp_path):
    vault = make_notes(tmp_path / "v", 2)
    from typer.testing import CliRunner

    from cli.app import app

    result = CliRunner().invoke(app, ["--vault", str(vault), "index", "--force"])
    assert result.exit_code == 0, result.output
    assert "2 notes" in result.output


# ---- 9. plain-worded errors ----------------------------------------------------------
def test_disk_full_while_indexing_is_plain_words(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 60)
    with Vault(vault) as v:
        conn = v.connect()
        I.ensure_schema(conn)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages + 1}")  # what a full disk looks like to SQLite
        with pytest.raises(PaperkbError) as err:
            v.index()
    message = str(err.value)
    assert message.startswith("disk full while writing .paperkb/index.db")
    assert "Error" not in message and "sqlite" not in message.lower()
    with Vault(vault) as v:  # nothing half-written: the next run finishes the job
        assert v.index().parsed == 60 and len(v.paths()) == 60


def test_memory_error_has_a_message(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 2)

    def boom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(I, "_read_and_parse", boom)
    with Vault(vault) as v, pytest.raises(VaultError, match="out of memory while indexing"):
        v.index()


def test_storage_error_names_no_python_exception():
    err = sqlite3.OperationalError("database or disk is full")
    err.sqlite_errorcode = 13
    assert str(I.storage_error(err, Path("/v/.paperkb/index.db"))).startswith(
        "disk full while writing .paperkb/index.db")
    assert "No space" not in str(I.storage_error(OSError(28, "No space left on device"), "x/index.db"))


# ---- 11. unreadable notes, read-only vaults, WAL -------------------------------------
def test_unreadable_note_is_warned_not_deleted(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 3)
    with Vault(vault) as v:
        v.index()
    real = I.read_regular_file

    def deny(path):
        if path.endswith("n001.md"):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(I, "read_regular_file", deny)
    os.utime(vault / "n001.md")  # the stat changed: it must be read again
    with Vault(vault) as v:
        stats = v.index()
        assert stats.deleted == 0 and "n001.md" in v.paths()
        problems = [p for p in v.problems() if p.path == "n001.md"]
        assert any(p.severity == "error" and "cannot read this note: permission denied" in p.message
                   for p in problems)
        assert v.index().parsed == 0  # not re-read while its stat is unchanged
    monkeypatch.setattr(I, "read_regular_file", real)
    os.chmod(vault / "n001.md", 0o644)  # fixing the permission moves the ctime
    with Vault(vault) as v:
        assert v.index().changed_paths == ["n001.md"]
        assert not [p for p in v.problems() if p.path == "n001.md" and p.severity == "error"]


def test_folder_that_cannot_be_listed_keeps_its_notes(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 2)
    (vault / "sub").mkdir()
    (vault / "sub" / "inner.md").write_text("# Inner\n", encoding="utf-8")
    (vault / "sub" / "fig.png").write_bytes(b"png")
    with Vault(vault) as v:
        v.index()
    real = os.scandir

    def refuse(path):
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(I.os, "scandir", refuse)
    with Vault(vault) as v:
        stats = v.index()
        assert stats.deleted == 0 and "sub/inner.md" in v.paths() and v.attachments() == ["sub/fig.png"]
    monkeypatch.setattr(I.os, "scandir", lambda path: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with Vault(vault) as v, pytest.raises(VaultError, match="cannot read the vault folder .*: permission denied"):
        v.index()


def test_read_only_index_is_queried_when_complete(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 4)
    with Vault(vault) as v:
        v.index()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    db = vault / ".paperkb" / "index.db"
    real_connect = I.connect

    def readonly_connect(path):
        raise I.IndexReadOnly(f"cannot write {path}: the folder is read-only")

    import kb.vault as kv

    monkeypatch.setattr(I, "connect", readonly_connect)
    conn = I.open_index(vault)
    assert conn.readonly and conn.db_path == db
    conn.close()
    monkeypatch.setattr(kv, "open_index", lambda root, path: I.open_readonly(path))
    with Vault(vault) as v:
        assert len(v.paths()) == 4 and v.index().parsed == 0
        assert v.index_path == db
        from kb.search import search

        # its search tables were never built, and cannot be here: built in the user's cache
        assert [h.path for h in search(v, "note")]
        assert v.index_path == I.user_cache_path(vault)
    # out of date: the index moves to the user's cache folder instead of failing
    (vault / "new.md").write_text("# New\n", encoding="utf-8")
    monkeypatch.setattr(I, "connect", real_connect)
    with Vault(vault) as v:
        assert len(v.paths()) == 5
        assert v.index_path == I.user_cache_path(vault)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_vault_folder_for_real(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 3)
    with Vault(vault) as v:
        v.index()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    os.chmod(vault / ".paperkb", 0o555)
    os.chmod(vault, 0o555)
    try:
        with Vault(vault) as v:
            assert len(v.paths()) == 3
    finally:
        os.chmod(vault, 0o755)
        os.chmod(vault / ".paperkb", 0o755)


def test_wal_is_checkpointed_after_an_update(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 50)
    monkeypatch.setattr(I, "WAL_TRUNCATE_BYTES", 0)
    with Vault(vault) as v:
        v.index()
        assert os.path.getsize(str(v.index_path) + "-wal") == 0
        from kb.search import search

        assert search(v, "note")  # the full-text tables are written too
        assert os.path.getsize(str(v.index_path) + "-wal") == 0


def _can_mount_read_only() -> bool:
    import shutil

    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs root and mount namespaces (unshare)")
def test_read_only_mount_of_the_vault(tmp_path):
    vault = make_notes(tmp_path / "v", 3)
    with Vault(vault) as v:
        v.index()

    def read_only_run() -> str:
        script = f"""
            set -e
            mount --bind {vault} {vault}
            mount -o remount,bind,ro {vault}
            ! touch {vault}/probe 2>/dev/null
            export XDG_CACHE_HOME={tmp_path}/cache PYTHONPATH={ROOT}
            {sys.executable} -c "
from kb.vault import Vault
from kb.search import search
v = Vault('{vault}')
n, where = len(v.paths()), 'cache' if v.index_path.is_relative_to('{tmp_path}/cache') else 'vault'
print(n, where, [h.path for h in search(v, 'late')])"
        """
        run = subprocess.run(["unshare", "--mount", "bash", "-c", textwrap.dedent(script)], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout.split("\n")[-2]

    assert read_only_run() == "3 vault []"  # complete: read in place (search moved to the cache)
    (vault / "late.md").write_text("# Late\n", encoding="utf-8")  # now the index is stale
    assert read_only_run() == "4 cache ['late.md']"


def test_a_note_that_exhausts_memory_is_reported_in_words(tmp_path, monkeypatch):
    import kb.parse

    vault = make_notes(tmp_path / "v", 2)

    def no_memory(data, path, **kw):
        if path == "n001.md":
            raise MemoryError
        return real(data, path, **kw)

    real = kb.parse.parse_note
    monkeypatch.setattr(kb.parse, "parse_note", no_memory)
    with Vault(vault) as v:
        v.index(workers=1)
        problems = [p.message for p in v.problems() if p.path == "n001.md"]
    assert problems == ["could not parse: out of memory (the note is too large)"]


# ---- 9. a cold build writes through a rollback journal, and a kill undoes it -------------
def test_cold_build_returns_to_wal(tmp_path, monkeypatch):
    vault = make_notes(tmp_path / "v", 12)
    monkeypatch.setattr(I, "PARALLEL_MIN_FILES", 4)
    with Vault(vault) as v:
        assert v.index(workers=1).parsed == 12
    conn = sqlite3.connect(vault / ".paperkb" / "index.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 12
    finally:
        conn.close()


def test_kill_9_inside_a_cold_build_leaves_an_empty_index(tmp_path):
    vault = make_notes(tmp_path / "v", 30)
    code = """
        import os, signal, sys
        from kb import index as I
        real = I._apply
        def apply_then_die(conn, *args):
            conn.execute("PRAGMA cache_size=2")  # spill the new pages into the file before the kill
            real(conn, *args)
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            os.kill(os.getpid(), signal.SIGKILL)  # rows written, not committed
        I._apply = apply_then_die
        I.PARALLEL_MIN_FILES = 4
        from kb.vault import Vault
        Vault(sys.argv[1]).index(workers=1)
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(vault)], env=env, timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    db = vault / ".paperkb" / "index.db"
    assert Path(str(db) + "-journal").exists()  # the hot journal SQLite rolls back at the next open
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0  # no half index
    finally:
        conn.close()
    assert integrity(db) == "ok"
    with Vault(vault) as v:
        assert v.index().parsed == 30
        assert len(v.notes()) == 30
