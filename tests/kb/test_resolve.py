"""Link resolution against hand-built notes (no parser involved)."""

from __future__ import annotations

import unicodedata

import pytest

from kb.model import BlockId, Heading, Link, Note
from kb.resolve import Resolver, link_key, resolve_all


def note(path, *, links=(), aliases=(), citekey=None, headings=(), blocks=()):
    return Note(
        path=path,
        title=path.rsplit("/", 1)[-1][:-3],
        aliases=list(aliases),
        citekey=citekey,
        links=list(links),
        headings=[Heading(t, lvl, i + 1) for i, (t, lvl) in enumerate(headings)],
        block_ids=[BlockId(b, 1, 1) for b in blocks],
    )


def wl(target, line=1, **kw):
    return Link(target=target, kind=kw.pop("kind", "wikilink"), line=line, **kw)


def resolve_one(notes, link, attachments=(), source="src.md"):
    src = note(source, links=[link])
    problems = resolve_all([src, *notes], attachments)
    return link.resolved, [p for p in problems if p.path == source]


@pytest.mark.parametrize("target", ["Note", "note", "NOTE.md", "Note.md", " Note "])
def test_by_file_name_case_insensitive_with_or_without_md(target):
    resolved, problems = resolve_one([note("papers/Note.md")], wl(target))
    assert resolved == "papers/Note.md"
    assert problems == []


def test_unicode_nfc_and_nfd_spellings_match():
    nfd = unicodedata.normalize("NFD", "Café")
    resolved, _ = resolve_one([note(f"{nfd}.md")], wl("café"))
    assert resolved == f"{nfd}.md"


def test_path_suffix_picks_the_right_folder():
    notes = [note("a/x/Note.md"), note("b/Note.md")]
    assert resolve_one(notes, wl("x/Note"))[0] == "a/x/Note.md"
    assert resolve_one(notes, wl("b/Note.md"))[0] == "b/Note.md"
    assert resolve_one(notes, wl("c/Note"))[0] is None


def test_alias_then_citekey():
    notes = [note("Llama 2.md", aliases=["llama-two"], citekey="touvron2023")]
    assert resolve_one(notes, wl("Llama-Two"))[0] == "Llama 2.md"
    assert resolve_one(notes, wl("touvron2023"))[0] == "Llama 2.md"


def test_file_name_beats_alias():
    notes = [note("x.md", aliases=["y"]), note("y.md")]
    assert resolve_one(notes, wl("y"))[0] == "y.md"


def test_at_citekey_resolves_to_note_with_that_citekey():
    notes = [note("Flash.md", citekey="dao2022"), note("dao2022x.md")]
    assert resolve_one(notes, wl("@dao2022"))[0] == "Flash.md"
    # the Zotero Integration also names files "@key.md"
    assert resolve_one([note("lit/@smith2020.md")], wl("@smith2020"))[0] == "lit/@smith2020.md"


def test_attachments_resolve_to_files():
    resolved, problems = resolve_one([], wl("pic.png", kind="embed"), attachments=["img/pic.png"])
    assert resolved == "img/pic.png" and problems == []
    assert resolve_one([], wl("doc.pdf", subpath="page=3", kind="embed"), attachments=["doc.pdf"])[0] == "doc.pdf"


def test_ambiguous_name_takes_shortest_path_and_warns():
    notes = [note("z/deep/Note.md"), note("b/Note.md"), note("a/Note.md")]
    resolved, problems = resolve_one(notes, wl("Note"))
    assert resolved == "a/Note.md"  # shortest, then alphabetical
    assert [p.severity for p in problems] == ["warning"]
    assert "ambiguous" in problems[0].message and "a/Note.md" in problems[0].message


def test_headings_checked_multi_level():
    target = note("T.md", headings=[("Intro", 1), ("Method", 1), ("Tiling", 2), ("Other", 1), ("Loose", 2)])
    ok, problems = resolve_one([target], wl("T", heading="Method#Tiling"))
    assert ok == "T.md" and problems == []
    _, problems = resolve_one([target], wl("T", heading="tiling"))  # case-insensitive
    assert problems == []
    _, problems = resolve_one([target], wl("T", heading="Missing"))
    assert [p.severity for p in problems] == ["warning"] and "Missing" in problems[0].message
    _, problems = resolve_one([target], wl("T", heading="Intro#Tiling"))  # exists, wrong parent
    assert [p.severity for p in problems] == ["info"]


def test_block_anchor_checked():
    target = note("T.md", blocks=["abc"])
    assert resolve_one([target], wl("T", block="abc"))[1] == []
    _, problems = resolve_one([target], wl("T", block="zzz"))
    assert problems[0].severity == "warning" and "^zzz" in problems[0].message


def test_local_heading_link_resolves_to_own_note():
    src = note("S.md", links=[wl("", heading="Here"), wl("", heading="Gone")], headings=[("Here", 1)])
    problems = resolve_all([src])
    assert src.links[0].resolved == "S.md"
    assert len(problems) == 1 and "Gone" in problems[0].message


def test_markdown_links_url_decoded_and_relative():
    notes = [note("sub/My Note.md"), note("other/Top.md")]
    link = Link(target="My%20Note.md", kind="markdown", line=3)
    assert resolve_one(notes, link, source="sub/src.md")[0] == "sub/My Note.md"
    link = Link(target="../other/Top.md", kind="markdown", line=3)
    assert resolve_one(notes, link, source="sub/src.md")[0] == "other/Top.md"


@pytest.mark.parametrize("target", ["../../etc/passwd", "../secret.md", "a/../../x.md"])
def test_markdown_links_never_escape_the_vault(target):
    resolved, problems = resolve_one([note("x.md")], Link(target=target, kind="markdown", line=2))
    assert resolved is None
    assert problems and problems[0].severity == "warning" and "outside the vault" in problems[0].message


def test_external_urls_are_not_problems():
    resolved, problems = resolve_one([], Link(target="https://arxiv.org/abs/2307.09288", kind="markdown", line=1))
    assert resolved is None and problems == []


def test_unresolved_is_warning_but_ghost_info_in_references():
    resolved, problems = resolve_one([], wl("nowhere", line=4))
    assert resolved is None and problems[0].severity == "warning" and problems[0].line == 4
    _, problems = resolve_one([], wl("@vaswani2017", is_citation=True))
    assert problems[0].severity == "info" and "vaswani2017" in problems[0].message


def test_link_key_matches_note_keys():
    assert link_key("folder/Note.md") == "note"
    assert link_key("@Key2020") == "key2020"
    assert link_key("My%20Note") == "my note"


def test_resolver_from_rows_uses_anchor_callback_lazily():
    calls = []

    def anchors(path):
        calls.append(path)
        return None

    r = Resolver([("t", "T.md", "name")], [], anchors)
    src = note("S.md", links=[wl("T"), wl("T", heading="H")])
    assert r.resolve(src) == []
    assert calls == ["T.md"]  # only the link with an anchor asked


def test_repeated_targets_resolve_alike_with_each_links_own_messages():
    # the resolver remembers where a target leads; each link must still get its own
    # anchor check and its own wording in messages
    notes = [note("a/Note.md", headings=[("Intro", 1)]), note("b/Note.md"), note("T.md", headings=[("Intro", 1)])]
    links = [wl("Note", 1), wl("Note", 2, heading="Intro"), wl("T", 3, heading="Intro"), wl("T", 4, heading="Gone"),
             wl("Note", 5, kind="embed"), wl("Missing", 6), wl("Missing", 7, is_citation=True)]
    src = note("src.md", links=links)
    problems = [p for p in resolve_all([src, *notes]) if p.path == "src.md"]
    assert [ln.resolved for ln in links] == ["a/Note.md", "a/Note.md", "T.md", "T.md", "a/Note.md", None, None]
    by_line = {}
    for p in problems:
        by_line.setdefault(p.line, []).append((p.severity, p.message))
    assert sorted(by_line) == [1, 2, 4, 5, 6, 7]
    assert "ambiguous link [[Note]]" in by_line[1][0][1]
    assert "ambiguous link [[Note#Intro]]" in by_line[2][0][1] and len(by_line[2]) == 1  # heading found
    assert "heading 'Gone' not found" in by_line[4][0][1]
    assert "ambiguous link ![[Note]]" in by_line[5][0][1]
    assert by_line[6] == [("warning", "unresolved link [[Missing]]")]
    assert by_line[7][0][0] == "info"
