"""Hostile notes: bad encodings, huge notes, FIFOs, duplicate keys, case twins (issue 12,
items 2, 3, 4 and 11), and the hostile vault through every library query."""

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
from kb.frontmatter import load_frontmatter
from kb.parse import parse_note
from kb.text import decode_note
from kb.vault import Vault

ROOT = Path(__file__).resolve().parents[2]


# ---- 2. decoding ---------------------------------------------------------------------
def test_latin1_note_true_line_numbers():
    data = b"ok\nline two caf\xe9\nfine\n\xe9t\xe9 and \xff\nutf-8 caf\xc3\xa9\n"
    decoded = decode_note(data)
    assert [(ln, msg.split(";")[0]) for ln, _, msg in decoded.issues] == [
        (2, "invalid UTF-8 (byte 0xe9)"), (4, "invalid UTF-8 (byte 0xe9)")]
    assert decoded.text.splitlines()[1] == "line two caf\ufffd" and decoded.text.endswith("café\n")


def test_large_latin1_note_decodes_in_one_pass():
    line = "r\xe9sum\xe9 na\xefve caf\xe9 " * 8 + "\n"
    data = (line * 20_000).encode("latin-1")  # ~2.3 MB, a bad byte every few characters
    t0 = time.process_time()
    decoded = decode_note(data)
    spent = time.process_time() - t0
    lines = [ln for ln, _, msg in decoded.issues if msg.startswith("invalid UTF-8 (byte")]
    assert lines == list(range(1, 11))  # the first ten bad lines, by their true numbers
    assert decoded.issues[-1][2] == "invalid UTF-8 on 19990 more line(s)"
    assert spent < 10, f"decoding took {spent:.1f} s of CPU (was minutes when quadratic)"


# ---- 3. search in a large note -------------------------------------------------------
def test_snippet_of_a_large_note_is_cut_from_a_window(tmp_path, monkeypatch):
    from kb import search as S

    vault = tmp_path / "v"
    vault.mkdir()
    body = ("lorem ipsum dolor sit amet " * 4000) + "needle in the haystack " + ("amet " * 4000)
    (vault / "big.md").write_text("# Big\n\n" + body, encoding="utf-8")
    (vault / "small.md").write_text("# Small\n\nA needle here.\n", encoding="utf-8")
    monkeypatch.setattr(S, "SNIPPET_FTS_MAX_CHARS", 10_000)
    calls = []
    real = S._large_snippet
    monkeypatch.setattr(S, "_large_snippet", lambda *a: calls.append(len(a[0])) or real(*a))
    with Vault(vault) as v:
        hits = {h.path: h for h in S.search(v, "needle")}
    assert len(calls) == 1 and calls[0] >= len(body)  # only the big note; the small one kept FTS5 snippets
    assert "**needle**" in hits["big.md"].marked() and hits["big.md"].snippet.startswith("…")
    assert len(hits["big.md"].snippet.split()) <= 14
    assert "**needle**" in hits["small.md"].marked()


def test_query_words_and_stem_like_matching():
    from kb.search import _cut, query_words

    assert query_words('title:llama AND "fine tuned" OR NOT chat* NEAR(a b, 5)') == [
        "llama", "fine", "tuned", "chat*", "a", "b", "5"]
    import re

    text = _cut("one two three trained models four five", 14, 3, re.compile(r"\btrai\w*", re.I))
    assert text == "…three \x02trained\x03 models…"


# ---- 4. FIFOs, devices and links to them ---------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_behind_a_note_name_never_blocks(tmp_path):
    vault = tmp_path / "v"
    vault.mkdir()
    (vault / "real.md").write_text("# Real\n", encoding="utf-8")
    os.mkfifo(vault / "p")
    os.symlink("p", vault / "x.md")
    os.mkfifo(vault / "y.md")
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", vault / "zero.md")  # outside the vault, and a device
    code = "import sys; from kb.vault import Vault; v = Vault(sys.argv[1]); print(v.paths())"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, str(vault)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['real.md']"
    with pytest.raises(OSError):
        I.read_regular_file(str(vault / "x.md"))  # and a reader never blocks on one


# ---- 11. duplicate keys, case twins --------------------------------------------------
def test_duplicate_yaml_keys_warn_with_their_line():
    props, _, issues = load_frontmatter("title: A\nyear: 2020\ntitle: B\n", first_line=2)
    assert props["title"] == "B"
    assert issues == [(4, "warning", "duplicate property 'title': the last value is used")]
    note = parse_note("---\ntags: [a]\ntags: [b]\n---\n# T\n", "n.md")
    assert any(p.line == 3 and "duplicate property 'tags'" in p.message for p in note.problems)
    merged, _, issues = load_frontmatter("base: &b {a: 1}\nm:\n  <<: *b\n  a: 2\n")
    assert merged["m"] == {"a": 2} and issues == []  # a merge key overriding is no duplicate


def test_exact_case_wins_among_case_twins(tmp_path):
    vault = tmp_path / "v"
    vault.mkdir()
    (vault / "note.md").write_text("# lower\n", encoding="utf-8")
    (vault / "Note.md").write_text("# Upper\n", encoding="utf-8")
    (vault / "a.md").write_text("[[Note]] [[note]] [Md](Note.md)\n", encoding="utf-8")
    with Vault(vault) as v:
        links = v.outgoing("a")
        assert [ln.resolved for ln in links] == ["Note.md", "note.md", "Note.md"]
        assert v.find("Note") == "Note.md" and v.find("note") == "note.md"


# ---- the hostile vault ---------------------------------------------------------------
def test_hostile_vault_indexes_and_answers_every_query(tmp_path, hostile_vault):
    vault = hostile_vault
    code = """
        import json, sys
        from kb.vault import Vault
        from kb.search import search
        with Vault(sys.argv[1]) as v:
            stats = v.index()
            out = {"paths": v.paths(), "problems": [p.__dict__ for p in v.problems()],
                   "search": [h.path for h in search(v, "exact spelling")],
                   "outside": [h.path for h in search(v, "SECRET")],
                   "links": [l.resolved for l in v.outgoing("linker")],
                   "graph": v.graph().number_of_nodes(), "tags": v.tags(),
                   "questions": len(v.questions()), "claims": len(v.claims())}
        print(json.dumps(out))
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(vault)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert time.monotonic() - t0 < 60
    import json

    out = json.loads(run.stdout)
    paths = set(out["paths"])
    assert not paths & {"fifo.md", "fifo-link.md", "outside-link.md", "dangling.md", "folder.md"}
    assert {"latin1.md", "binary.md", "dupkeys.md", "empty.md", "bomb.md", "deep.md", "long-line.md",
            "python-tag.md", "escapes.md", "bom-crlf.md"} <= paths
    assert out["outside"] == [] and out["search"] == ["Note.md"]
    assert out["links"] == ["Note.md", None]

    def problems(path):
        return [(p["line"], p["message"]) for p in out["problems"] if p["path"] == path]

    latin = [ln for ln, m in problems("latin1.md") if m.startswith("invalid UTF-8 (byte")]
    assert latin == list(range(1, 21, 2))  # the odd lines hold the bad bytes
    assert any("more line(s)" in m for _, m in problems("latin1.md"))
    assert (4, "duplicate property 'title': the last value is used") in problems("dupkeys.md")
    assert any("binary" in m for _, m in problems("binary.md"))
    assert any("too large or recursive" in m for _, m in problems("bomb.md"))
    assert any("python/object" in m or "could not determine a constructor" in m or "invalid YAML" in m
               for _, m in problems("python-tag.md"))
    # issue 23: a deep params:: is a problem on its line, the note keeps its links; the export
    # copy adds no name ("Note" still finds Note.md), no link and no problem
    assert any("nests lists" in m or "longer than" in m for _, m in problems("publish.md"))
    assert problems("exported.md") == []
    db = vault / ".paperkb" / "index.db"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM links WHERE src = 'exported.md'").fetchone()[0] == 0
    conn.close()
    assert not (tmp_path / "PWNED").exists()


def test_hostile_vault_exports_publish_nothing_unsafe(tmp_path, hostile_vault):
    """Issue 23 on the hostile vault: site and Markdown exports write only inside OUT, copy
    no HTML or dot-file, and load nothing from the network."""
    from kb.publish.markdown import export_markdown
    from kb.publish.site import export_site

    vault = hostile_vault
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(vault / ".paperkb")}
    with Vault(vault) as v:
        export_site(v, tmp_path / "site", workers=1, generated="x")
        export_markdown(v, tmp_path / "plain")
    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(vault / ".paperkb")}
    assert all(p.is_relative_to(tmp_path / "site") or p.is_relative_to(tmp_path / "plain") for p in after - before)
    published = {p.name for p in (tmp_path / "site").rglob("*") if p.is_file()}
    assert not [n for n in published if n.endswith((".html",)) and "evil" in n] and ".env" not in published
    from kb.publish.site import page_name

    text = (tmp_path / "site" / "notes" / page_name("publish.md")).read_text()
    assert 'src="https://' not in text and "<img src=x" not in text and "onerror=alert(1)>" not in text
