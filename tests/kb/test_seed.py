"""The user's real note (tests/conftest.py's ``seed_text``) parses exactly."""

from __future__ import annotations

import pytest

from kb.parse import parse_note


@pytest.fixture
def seed(seed_text):
    return parse_note(seed_text.encode("utf-8"), "touvronLlamaOpenFoundation2023.md")


def test_seed_paper_fields(seed):
    assert seed.title == "Llama 2: Open Foundation and Fine-Tuned Chat Models"
    assert len(seed.authors) == 68
    assert seed.authors[0] == "Hugo Touvron" and seed.authors[-1] == "Thomas Scialom"
    assert "Marie-Anne Lachaux" in seed.authors and "Punit Singh Koura" in seed.authors
    assert seed.citekey == "touvronLlamaOpenFoundation2023"
    assert seed.aliases == ["touvronLlamaOpenFoundation2023"]
    assert seed.year == 2023
    assert seed.doi == "10.48550/arXiv.2307.09288"
    assert seed.tags == [
        "paper",
        "deep_learning/models",
        "deep_learning/generative_models",
        "Computer-Science---Artificial-Intelligence",
        "Computer-Science---Computation-and-Language",
    ]
    assert seed.frontmatter["type"] == "preprint" and seed.frontmatter["date of note"] is None


def test_seed_callouts_and_questions(seed):
    assert [c.type for c in seed.callouts] == [
        "info", "note", "question", "question", "question", "todo", "question", "question",
    ]  # fmt: skip
    assert [c.line for c in seed.callouts] == [19, 28, 40, 45, 51, 57, 65, 70]
    assert seed.callouts[1].title == "Highlights:"
    assert seed.highlights == []  # the template's three empty items
    assert len(seed.questions) == 5
    assert all(not q.answered and q.answer == "" for q in seed.questions)
    assert seed.questions[0].text == "What are the primary assumptions behind this paper?"
    assert [h.text for h in seed.headings][-1] == "Reference and Related Notes"


def test_seed_links(seed):
    got = [(link.target, link.kind, link.line, link.is_citation) for link in seed.links]
    assert got == [
        ("@touvronLlamaOpenFoundation2023", "wikilink", 23, False),
        ("daoFlashAttentionFastMemoryEfficient2022", "wikilink", 80, True),
        ("vaswaniAttentionAllYou2017", "wikilink", 81, True),
    ]
    assert all(link.resolved is None for link in seed.links)


def test_seed_problems_only_the_mojibake(seed):
    [problem] = seed.problems
    assert (problem.line, problem.severity) == (22, "warning")
    assert "â€¦" in problem.message and "…" in problem.message


def test_seed_body_text(seed):
    assert "In this work, we develop and release Llama 2" in seed.body_text
    assert "Hugo Touvron, Louis Martin" not in seed.body_text  # frontmatter is not body


def test_seed_size_and_round_trip(seed, seed_text):
    from kb.model import Note

    assert seed.size == len(seed_text.encode("utf-8"))
    assert Note.from_dict(seed.to_dict()) == seed
