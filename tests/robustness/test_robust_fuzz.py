"""Hypothesis-generated notes through the parser and the index: nothing but paperkb's own
errors comes out, and each note is handled in bounded time (issue 12, "keep it true")."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.errors import PaperkbError
from kb.model import Note
from kb.parse import parse_note
from kb.vault import Vault

# Pieces that have broken Markdown/YAML/Obsidian parsers, put together at random.
PIECES = [
    "---\n", "---\r\n", "title: x\n", "title: y\n", "tags: [a, b]\n", "aliases:\n  - A\n", "year: 2023-13-45\n",
    "a: &a [1, 2]\n", "b: [*a, *a]\n", "x: !!python/name:os.system\n", "{", "}", "[", "]", "\"", "'", ": ",
    "[[", "]]", "[[Note]]", "[[Note#Head#Sub]]", "[[#^block]]", "![[img.png|100]]", "[[@citekey]]", "[[a|b]]",
    "> [!question] Q?\n", "> [!claim]- C\n", "> ", ">>>>", "```\n", "```dataview\nTABLE x\n", "~~~", "$$",
    "%%", "<!--", "-->", "<div>", "</div>", "- [ ] task\n", "- [x] done ^id\n", "#tag", "#a/b/c", "key:: value",
    "[k:: v]", "(k:: v)", "# Heading\n", "###### H6\n", "\n", "\r", "\t", " ", "*", "_", "`", "\\", "|", "^",
    "\x00", "\x1b]0;T\x07", "\x1b[2J", "\ufeff", "\u202e", "\ud7ff", "é", "\u00e2\u20ac\u00a6", "😀", "\x7f",
    # issue 23
    "params:: x=" + "[" * 60, "]" * 60, "paperkb-export: markdown\n", "<!-- paperkb-export -->\n", "../../",
    "![p](https://x.invalid/p.png)", "[h](evil.html)", "[e](.env)", "=HYPERLINK(", "``", "&#96;", "> " * 300,
]

notes_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=20)), max_size=60).map("".join)
notes_bytes = st.one_of(notes_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=300))


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=notes_bytes)
def test_parser_never_raises(data):
    note = parse_note(data, "fuzz/Note.md")
    assert isinstance(note, Note)
    Note.from_dict(note.to_dict())  # and what it made is plain, storable data


@settings(max_examples=25, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(notes_bytes, min_size=1, max_size=4))
def test_index_raises_only_paperkb_errors(files):
    root = Path(tempfile.mkdtemp(prefix="paperkb-fuzz-"))
    try:
        for i, data in enumerate(files):
            (root / f"{'Note' if i == 0 else f'n{i}'}.md").write_bytes(data)
        try:
            with Vault(root) as v:
                v.index(workers=1)
                assert len(v.paths()) == len(files)
                v.problems()
                v.graph()
                for path in v.paths():
                    v.note_at(path)
                    v.outgoing(path)
        except PaperkbError:
            pass  # a clean one-line error is allowed; anything else fails the test
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- issue 23: the one safe-path function and the CSV cell rule, on any text ------------------
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=300), st.lists(st.sampled_from(PIECES), max_size=20).map("".join)))
def test_safe_component_and_spreadsheet_safe_on_any_text(text):
    from paperkb.csvsafe import spreadsheet_safe
    from paperkb.files import safe_component

    name = safe_component(text, "fallback")
    assert name and "/" not in name and "\\" not in name and "\x00" not in name and not name.startswith(".")
    assert len(name.encode("utf-8", "surrogatepass")) <= 200 and Path(name).name == name
    cell = spreadsheet_safe(text)
    assert cell == text or (cell == "'" + text and text.startswith(tuple("=+-@\t\r")))
    assert not cell.startswith(tuple("=+@\t\r")) and (not cell.startswith("-") or cell == text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(notes_bytes, min_size=1, max_size=3))
def test_exports_of_any_notes_write_only_inside_out(files):
    from kb.publish.markdown import export_markdown
    from kb.publish.site import export_site

    base = Path(tempfile.mkdtemp(prefix="paperkb-fuzz-export-"))
    try:
        root = base / "vault"
        root.mkdir()
        for i, data in enumerate(files):
            (root / f"n{i}.md").write_bytes(data)
        with Vault(root) as v:
            try:
                export_markdown(v, base / "plain")
                export_site(v, base / "site", workers=1, generated="x")
            except PaperkbError:
                pass
        outside = [p for p in base.iterdir() if p.name not in ("vault", "plain", "site")]
        assert outside == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
