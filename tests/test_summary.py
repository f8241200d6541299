"""Reading summaries from hand-built notes (the parser is tested elsewhere)."""

from __future__ import annotations

from kb.model import Callout, Claim, Link, Note, Question
from kb.summary import abstract_of, render_summary


def _notes():
    a = Note(
        path="A.md",
        title="Paper A | with a pipe",
        year=2017,
        authors=["Ann One", "Bob Two", "Cy Three", "Di Four"],
        citekey="oneA2017",
        doi="10.1/abc",
        callouts=[Callout("info", "info", "", None, 1, 3, content="- **Abstract:** We study A.\n- **Sources**: x")],
        highlights=["A is fast"],
        claims=[Claim("a-fast", "A is fast", ["exp/fast"], 10), Claim("a-small", "A is small", ["exp/small"], 12)],
        questions=[Question("Why A?", "Because.", True, 20), Question("What next?", "", False, 25)],
        links=[Link("@twoB2022", "wikilink", 30, is_citation=True, resolved="B.md"),
               Link("ghostKey2020", "wikilink", 31, is_citation=True)],
    )
    b = Note(path="B.md", title="Paper B", year=2022, authors=["Eve Five"])
    return [b, a]


def test_summary_lists_papers_claims_statuses_and_questions():
    statuses = {"a-fast": {"status": "reproduced", "run_id": "r1", "preset": "full"},
                "a-small": {"status": "contradicted", "run_id": "r2", "preset": "smoke"}}
    text = render_summary(_notes(), statuses, vault_name="demo", generated="2026-01-01")
    assert text.startswith("# Reading summary: demo")
    assert "2 papers, 2 claims: 1 reproduced, 1 contradicted. 1 open question." in text
    # papers in year order, the pipe in the title escaped inside the table
    assert text.index("## Paper A") < text.index("## Paper B")
    assert "| Paper A \\| with a pipe | 2017 | 2 | 1 | 0 | 1 | 0 | 1 |" in text
    assert "> We study A." in text
    assert "Ann One, Bob Two, Cy Three et al. (4 authors)" in text
    assert "✅ reproduced (run r1, full)" in text and "❌ contradicted (run r2, smoke)" in text
    assert "- **What next?** _(open)_" in text
    assert "- ghostKey2020 _(no note yet)_" in text
    # B is cited by A
    b_part = text[text.index("## Paper B"):]
    assert "### Cited by" in b_part and "- Paper A | with a pipe" in b_part


def test_claims_without_runs_are_unverified():
    text = render_summary(_notes(), {}, generated="x")
    assert "2 unverified" in text and text.count("⬜ unverified") == 2


def test_abstract_falls_back_to_frontmatter():
    assert abstract_of(Note(path="x.md", frontmatter={"abstract": " Short. "})) == "Short."
    assert abstract_of(Note(path="x.md")) == ""


def test_html_in_notes_arrives_as_text():
    """Notes are untrusted: a tag in a title or claim must not become live HTML."""
    evil = Note(path="E.md", title="Evil <script>alert(1)</script>",
                claims=[Claim("e", "Fast <img src=x onerror=alert(1)> and `a<b` in code", ["exp/x"], 3)],
                questions=[Question("Why <b>?", "", False, 5)])
    text = render_summary([evil], {}, generated="x")
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "## Evil &lt;script>alert(1)&lt;/script>" in text
    assert "`a<b` in code" in text  # code spans keep their text
    assert "1 paper, 1 claim: 1 unverified. 1 open question." in text
