"""``export json``: the exact shape promised in the issue."""

from __future__ import annotations

import json

from vault_files import write

from kb.export import export_json
from kb.vault import Vault

NOTE_KEYS = ["path", "title", "aliases", "citekey", "authors", "year", "tags", "frontmatter",
             "links", "callouts", "questions", "claims"]


def test_export_shape(tmp_path):
    write(tmp_path, {
        "dir/P.md": "---\ntags: ['#paper', ml]\naliases: [pKey2020]\nyear: 2020\nauthors: Ann Lee, Bo Chen\n"
                    "when: 2020-01-02\n---\n# P\n> [!FAQ]- Why?\n> because\n\n"
                    "> [!claim] It works\n> experiment:: exp/a\n^works\n\nSee [[Q#Top|q]] and ![[Q#^blk]]\n",
        "Q.md": "# Top\npara ^blk\n",
    })
    data = export_json(Vault(tmp_path))
    json.dumps(data)  # plain JSON
    assert list(data) == ["notes", "problems"]
    p = next(n for n in data["notes"] if n["path"] == "dir/P.md")
    assert list(p) == NOTE_KEYS
    assert p["tags"] == ["paper", "ml"] and p["citekey"] == "pKey2020" and p["year"] == 2020
    assert p["authors"] == ["Ann Lee", "Bo Chen"]
    assert p["frontmatter"]["when"] == "2020-01-02"
    assert [list(l) for l in p["links"]] == [["target", "resolved", "kind", "heading", "block", "display", "line"]] * 2
    wiki, embed = p["links"]
    assert (wiki["target"], wiki["resolved"], wiki["kind"], wiki["heading"], wiki["display"], wiki["line"]) == \
        ("Q", "Q.md", "wikilink", "Top", "q", 16)
    assert (embed["kind"], embed["block"], embed["resolved"]) == ("embed", "blk", "Q.md")
    faq = next(c for c in p["callouts"] if c["line"] == 9)
    assert faq == {"type": "question", "title": "Why?", "fold": "-", "line": 9}
    assert p["claims"] == [{"id": "works", "statement": "It works", "experiments": ["exp/a"], "line": 12}]
    assert all(list(q) == ["text", "answered", "line"] for q in p["questions"])
    for prob in data["problems"]:
        assert list(prob) == ["path", "line", "severity", "message"]


def test_streamed_json_is_the_export(tmp_path):
    import io

    from kb.export import _umask, note_json, write_json, write_json_file

    write(tmp_path, {
        "a/Ünïcode ✓.md": "---\nratio: 0.1\nbig: 12345678901234567890\nneg: -1.5e-7\nflag: true\nnothing:\n"
                          "nested: {x: [1, {y: 'z'}], e: {}, l: []}\nwhen: 2024-05-06\n---\n"
                          "# Ü ✓\nSee [[B|bé]] and [m](B.md#Top) and [[Missing]] #tag\n> [!question] Why \"q\"?\n",
        "B.md": "# Top\n- [ ] task\n",
        "empty.md": "",
    })
    vault = Vault(tmp_path)
    data = export_json(vault)
    # the fields picked out by SQLite equal the note model's own export
    assert data["notes"] == [note_json(n) for n in vault.notes()]
    buf = io.StringIO()
    write_json(vault, buf)
    assert json.loads(buf.getvalue()) == data
    assert buf.getvalue().count("\n") == 4 + len(data["notes"]) + len(data["problems"])  # a note a line
    assert "Ünïcode ✓" in buf.getvalue() and '"ratio":0.1,' in buf.getvalue() and "true" in buf.getvalue()
    out = tmp_path / "out.json"
    out.write_text("old", encoding="utf-8")
    write_json_file(vault, out)
    assert out.read_text(encoding="utf-8") == buf.getvalue()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    fresh = tmp_path / "fresh.json"
    write_json_file(vault, fresh)
    assert fresh.stat().st_mode & 0o777 == out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_streamed_json_of_an_empty_vault(tmp_path):
    import io

    from kb.export import write_json

    buf = io.StringIO()
    write_json(Vault(tmp_path), buf)
    assert json.loads(buf.getvalue()) == {"notes": [], "problems": []}
