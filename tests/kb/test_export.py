"""``export json``: the exact shape promised in the issue."""

from __future__ import annotations

import json

from vaultkit import write

from kb.publish.json_export import export_json
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
    assert [list(link) for link in p["links"]] == [["target", "resolved", "kind", "heading", "block", "display", "line"]] * 2
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

    from kb.publish.json_export import _umask, note_json, write_json, write_json_file

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

    from kb.publish.json_export import write_json

    buf = io.StringIO()
    write_json(Vault(tmp_path), buf)
    assert json.loads(buf.getvalue()) == {"notes": [], "problems": []}


# ---- the fast path: stored notes decoded into the export's structs (kb.publish.json_export._note_line) ----
def test_fast_lines_are_byte_for_byte_the_python_export(tmp_path):
    """Each line ``write_json`` writes is exactly ``json.dumps(note_json(note))`` (compact,
    non-ASCII kept): floats keep Python's spelling, huge integers and every kind of
    string survive, and a frontmatter key named like a later field of the note does not
    confuse the decoder."""
    import io

    from kb.publish.json_export import _python_dumps, note_json, write_json

    write(tmp_path, {
        "a/Ünïcode ✓.md": "---\nsmall: 1.0e-7\nlarge: 1.0e+16\nhuge: 1.5e+300\nneg: -0.0\nthird: 0.3333333333333333\n"
                          "big: 123456789012345678901234567890\nq: 'say \"hi\" \\\\ back\\tslash'\n"
                          "tasks: {body_text: x, claims: [1]}\nemoji: \"😀 \\u2028 \\x7f \\x01\"\n---\n"
                          "# Ü ✓\nSee [[B|bé]] and [m](B.md#Top) and [[Missing]] #tag #Tag\n"
                          "> [!question] Why \"q\"?\n> because\n\n> [!claim] It holds\n> experiment:: exp/a\n^holds\n"
                          "- [ ] a task\n- [x] done:: yes\n",
        "B.md": "# Top\n- [ ] task\n",
        "empty.md": "",
    })
    vault = Vault(tmp_path)
    buf = io.StringIO()
    write_json(vault, buf)
    lines = buf.getvalue().split("\n")
    lines = lines[1:lines.index("],")]  # between '{"notes": [' and '],'
    expected = [_python_dumps(note_json(n)) for n in vault.notes()]
    assert [line.rstrip(",") for line in lines] == expected
    assert '"small":1e-07,' in buf.getvalue() and '"large":1e+16,' in buf.getvalue() and '"huge":1.5e+300,' in buf.getvalue()


def test_stored_notes_the_typed_decoder_refuses_take_the_dict_path():
    from kb.publish.json_export import _note_line

    # NaN is not JSON (msgspec refuses it); a null list; tags written with '#'
    line = _note_line(b'{"path": "a.md", "frontmatter": {"x": NaN}, "links": null, "tags": ["#a", "b"]}')
    assert line == (b'{"path":"a.md","title":null,"aliases":[],"citekey":null,"authors":[],"year":null,'
                    b'"tags":["a","b"],"frontmatter":{"x":NaN},"links":[],"callouts":[],"questions":[],"claims":[]}')
    # the typed path strips '#' and fills null lists the same way
    assert _note_line(b'{"path": "a.md", "tags": ["##a", "b"], "aliases": null}') == (
        b'{"path":"a.md","title":null,"aliases":[],"citekey":null,"authors":[],"year":null,'
        b'"tags":["a","b"],"frontmatter":{},"links":[],"callouts":[],"questions":[],"claims":[]}')


def _json_values():
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                        max_leaves=12)


def _stored_note():
    from hypothesis import strategies as st

    value = _json_values()
    link = st.fixed_dictionaries({
        "target": st.text(), "kind": st.sampled_from(["wikilink", "embed"]), "line": st.integers(1, 99),
        "heading": st.none() | st.text(), "block": st.none(), "subpath": st.none(), "display": st.none() | st.text(),
        "section": st.text(), "is_citation": st.booleans(), "resolved": st.none() | st.text()})
    callout = st.fixed_dictionaries({
        "type": st.text(), "raw_type": st.text(), "title": st.text(), "fold": st.none() | st.just("-"),
        "line": st.integers(1, 99), "end_line": st.integers(1, 99), "depth": st.integers(1, 3), "content": st.text()})
    return st.fixed_dictionaries({
        "path": st.text(), "title": st.text(), "aliases": st.lists(st.text(), max_size=3),
        "citekey": st.none() | st.text(), "authors": st.lists(st.text(), max_size=3),
        "year": st.none() | st.integers(), "doi": st.none() | st.text(), "tags": st.lists(st.text(), max_size=3),
        "frontmatter": st.dictionaries(st.text(), value, max_size=5), "headings": st.just([]),
        "links": st.lists(link, max_size=3), "callouts": st.lists(callout, max_size=3),
        "questions": st.lists(st.fixed_dictionaries({"text": st.text(), "answer": st.text(), "answered": st.booleans(),
                                                      "line": st.integers(1, 99)}), max_size=2),
        "highlights": st.lists(st.text(), max_size=2),
        "claims": st.lists(st.fixed_dictionaries({"id": st.text(), "statement": st.text(),
                                                   "experiments": st.lists(st.text(), max_size=2),
                                                   "line": st.integers(1, 99), "params": st.dictionaries(st.text(), value,
                                                                                                         max_size=2)}),
                           max_size=2),
        "tasks": st.just([]), "body_text": st.text(), "size": st.integers(0), "mtime": st.floats(0, 2e9),
        "problems": st.just([])})


def test_fast_path_equals_the_dict_path_on_generated_notes():
    """Whatever a stored note holds (any text, any JSON in frontmatter and claim params),
    the typed decoder's line is the dict path's line, byte for byte."""
    from hypothesis import HealthCheck, given, settings

    from kb.publish.json_export import _note_line, _note_line_of_dict

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_stored_note())
    def check(stored):
        data = json.dumps(stored, ensure_ascii=False).encode("utf-8", "surrogatepass")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return  # a lone surrogate: SQLite could not have stored it as text
        assert _note_line(data) == _note_line_of_dict(stored)

    check()
