"""The SQLite index: incremental updates, re-resolution, cache semantics."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from kb import index as I
from kb.vault import Vault
from vaultkit import write



def bump(path, seconds=10):
    st = path.stat()
    os.utime(path, (st.st_atime + seconds, st.st_mtime + seconds))


@pytest.fixture
def vault(tmp_path):
    write(tmp_path, {
        "A.md": "---\naliases: [akey]\n---\n# A\n## Part\nsee [[B]] and [[C]]\n",
        "B.md": "# B\nback to [[A#Part]]\n",
        "sub/D.md": "# D\n![[pic.png]] [[akey]]\n",
        "sub/pic.png": b"\x89PNG",
        ".obsidian/x.md": "# hidden [[A]]\n",
        ".trash/old.md": "# old\n",
    })
    return tmp_path


def links_of(v: Vault, name: str) -> dict[str, str | None]:
    return {link.target: link.resolved for link in v.note(name).links}


def test_cold_index_contract_tables(vault):
    v = Vault(vault)
    stats = v.index()
    assert stats.notes == 3 and stats.parsed == 3 and stats.attachments == 1 and stats.rebuilt
    conn = sqlite3.connect(vault / ".paperkb" / "index.db")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(notes)")]
    assert cols[:5] == ["path", "size", "mtime", "hash", "data"]
    rows = dict(conn.execute("SELECT path, data FROM notes"))
    assert sorted(rows) == ["A.md", "B.md", "sub/D.md"]  # dot-folders skipped
    data = json.loads(rows["A.md"])
    assert {l["target"]: l["resolved"] for l in data["links"]} == {"B": "B.md", "C": None}
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == I.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_warm_index_parses_nothing_and_touch_only_hashes(vault):
    Vault(vault).index()
    assert Vault(vault).index().parsed == 0
    bump(vault / "B.md")
    stats = Vault(vault).index()
    assert (stats.parsed, stats.touched) == (0, 1)
    assert Vault(vault).index().touched == 0  # the new mtime was stored


def test_changed_note_reparsed_and_backlinkers_rechecked(vault):
    v = Vault(vault)
    v.index()
    assert not [p for p in v.problems() if p.path == "B.md"]
    (vault / "A.md").write_text("---\naliases: [akey]\n---\n# A\n## Renamed\nsee [[B]]\n", encoding="utf-8")
    bump(vault / "A.md")
    stats = v.index()
    assert stats.parsed == 1 and stats.changed_paths == ["A.md"]
    # B links to A#Part, which is gone now: B was re-resolved without being re-parsed
    assert any(p.path == "B.md" and "Part" in p.message for p in v.problems())


def test_new_note_resolves_dangling_links_of_others(vault):
    v = Vault(vault)
    v.index()
    assert links_of(v, "A")["C"] is None
    write(vault, {"C.md": "# C\n"})
    stats = v.index()
    assert stats.parsed == 1 and stats.resolved >= 2
    assert links_of(v, "A")["C"] == "C.md"
    assert not any("[[C]]" in p.message for p in v.problems())


def test_deleted_note_dropped_and_links_unresolved(vault):
    v = Vault(vault)
    v.index()
    (vault / "B.md").unlink()
    stats = v.index()
    assert stats.deleted == 1 and stats.deleted_paths == ["B.md"]
    assert "B.md" not in v.paths()
    assert links_of(v, "A")["B"] is None


def test_alias_change_moves_resolution(vault):
    v = Vault(vault)
    v.index()
    assert links_of(v, "D")["akey"] == "A.md"
    (vault / "B.md").write_text("---\naliases: [akey2]\n---\n# B\n", encoding="utf-8")
    (vault / "A.md").write_text("# A\n", encoding="utf-8")
    v.index()
    assert links_of(v, "D")["akey"] is None


def test_attachment_added_later_resolves(vault):
    v = Vault(vault)
    write(vault, {"B.md": "# B\n![[later.pdf]]\n"})
    v.index()
    assert links_of(v, "B")["later.pdf"] is None
    write(vault, {"files/later.pdf": b"%PDF"})
    v.index()
    assert links_of(v, "B")["later.pdf"] == "files/later.pdf"


def test_index_is_a_cache(vault):
    import shutil

    v = Vault(vault)
    v.index()
    before = [n.to_dict() for n in v.notes()]
    v.close()
    shutil.rmtree(vault / ".paperkb")
    assert [n.to_dict() for n in Vault(vault).notes()] == before


def test_schema_mismatch_rebuilds_and_keeps_foreign_tables(vault):
    v = Vault(vault)
    v.index()
    conn = v.connect()
    conn.execute("CREATE TABLE search_fts_demo (x)")
    conn.execute("UPDATE meta SET value='old' WHERE key='fingerprint'")
    v2 = Vault(vault)
    stats = v2.index()
    assert stats.rebuilt and stats.parsed == 3
    names = {r[0] for r in v2.connect().execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "search_fts_demo" in names


def test_symlink_outside_vault_ignored(tmp_path):
    outside = tmp_path / "outside"
    inside = tmp_path / "vault"
    write(outside, {"secret.md": "# secret\n"})
    write(inside, {"ok.md": "# ok\n", "real.md": "# real\n"})
    os.symlink(outside / "secret.md", inside / "secret.md")
    os.symlink(outside, inside / "outdir")
    os.symlink(inside / "real.md", inside / "alias.md")
    paths = Vault(inside).paths()
    assert "secret.md" not in paths and not any(p.startswith("outdir") for p in paths)
    assert "alias.md" in paths and "ok.md" in paths


def test_parallel_cold_index_equals_serial(tmp_path, monkeypatch):
    files = {f"n{i:03d}.md": f"---\naliases: [k{i}]\ntags: [t{i % 3}]\n---\n# N{i}\n[[k{(i * 7) % 60}]] "
             f"[[n{(i + 1) % 60:03d}#N{i}]] [[gone{i % 4}]] #x{i % 5}\n"
             for i in range(60)}
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, files)
    write(b, files)
    serial = Vault(a).index(workers=1)
    monkeypatch.setattr(I, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(I, "BATCH_SIZE", 8)
    monkeypatch.setattr(I, "LAZY_NAMES_MAX", 0)  # and the all-names-in-memory resolver
    parallel = Vault(b).index(workers=2)
    assert parallel.workers == 2 and serial.workers == 1
    strip = lambda v: [{k: x for k, x in n.to_dict().items() if k not in ("mtime", "ctime")} for n in v.notes()]
    assert strip(Vault(a)) == strip(Vault(b))

    def tables(root):
        conn = sqlite3.connect(root / ".paperkb" / "index.db")
        try:
            out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
                   for t in ("names", "links", "problems", "tags")}
            out["notes"] = conn.execute("SELECT path, size, hash FROM notes ORDER BY rowid").fetchall()
            out["indexes"] = sorted(conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index'"))
            return out
        finally:
            conn.close()

    got, want = tables(b), tables(a)
    assert got == want and any(row[-1] is None for row in want["links"]) and want["problems"]


def test_progress_bar_on_stderr(tmp_path, monkeypatch, capsys):
    write(tmp_path, {f"n{i}.md": f"# {i}\n" for i in range(5)})
    monkeypatch.setattr(I, "PROGRESS_MIN_FILES", 1)
    Vault(tmp_path).index(progress=True)
    assert capsys.readouterr().out == ""


def test_progress_bar_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(I, "_stderr_is_terminal", lambda: False)
    assert I._Bar(True, 10).progress is None  # piped: rich not even started
    monkeypatch.setattr(I, "_stderr_is_terminal", lambda: True)
    assert I._Bar(True, 10).progress is not None and I._Bar(False, 10).progress is None


def test_prepared_json_equals_full_serialisation():
    from kb.model import Link, Problem
    from kb.parse import parse_note
    from kb.resolve import Resolver

    text = b'---\ntags: [a]\n---\n# T\n[[T]] [[gone]] quoted "\\u0000abc123:0\\u0000" inside [[T#T]]\n'
    note = parse_note(text, "T.md", mtime=1.0, ctime=1.0)
    nonce = "abc123"
    item = I.prepare(note, nonce)
    resolver = Resolver([("t", "T.md", "name")], [], lambda p: None)
    found = resolver.resolve_links("T.md", item.links)
    data = json.loads(item.finish(found))
    expected = note
    expected.links = item.links
    expected.problems = list(note.problems) + found
    assert data == json.loads(json.dumps(expected.to_dict()))
    assert [l["resolved"] for l in data["links"]] == ["T.md", None, "T.md"]
    assert isinstance(item.links[0], Link) and all(isinstance(p, Problem) for p in found)


def test_corrupt_index_file_is_rebuilt(vault):
    db = vault / ".paperkb" / "index.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not a database" * 100)
    assert Vault(vault).index().parsed == 3


def test_notes_are_stored_as_compact_json(vault):
    Vault(vault).index()
    conn = sqlite3.connect(vault / ".paperkb" / "index.db")
    data = conn.execute("SELECT data FROM notes ORDER BY path LIMIT 1").fetchone()[0]
    assert json.loads(data)["path"] and '": ' not in data.split('"body_text"')[0]


def test_note_json_falls_back_for_what_orjson_refuses(tmp_path):
    # an integer past 64 bits: orjson refuses it, json writes it (same compact form)
    write(tmp_path, {"a.md": "---\nbig: 123456789012345678901234567890\n---\n# A\n[[b]]\n", "b.md": "# B\n"})
    Vault(tmp_path).index()
    conn = sqlite3.connect(tmp_path / ".paperkb" / "index.db")
    data = conn.execute("SELECT data FROM notes WHERE path = 'a.md'").fetchone()[0]
    assert json.loads(data)["frontmatter"]["big"] == 123456789012345678901234567890
    assert json.loads(data)["links"][0]["resolved"] == "b.md" and '": ' not in data


def test_names_that_are_not_utf8_are_left_out_and_reported(tmp_path):
    write(tmp_path, {"A.md": "# A\n[[B]]\n", "B.md": "# B\n"})
    (tmp_path / os.fsdecode(b"bad\xff name.md")).write_bytes(b"# bad\n")
    (tmp_path / os.fsdecode(b"dir\xfe")).mkdir()
    (tmp_path / os.fsdecode(b"dir\xfe") / "C.md").write_text("# C\n")
    stats = Vault(tmp_path).index()
    assert stats.notes == 2 and sorted(stats.bad_names) == ["bad\\xff name.md", "dir\\xfe"]
    assert sorted(n.path for n in Vault(tmp_path).notes()) == ["A.md", "B.md"]
