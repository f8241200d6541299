"""The one citation rule (kb.citing): which links of a note are citations."""

from __future__ import annotations

import pytest

from kb.citing import DEFAULT_CITATION_RULE, CitationRule, load_citation_rule
from kb.errors import PaperkbError
from kb.parse import parse_note


@pytest.mark.parametrize(
    "heading",
    [
        "References",
        "Reference and Related Notes",
        "reference & related notes:",
        "Bibliography",
        "Related Work",
        "Related works",
        "7. References",
        "A.1 Cites",
        "Citations",
        "Works Cited",
        "Cite",
    ],
)
def test_default_rule_cites_under_reference_like_headings(heading):
    assert DEFAULT_CITATION_RULE.is_citing_heading(heading)


@pytest.mark.parametrize(
    "heading",
    [
        "Questions Related to Me",
        "Notes that build on this paper",
        "Relatedness of tasks",
        "Referenced code",
        "My references",
        "Claims",
        "",
    ],
)
def test_default_rule_does_not_cite_elsewhere(heading):
    assert not DEFAULT_CITATION_RULE.is_citing_heading(heading)


def test_parse_marks_links_under_the_rule():
    text = "# Body\n[[A]]\n## Related Work\n- [[B]]\n### Sub\n- [[C]]\n## Questions Related to Me\n[[D]]\n"
    got = [(link.target, link.is_citation) for link in parse_note(text, "n.md").links]
    assert got == [("A", False), ("B", True), ("C", True), ("D", False)]
    everywhere = CitationRule(anywhere=True)
    assert all(link.is_citation for link in parse_note(text, "n.md", citations=everywhere).links)
    mine = CitationRule(headings=("Sources",))
    got = [
        (link.target, link.is_citation)
        for link in parse_note(text + "# Sources\n[[E]]\n", "n.md", citations=mine).links
    ]
    assert got == [("A", False), ("B", False), ("C", False), ("D", False), ("E", True)]
    # a note without headings: only `anywhere` makes its links citations
    assert not parse_note("[[X]]", "n.md").links[0].is_citation
    assert parse_note("[[X]]", "n.md", citations=everywhere).links[0].is_citation


def test_rule_file(tmp_path):
    assert load_citation_rule(tmp_path) is DEFAULT_CITATION_RULE
    cfg = tmp_path / ".paperkb" / "papers.yaml"
    cfg.parent.mkdir()
    cfg.write_text("tags: [paper]\n", encoding="utf-8")
    assert load_citation_rule(tmp_path) == DEFAULT_CITATION_RULE
    cfg.write_text("citations:\n  headings: [Sources, Further reading]\n", encoding="utf-8")
    rule = load_citation_rule(tmp_path)
    assert rule.is_citing_heading("Further  Reading") and not rule.is_citing_heading("References")
    assert rule.fingerprint() != DEFAULT_CITATION_RULE.fingerprint()
    for bad, why in [
        ("citations: yes\n", "'citations' should be a mapping"),
        ("citations:\n  anywhere: maybe\n", "'citations.anywhere' should be true or false"),
        ("citations:\n  headings: {a: 1}\n", "'citations.headings' should be a list"),
        ("citations:\n  heading: [a]\n", "unknown key 'citations.heading'"),
        ("citations: [\n", "not valid YAML"),
        ("citations:\n  headings: ['(a+)+$']\n", None),  # text, not a regex: accepted and harmless
    ]:
        cfg.write_text(bad, encoding="utf-8")
        if why is None:
            assert not load_citation_rule(tmp_path).is_citing_heading("a" * 5000 + "!")
            continue
        with pytest.raises(PaperkbError, match=why):
            load_citation_rule(tmp_path)
