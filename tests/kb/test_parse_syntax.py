"""Obsidian syntax elements, one at a time, including the documented edge cases."""

from __future__ import annotations

import pytest

from kb.parse import CALLOUT_ALIASES, parse_note, slugify


def parse(text: str, path: str = "note.md"):
    note = parse_note(text, path)
    assert not [p for p in note.problems if p.severity == "error"], note.problems
    return note


def only_link(text: str):
    links = parse(text).links
    assert len(links) == 1, links
    return links[0]


# --- wikilinks and embeds ---------------------------------------------------------------
@pytest.mark.parametrize(
    "text, target, heading, block, display",
    [
        ("[[Note]]", "Note", None, None, None),
        ("[[Note.md]]", "Note.md", None, None, None),
        ("[[folder/Note]]", "folder/Note", None, None, None),
        ("[[Note#Heading]]", "Note", "Heading", None, None),
        ("[[Note#A#B]]", "Note", "A#B", None, None),
        ("[[#Local heading]]", "", "Local heading", None, None),
        ("[[Note#^block-1]]", "Note", None, "block-1", None),
        ("[[Note|shown]]", "Note", None, None, "shown"),
        ("[[ Note ]]", "Note", None, None, None),
        ("[[ Note # Head | shown ]]", "Note", "Head", None, "shown"),
        ("[[@touvronLlamaOpenFoundation2023]]", "@touvronLlamaOpenFoundation2023", None, None, None),
    ],
)
def test_wikilink_forms(text, target, heading, block, display):
    link = only_link(f"See {text} here.")
    assert (link.target, link.heading, link.block, link.display, link.kind) == (
        target,
        heading,
        block,
        display,
        "wikilink",
    )
    assert link.resolved is None


def test_wikilink_display_in_table_uses_escaped_bar():
    note = parse("| a | b |\n|---|---|\n| [[Note\\|shown]] | x |\n")
    assert [(link.target, link.display, link.line) for link in note.links] == [("Note", "shown", 3)]


def test_embeds():
    note = parse("![[Note]] ![[Note#^id]] ![[image.png|100x145]] ![[doc.pdf#page=3]]")
    got = [(link.kind, link.target, link.block, link.display, link.subpath, link.heading) for link in note.links]
    assert got == [
        ("embed", "Note", None, None, None, None),
        ("embed", "Note", "id", None, "^id", None),
        ("embed", "image.png", None, "100x145", None, None),
        ("embed", "doc.pdf", None, None, "page=3", None),
    ]


def test_empty_or_multiline_brackets_are_not_links():
    assert parse("[[]] [[ ]] [[a\nb]]").links == []


def test_escaped_wikilink_is_not_a_link():
    assert parse("\\[[Note]]").links == []


# --- Markdown links ---------------------------------------------------------------------
def test_markdown_links_to_notes_not_urls():
    note = parse(
        "[a](My%20Note.md) [b](<Other Note.md>) [c](folder/x.md#Sec) [d](https://x.org/a.md) "
        "[e](zotero://select/items/1) [f](file:///tmp/x.pdf) [g](mailto:a@b.c) ![img](pics/p%201.png) "
        "[h](#Local)"
    )
    got = [(link.kind, link.target, link.heading, link.display) for link in note.links]
    assert got == [
        ("markdown", "My Note.md", None, "a"),
        ("markdown", "Other Note.md", None, "b"),
        ("markdown", "folder/x.md", "Sec", "c"),
        ("markdown", "pics/p 1.png", None, "img"),
        ("markdown", "", "Local", "h"),
    ]


# --- code, comments: never links or tags -------------------------------------------------
def test_code_and_comments_yield_nothing():
    text = (
        "`[[InCode]] #codetag`\n\n"
        "```\n[[InFence]] #fencetag\n```\n\n"
        "    [[Indented]] #indentedtag\n\n"
        "before %%[[Inline comment]] #ctag%% after\n\n"
        "%%\n[[Block comment]]\n#btag\n\nstill comment\n%%\n\n"
        "> %%\n> [[Quoted comment]]\n> %%\n\n"
        "$[[Math]] #mathtag$\n\n"
        "[[Visible]] #visible"
    )
    note = parse(text)
    assert [link.target for link in note.links] == ["Visible"]
    assert note.tags == ["visible"]
    assert note.links[0].line == 24
    assert "Inline comment" not in note.body_text and "before" in note.body_text


def test_unclosed_block_comment_hides_the_rest():
    note = parse("[[A]]\n\n%%\n[[B]]\n\n[[C]]\n")
    assert [link.target for link in note.links] == ["A"]


# --- tags -------------------------------------------------------------------------------
def test_tags_follow_obsidian_rules():
    text = (
        "#plain #nested/deep/tag #with-dash #under_score #日本語 #Ünïcode #y1984 #1984 "
        "#a,#b end #comma, http://x.com/#frag a#b `#code`\n"
        "## Heading #inheading\n"
    )
    note = parse(text)
    assert note.tags == [
        "plain",
        "nested/deep/tag",
        "with-dash",
        "under_score",
        "日本語",
        "Ünïcode",
        "y1984",
        "a",
        "comma",
        "inheading",
    ]
    assert [h.text for h in note.headings] == ["Heading #inheading"]


def test_tags_dedupe_case_insensitively_keeping_first_spelling():
    note = parse("---\ntags: [Paper, '#ml']\n---\n#paper #ML #New #new\n")
    assert note.tags == ["Paper", "ml", "New"]


@pytest.mark.parametrize(
    "fm",
    [
        "tags: [a, '#b']",
        "tags:\n  - a\n  - '#b'",
        "tags: a, b",
        "tags: a b",
        "tag: '#a #b'",
        "Tags: a,#b",
    ],
)
def test_frontmatter_tag_forms(fm):
    assert parse(f"---\n{fm}\n---\nbody\n").tags == ["a", "b"]


# --- highlights (==mark==) --------------------------------------------------------------
def test_marks_parse_their_content():
    note = parse("==marked [[Inside]] #tag== and == not marked ==")
    assert [link.target for link in note.links] == ["Inside"]
    assert note.tags == ["tag"]
    assert "marked Inside" in note.body_text


# --- block ids --------------------------------------------------------------------------
def test_block_id_end_of_paragraph_and_list_item():
    note = parse("First line\nsecond line ^para-1\n\n- item one ^item-1\n- item two\n")
    assert [(b.id, b.line, b.block_line) for b in note.block_ids] == [("para-1", 2, 1), ("item-1", 4, 4)]


@pytest.mark.parametrize("blank", ["", "\n"])
@pytest.mark.parametrize(
    "block",
    [
        "- a\n- b\n",
        "1. a\n2. b\n",
        "> quote\n> more\n",
        "> [!note] Callout\n> body\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n",
    ],
)
def test_block_id_after_structured_block(block, blank):
    note = parse("Intro paragraph.\n\n" + block + blank + "^blk\n")
    assert [(b.id, b.block_line) for b in note.block_ids] == [("blk", 3)]
    assert note.block_ids[0].line == 3 + block.count("\n") + (1 if blank else 0)


def test_caret_inside_text_is_not_a_block_id():
    note = parse("x^2 and a ^b c\n[^1]\n\n[^1]: footnote\n")
    assert note.block_ids == []


# --- inline fields ----------------------------------------------------------------------
def test_inline_fields_three_styles():
    note = parse(
        "rating:: 9\n"
        "Some text [status:: reading] and (source:: [[Paper]]) here.\n"
        "- item:: in list\n"
        "`code:: no`\n"
    )
    got = [(f.key, f.value, f.line, f.style) for f in note.inline_fields]
    assert got == [
        ("rating", "9", 1, "line"),
        ("status", "reading", 2, "bracket"),
        ("source", "[[Paper]]", 2, "paren"),
        ("item", "in list", 3, "line"),
    ]
    assert [link.target for link in note.links] == ["Paper"]


def test_double_colon_not_after_a_key_is_no_field():
    note = parse("Use `std::vector` here.\nhttp://example.com\n- [[a]]:: b\n")
    assert note.inline_fields == []


# --- tasks and lists --------------------------------------------------------------------
def test_tasks_and_list_items():
    note = parse("- [ ] open\n- [x] done\n- [X] DONE\n- [/] doing\n- [-] dropped\n- plain\n* [link](x.md)\n")
    assert [(t.text, t.status, t.completed, t.line) for t in note.tasks] == [
        ("open", " ", False, 1),
        ("done", "x", True, 2),
        ("DONE", "X", True, 3),
        ("doing", "/", False, 4),
        ("dropped", "-", False, 5),
    ]
    assert [(i.text, i.task) for i in note.lists][-2:] == [("plain", False), ("link", False)]


# --- callouts ---------------------------------------------------------------------------
@pytest.mark.parametrize("alias, canonical", sorted(CALLOUT_ALIASES.items()))
def test_callout_aliases(alias, canonical):
    note = parse(f"> [!{alias.upper()}] T\n> body\n")
    assert [(c.type, c.raw_type) for c in note.callouts] == [(canonical, alias.upper())]


@pytest.mark.parametrize(
    "base", "note abstract info todo tip success question warning failure danger bug example quote".split()
)
def test_callout_base_types(base):
    assert parse(f"> [!{base}]\n> x\n").callouts[0].type == base


def test_callout_title_fold_nesting_and_custom_types():
    text = (
        "> [!tip]+ Custom *title*\n"
        "> body line\n"
        "\n"
        ">[!my-custom-type]- \n"
        ">collapsed\n"
        "\n"
        "> [!note] Outer\n"
        "> > [!todo] Inner\n"
        "> > inner body\n"
        ">\n"
        "> outer again\n"
    )
    callouts = parse(text).callouts
    got = [(c.type, c.title, c.fold, c.line, c.end_line, c.depth) for c in callouts]
    assert got == [
        ("tip", "Custom *title*", "+", 1, 2, 1),
        ("my-custom-type", "", "-", 4, 5, 1),
        ("note", "Outer", None, 7, 11, 1),
        ("todo", "Inner", None, 8, 9, 2),
    ]
    assert callouts[0].content == "body line"
    assert callouts[2].content == "> [!todo] Inner\n> inner body\n\nouter again"


def test_blockquote_without_marker_is_not_a_callout():
    assert parse("> just a quote [!note]\n").callouts == []


def test_callout_marker_is_not_a_link_and_title_links_count():
    note = parse("> [!info] See [[Title Link]]\n> - [[Body Link]]\n")
    assert [link.target for link in note.links] == ["Title Link", "Body Link"]


# --- headings, sections, dataview, body text -------------------------------------------
def test_headings_and_link_sections():
    note = parse("# Top\n[[A]]\n\nSetext\n---\n[[B]]\n\n### Deep #t\n[[C]]\n")
    assert [(h.text, h.level, h.line) for h in note.headings] == [
        ("Top", 1, 1),
        ("Setext", 2, 4),
        ("Deep #t", 3, 8),
    ]
    assert [(link.target, link.section) for link in note.links] == [("A", "Top"), ("B", "Setext"), ("C", "Deep #t")]


def test_dataview_blocks():
    note = parse("x\n\n```dataview\nTABLE year FROM #paper\nSORT year\n```\n\n```python\nprint(1)\n```\n")
    assert note.dataview_blocks == [{"query": "TABLE year FROM #paper\nSORT year\n", "line": 3, "end_line": 6}]
    assert "print(1)" in note.body_text and "TABLE" not in note.body_text


def test_line_numbers_count_frontmatter():
    note = parse("---\na: 1\nb: 2\n---\n\n[[L6]]\n\n> [!note]\n> [[L9]]\n")
    assert [link.line for link in note.links] == [6, 9]
    assert note.callouts[0].line == 8
    assert "a: 1" not in note.body_text


def test_slugify():
    assert slugify("Llama 2-Chat beats MPT-7B!") == "llama-2-chat-beats-mpt-7b"
    assert slugify("  Ünïcode_and   spaces ") == "ünïcode-and-spaces"
    assert slugify("***") == ""


def test_readable_text_of_links_is_what_obsidian_shows():
    note = parse("[[Note#A#B]] [[Note#^blk]] [[Note|Shown]] [[#Local]] ![[doc.pdf#page=3]]\n")
    assert note.body_text == "Note > A > B Note > ^blk Shown Local doc.pdf > page=3"


def test_footnotes_keep_link_lines():
    note = parse("# H\n\nText ^[inline [[X]] #t] more[^n]\n\n## Other\nlast [[Y]]\n\n[^n]: def [[Z]]\n")
    assert sorted((link.target, link.line, link.section) for link in note.links) == [
        ("X", 3, "H"),
        ("Y", 6, "Other"),
        ("Z", 8, "Other"),
    ]
    assert note.tags == ["t"] and "inline X" in note.body_text
