"""The paper model: title, authors, year, DOI, citekey, aliases, questions, highlights,
references and claims; frontmatter in YAML and JSON with every Obsidian property type."""

from __future__ import annotations

import json

import pytest

from kb.model import Note
from kb.parse import is_citekey, parse_note


def parse(text: str, path: str = "papers/Some Paper.md") -> Note:
    return parse_note(text, path)


def errors(note: Note) -> list[str]:
    return [p.message for p in note.problems if p.severity == "error"]


# --- title ------------------------------------------------------------------------------
def test_title_from_name_then_title_then_h1_then_file_name():
    assert parse("---\nname: From Name\ntitle: From Title\n---\n# H1\n").title == "From Name"
    assert parse("---\ntitle: From Title\n---\n# H1\n").title == "From Title"
    assert parse("## H2\n# The *H1* [[x]]\n").title == "The H1 x"
    assert parse("no heading\n", "dir/File Name.md").title == "File Name"


# --- authors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        ("Hugo Touvron, Louis Martin, Kevin Stone", ["Hugo Touvron", "Louis Martin", "Kevin Stone"]),
        ("Ann Lee and Bo Chen", ["Ann Lee", "Bo Chen"]),
        ("Ann Lee, Bo Chen, and Cy Dee", ["Ann Lee", "Bo Chen", "Cy Dee"]),
        ("Lee, Ann; Chen, Bo", ["Lee, Ann", "Chen, Bo"]),
        ("Lee, Ann and Chen, Bo", ["Lee, Ann", "Chen, Bo"]),
        ("[Ann Lee, '[[Bo Chen]]']", ["Ann Lee", "Bo Chen"]),
        ("Solo Author", ["Solo Author"]),
    ],
)
def test_authors(value, expected):
    assert parse(f"---\nauthors: {value}\n---\n").authors == expected


def test_authors_csl_list_and_author_key():
    note = parse("---\nauthor:\n  - {given: Ada, family: Lovelace}\n  - Alan Turing\n---\n")
    assert note.authors == ["Ada Lovelace", "Alan Turing"]


# --- year, DOI, citekey, aliases -------------------------------------------------------
@pytest.mark.parametrize(
    "fm, year",
    [
        ("year: 2023", 2023),
        ("year: '2017'", 2017),
        ("date: 2022-05-27", 2022),
        ("published: May 2019", 2019),
        ("", None),
    ],
)
def test_year(fm, year):
    assert parse(f"---\n{fm}\n---\n").year == year


@pytest.mark.parametrize(
    "fm", ["DOI: 10.1/abc", "doi: 10.1/abc", "Doi: https://doi.org/10.1/abc", "doi: 'doi:10.1/abc'"]
)
def test_doi_any_case(fm):
    assert parse(f"---\n{fm}\n---\n").doi == "10.1/abc"


def test_citekey_property_wins_over_alias():
    note = parse(
        "---\nCiteKey: '@vaswaniAttentionAllYou2017'\naliases: [daoFlashAttentionFastMemoryEfficient2022]\n---\n"
    )
    assert note.citekey == "vaswaniAttentionAllYou2017"


def test_citekey_from_first_bibtex_shaped_alias():
    note = parse("---\naliases:\n  - Llama 2\n  - touvronLlamaOpenFoundation2023\n  - otherKey2020\n---\n")
    assert note.citekey == "touvronLlamaOpenFoundation2023"
    assert note.aliases == ["Llama 2", "touvronLlamaOpenFoundation2023", "otherKey2020"]


def test_no_citekey_and_alias_string():
    note = parse("---\nalias: Short Name, Other\n---\n")
    assert note.aliases == ["Short Name", "Other"]
    assert note.citekey is None
    assert parse("---\naliases: ['Smith, Jones 2020', x]\n---\n").aliases == ["Smith, Jones 2020", "x"]


@pytest.mark.parametrize(
    "key, ok",
    [
        ("touvronLlamaOpenFoundation2023", True),
        ("daoFlashAttentionFastMemoryEfficient2022", True),
        ("vaswaniAttentionAllYou2017a", True),
        ("Llama 2", False),
        ("touvron2023", False),
        ("TouvronLlama2023", False),
    ],
)
def test_is_citekey(key, ok):
    assert is_citekey(key) is ok


# --- property types, JSON frontmatter, broken frontmatter ------------------------------
def test_every_obsidian_property_type():
    note = parse(
        "---\n"
        "text: hello\n"
        "list: [a, b]\n"
        "number: 3.5\n"
        "integer: 7\n"
        "checkbox: true\n"
        "date: 2023-07-18\n"
        "datetime: 2023-07-18T10:30:00\n"
        "empty:\n"
        "nested: {a: [1, 2]}\n"
        "---\n"
    )
    assert note.frontmatter == {
        "text": "hello",
        "list": ["a", "b"],
        "number": 3.5,
        "integer": 7,
        "checkbox": True,
        "date": "2023-07-18",
        "datetime": "2023-07-18T10:30:00",
        "empty": None,
        "nested": {"a": [1, 2]},
    }
    assert note.frontmatter_format == "yaml"
    json.dumps(note.to_dict())  # plain JSON data


def test_json_frontmatter():
    note = parse('---\n{"title": "JSON note", "tags": ["x"], "year": 2020}\n---\n[[Link]]\n')
    assert note.frontmatter_format == "json"
    assert (note.title, note.tags, note.year) == ("JSON note", ["x"], 2020)
    assert note.links[0].line == 4


def test_broken_yaml_reports_the_file_line_and_body_still_parses():
    note = parse("---\ntitle: ok\ntags: [a, b\nyear: 2020\n---\n# Body\n[[Still Parsed]] #tag\n")
    assert note.frontmatter == {}
    [problem] = [p for p in note.problems if p.severity == "error"]
    assert problem.line in (4, 5) and "YAML" in problem.message
    assert [link.target for link in note.links] == ["Still Parsed"]
    assert note.tags == ["tag"] and note.title == "Body"


def test_frontmatter_that_is_not_a_mapping():
    note = parse("---\n- a\n- b\n---\nbody\n")
    assert note.frontmatter == {} and "not a set of properties" in errors(note)[0]


def test_unclosed_frontmatter_is_body_text():
    note = parse("---\ntitle: x\n[[Link]]\n")
    assert note.frontmatter == {} and note.frontmatter_format is None
    assert [link.line for link in note.links] == [3]


def test_yaml_alias_bomb_is_contained():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    note = parse(f"---\n{bomb}---\nbody [[x]]\n")
    assert "too large" in errors(note)[0]
    assert [link.target for link in note.links] == ["x"]


def test_yaml_python_tags_are_refused():
    note = parse("---\nx: !!python/object/apply:os.system ['echo hi']\n---\n")
    assert note.frontmatter == {} and errors(note)


# --- questions --------------------------------------------------------------------------
def test_questions_answers_and_boundaries():
    text = (
        "> [!question] Title part\n"  # 1
        "> What is *it*?\n"  # 2
        "\n"
        "It is this.\n"  # 4: answer
        "More answer.\n"
        "\n"
        "> [!faq]\n"  # 7
        "> Unanswered?\n"
        "\n"
        "   \n"
        "> [!note] Next callout\n"  # 11
        "\n"
        "> [!help]- Also a question\n"
        "\n"
        "----\n"
        "\n"
        "## Heading ends the answer\n"
        "Not an answer.\n"
    )
    questions = parse(text).questions
    assert [(q.text, q.answer, q.answered, q.line) for q in questions] == [
        ("Title part\nWhat is it?", "It is this.\nMore answer.", True, 1),
        ("Unanswered?", "", False, 7),
        ("Also a question", "", False, 13),
    ]


# --- highlights -------------------------------------------------------------------------
def test_highlights_from_callout_titled_highlights():
    text = (
        ">[!note] Highlights:\n"
        ">- First point [[Ref]]\n"
        ">-\n"
        ">- Second *point*\n"
        ">   - nested detail\n"
        "\n"
        "> [!tip] Not highlights\n"
        "> - ignored\n"
        "\n"
        "> [!summary] highlights\n"
        "> - Third\n"
    )
    assert parse(text).highlights == ["First point Ref", "Second point", "Third"]


# --- references -------------------------------------------------------------------------
def test_reference_section_links_are_citations():
    text = (
        "# Body\n[[Mention]]\n"
        "## References and Related Notes\n"
        "- [[CitedA]]\n"
        "### Sub heading\n"
        "- [[CitedB]]\n"
        "## Next Section\n"
        "[[Mention2]]\n"
        "# reference & related notes:\n"
        "[[CitedC]]\n"
    )
    got = [(link.target, link.is_citation) for link in parse(text).links]
    assert got == [("Mention", False), ("CitedA", True), ("CitedB", True), ("Mention2", False), ("CitedC", True)]


# --- claims -----------------------------------------------------------------------------
def test_claims_from_callouts():
    text = (
        "> [!claim] RoPE keeps relative positions\n"  # 1
        "> experiment:: llama2.rope\n"
        "> experiment:: llama2.rope_extrapolation, llama2.rope_cache\n"
        "^rope-claim\n"
        "\n"
        "> [!claim] GQA saves memory\n"  # 6
        "> experiments:: `llama2.gqa`\n"
        "\n"
        "^gqa\n"
        "\n"
        "> [!claim] Statement without id\n"  # 11
        "\n"
        "> [!CLAIM]\n"  # 13
        "> Statement in the body\n"
        "> experiment:: x.y\n"
    )
    note = parse(text)
    got = [(c.id, c.statement, c.experiments, c.line, c.source) for c in note.claims]
    assert got == [
        (
            "rope-claim",
            "RoPE keeps relative positions",
            ["llama2.rope", "llama2.rope_extrapolation", "llama2.rope_cache"],
            1,
            "callout",
        ),
        ("gqa", "GQA saves memory", ["llama2.gqa"], 6, "callout"),
        ("statement-without-id", "Statement without id", [], 11, "callout"),
        ("statement-in-the-body", "Statement in the body", ["x.y"], 13, "callout"),
    ]
    assert not errors(note)


def test_claims_from_frontmatter_and_duplicate_ids():
    text = (
        "---\n"
        "title: t\n"
        "claims:\n"
        "  - id: speedup\n"
        "    statement: It is faster\n"
        "    experiment: [fa.speed, fa.memory]\n"
        "  - statement: Exact attention\n"
        "    experiment: fa.exact\n"
        "---\n"
        "> [!claim] Duplicate\n"
        "> experiment:: z\n"
        "^speedup\n"
    )
    note = parse(text)
    got = [(c.id, c.experiments, c.source, c.line) for c in note.claims]
    assert got == [
        ("speedup", ["z"], "callout", 10),
        ("speedup", ["fa.speed", "fa.memory"], "frontmatter", 4),
        ("exact-attention", ["fa.exact"], "frontmatter", 3),
    ]
    [err] = [p for p in note.problems if p.severity == "error"]
    assert "duplicate claim id 'speedup' (first on line 10)" in err.message and err.line == 4


def test_footnote_links_keep_their_section():
    text = (
        "# Body\nText[^1] and [[A]].\n\n"
        "## References and Related Notes\n- [[B]]\n\n[^1]: See [[C]].\n\n"
        "# After\n[[D]]\n"
    )
    got = [(link.target, link.section, link.is_citation, link.line) for link in parse(text).links]
    assert sorted(got, key=lambda g: g[3]) == [
        ("A", "Body", False, 2),
        ("B", "References and Related Notes", True, 5),
        ("C", "References and Related Notes", True, 7),
        ("D", "After", False, 10),
    ]
