"""The Vault API that the other modules code against."""

from __future__ import annotations

import unicodedata

import pytest
from vaultkit import write

from kb.errors import NoteNotFound, PaperkbError, VaultError
from kb.vault import Vault


@pytest.fixture
def vault(tmp_path):
    write(tmp_path, {
        "papers/Llama 2.md": "---\ntitle: Llama 2 - Open Models\naliases: [touvronLlama2023]\ntags: [paper]\n---\n"
                             "# Llama 2\nText [[Flash]] [[nowhere]]\n",
        "papers/Flash.md": "---\ncitekey: daoFlash2022\n---\n# FlashAttention\nback [[touvronLlama2023]]\n",
        f"{unicodedata.normalize('NFD', 'Café')}.md": "# Café\n",
    })
    return Vault(tmp_path)


def test_missing_or_file_vault_is_one_line_error(tmp_path):
    with pytest.raises(VaultError, match="not found"):
        Vault(tmp_path / "nope")
    (tmp_path / "f.md").write_text("x")
    with pytest.raises(VaultError, match="not a folder"):
        Vault(tmp_path / "f.md")
    assert issubclass(VaultError, PaperkbError)


def test_attributes(vault, tmp_path):
    assert vault.root == tmp_path.resolve()
    assert vault.index_path == tmp_path.resolve() / ".paperkb" / "index.db"


@pytest.mark.parametrize("name", [
    "papers/Llama 2.md", "papers/llama 2", "Llama 2", "LLAMA 2.md", "touvronllama2023", "@touvronLlama2023",
    "Llama 2 - Open Models",
])
def test_note_by_path_name_alias_title(vault, name):
    assert vault.note(name).path == "papers/Llama 2.md"


def test_note_by_citekey_and_nfc(vault):
    assert vault.note("daoflash2022").path == "papers/Flash.md"
    assert vault.note("café").title == "Café"


def test_note_not_found_lists_close_matches(vault):
    with pytest.raises(NoteNotFound, match="did you mean.*Flash"):
        vault.note("Flsh")


def test_notes_have_resolved_links_and_problems_sorted(vault):
    notes = {n.path: n for n in vault.notes()}
    assert [l.resolved for l in notes["papers/Llama 2.md"].links] == ["papers/Flash.md", None]
    assert notes["papers/Flash.md"].links[0].resolved == "papers/Llama 2.md"
    problems = vault.problems()
    assert any(p.path == "papers/Llama 2.md" and "nowhere" in p.message for p in problems)
    assert problems == sorted(problems, key=lambda p: (p.path, p.line))


def test_backlinks_outgoing_tags(vault):
    assert [r.src for r in vault.backlinks("Flash")] == ["papers/Llama 2.md"]
    assert [(r.target, r.resolved) for r in vault.outgoing("Flash")] == [("touvronLlama2023", "papers/Llama 2.md")]
    assert vault.tags() == [("paper", 1)]


def test_queries_refresh_unless_told_not_to(vault, tmp_path):
    assert len(vault.notes()) == 3
    write(tmp_path, {"New.md": "# New\n"})
    assert Vault(tmp_path, refresh=False).paths() == vault.paths()  # stale on purpose
    assert "New.md" in Vault(tmp_path).paths()


def test_connect_gives_the_index_db(vault):
    vault.index()
    conn = vault.connect()
    assert conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 3


def test_questions_and_claims_read_from_index(tmp_path):
    write(tmp_path, {"Q.md": "# Q\n> [!question] Open?\n\n> [!faq] Done?\n\nYes.\n\n"
                             "> [!claim] It holds\n> experiment:: a/b\n^holds\n"})
    v = Vault(tmp_path)
    assert [(p, q.text, q.answered) for p, q in v.questions()] == [("Q.md", "Open?", False), ("Q.md", "Done?", True)]
    assert [q.text for _, q in v.questions(open_only=True)] == ["Open?"]
    assert [(p, c.id, c.experiments) for p, c in v.claims()] == [("Q.md", "holds", ["a/b"])]


def test_no_refresh_still_builds_a_missing_or_outdated_index(tmp_path):
    write(tmp_path, {"A.md": "# A\n"})
    assert Vault(tmp_path, refresh=False).paths() == ["A.md"]
    conn = Vault(tmp_path).connect()
    conn.execute("UPDATE meta SET value='old' WHERE key='fingerprint'")
    write(tmp_path, {"B.md": "# B\n"})
    assert Vault(tmp_path, refresh=False).paths() == ["A.md", "B.md"]


def test_warm_check_sees_every_edit_after_a_stored_walk(tmp_path, monkeypatch):
    """The cheap freshness check (a stored digest of the last walk) must still see an
    in-place edit of the same size, a new note, a deleted note, and a parser change."""
    import os

    import kb.vault as kv

    write(tmp_path, {"A.md": "# A\nfirst\n", "B.md": "# B\n"})
    assert Vault(tmp_path).paths() == ["A.md", "B.md"]  # stores the digest
    calls = []
    real_update = kv.update
    monkeypatch.setattr(kv, "update", lambda *a, **k: calls.append(1) or real_update(*a, **k))
    assert Vault(tmp_path).paths() == ["A.md", "B.md"]
    assert calls == []  # nothing changed: no full update
    st = os.stat(tmp_path / "A.md")
    (tmp_path / "A.md").write_text("# A\nFIRST\n")  # same size, times put back: ctime moves
    os.utime(tmp_path / "A.md", ns=(st.st_atime_ns, st.st_mtime_ns))
    Vault(tmp_path).paths()
    row = Vault(tmp_path, refresh=False).connect().execute("SELECT data FROM notes WHERE path='A.md'").fetchone()
    assert "FIRST" in row[0]
    assert calls, "an edit must bring the full update"
    calls.clear()
    write(tmp_path, {"C.md": "# C\n"})
    (tmp_path / "B.md").unlink()
    assert Vault(tmp_path).paths() == ["A.md", "C.md"]
    assert calls
    calls.clear()
    conn = Vault(tmp_path).connect()
    conn.execute("UPDATE meta SET value='old' WHERE key='fingerprint'")  # another parser version
    monkeypatch.setattr(kv, "code_fingerprint", lambda: "other code")
    Vault(tmp_path).paths()
    assert calls


def test_warm_check_sees_an_in_place_edit_by_content(tmp_path):
    write(tmp_path, {"A.md": "# A\n[[B]]\n", "B.md": "# B\n"})
    assert [r.resolved for r in Vault(tmp_path).outgoing("A")] == ["B.md"]
    assert [r.resolved for r in Vault(tmp_path).outgoing("A")] == ["B.md"]  # warm, digest matches
    (tmp_path / "A.md").write_text("# A\n[[C]]\n")
    assert [r.target for r in Vault(tmp_path).outgoing("A")] == ["C"]
