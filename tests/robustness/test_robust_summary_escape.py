"""Issue 23, item 5: no text of a note becomes HTML in the Markdown summary, checked the
way a reader meets it: rendered by a CommonMark renderer with raw HTML ON (markdown-it-py,
``commonmark`` preset, ``html=True``), for hand-written bypasses and generated text."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from kb.model import Claim, Note, Question
from kb.publish.summary import render_summary

RENDER = MarkdownIt("commonmark", {"html": True}).enable("table").render
MARK = "zq"  # an attribute or tag name only the attacks below use


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.found.append((tag, attrs))


def live_html(markdown: str) -> list[str]:
    """The elements or attributes a note planted in the rendered HTML."""
    parser = _Tags()
    parser.feed(RENDER(markdown))
    bad = []
    for tag, attrs in parser.found:
        if tag in ("script", "img", "iframe", "svg", "b", "style", "object") or MARK in tag:
            bad.append(tag)
        bad.extend(f"{tag}[{name}]" for name, _ in attrs if name.startswith("on") or MARK in name)
        bad.extend(f"{tag}[{name}={v}]" for name, v in attrs if v and v.strip().lower().startswith("javascript"))
    return bad


def summary_of(*texts: str) -> str:
    return render_summary([_note(k, t) for k, t in enumerate(texts)], {}, generated="x", pictures=False, bibtex=False)


def _note(k: int, text: str) -> Note:
    return Note(
        path=f"E{k}.md",
        title=f"T {text} end",
        tags=["paper"],
        authors=[f"A {text}"],
        year=2020,
        frontmatter={"abstract": f"Abs {text}"},
        citekey="k2020",
        claims=[Claim("c1", f"Claim {text}", ["exp/x"], 3)],
        questions=[Question(f"Q {text}?", "", False, 5), Question(f"Done {text}?", f"yes {text}", True, 6)],
    )


ATTACKS = [
    "`<img src=x onerror=alert(1)>`",
    "`` `<img src=x onerror=alert(1)>` ``",
    "`<img src=x onerror=alert(1)>``",
    "``<img src=x onerror=alert(1)>`",
    "\\`<img src=x onerror=alert(1)>\\`",
    "\\\\`<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "&lt;script&gt; <b>bold</b>",
    "<zq onmouseover=alert(1)>x</zq>",
    "[x](javascript:alert(1)) <javascript:alert(1)>",
    "| cell `| <img src=x onerror=alert(1)> |` |",
    "` ` ` <img src=x onerror=alert(1)> ` ` `",
    "<!-- --><img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_hand_written_bypasses_stay_text(text):
    markdown = summary_of(text)
    assert live_html(markdown) == []
    assert "onerror" not in RENDER(markdown).replace("onerror=alert(1)&gt;", "")  # only ever as text


def test_the_template_still_renders_its_own_markup():
    html = RENDER(summary_of("plain"))
    assert "<table>" in html and "<code>k2020</code>" in html and "<code>#paper</code>" in html
    assert "<h2>T plain end (2020)</h2>" in html


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(alphabet="`<>\\|*_[]()!&#;=/ xaimgsrconerzq\n", max_size=40), min_size=1, max_size=8))
def test_generated_text_never_becomes_html(texts):
    assert live_html(summary_of(*texts)) == []
