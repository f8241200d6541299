"""Bad input never stops parsing: every case becomes a Problem with a line."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.parse import parse_file, parse_note

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def severities(note):
    return [(p.line, p.severity) for p in note.problems]


def test_invalid_utf8_is_replaced_and_reported_with_its_line():
    note = parse_note(b"# Title\nfine\nbad \xff\xfe byte [[Link]]\nok\n\xc3(\n", "bad.md")
    assert [(p.line, p.severity) for p in note.problems] == [(3, "error"), (5, "error")]
    assert "invalid UTF-8" in note.problems[0].message and "0xff" in note.problems[0].message
    assert [link.target for link in note.links] == ["Link"] and "\ufffd" in note.body_text


def test_bom_and_crlf():
    data = "\ufeff---\r\ntitle: BOM note\r\n---\r\n# H\r\n[[A]]\r\n\r\n> [!faq]\r\n> q?\r\n".encode()
    note = parse_note(data, "bom.md")
    assert note.problems == []
    assert note.title == "BOM note" and note.frontmatter == {"title": "BOM note"}
    assert [(link.target, link.line) for link in note.links] == [("A", 5)]
    assert [(c.type, c.line) for c in note.callouts] == [("question", 7)]
    assert note.size == len(data)


def test_lone_cr_line_endings():
    note = parse_note(b"# H\r[[A]]\r", "cr.md")
    assert [(link.target, link.line) for link in note.links] == [("A", 2)]


def test_utf16_with_bom_is_read_with_a_warning():
    note = parse_note("# Wide\n[[A]]\n".encode("utf-16"), "wide.md")
    assert [link.target for link in note.links] == ["A"] and severities(note) == [(1, "warning")]


def test_binary_file_named_md():
    data = b"%PDF-1.7\n\x00\x01\x02\xff binary [[NotALink]]"
    note = parse_note(data, "papers/scan.md")
    assert [(p.line, p.severity) for p in note.problems] == [(1, "error")]
    assert "binary" in note.problems[0].message
    assert note.links == [] and note.title == "scan" and note.size == len(data)


def test_empty_and_whitespace_files():
    for data in (b"", b"\n\n  \n", b"---\n---\n"):
        note = parse_note(data, "empty.md")
        assert note.problems == [] and note.title == "empty" and note.links == []


def test_mojibake_warning_shows_the_repair():
    note = parse_note("ok\nIt was â€œquotedâ€\x9d and cafÃ© â€¦\n".encode(), "m.md")
    assert {p.line for p in note.problems} == {2}
    assert all(p.severity == "warning" for p in note.problems)
    messages = " ".join(p.message for p in note.problems)
    assert "“" in messages and "é" in messages and "…" in messages


def test_correct_accents_are_not_mojibake():
    assert parse_note("café naïve Ångström — “quotes” 日本語 ©\n", "ok.md").problems == []


def test_ten_megabyte_note_parses_in_seconds():
    block = "A line of a pasted log with a [[Link]] and a #tag, like many others in it.\n"
    data = (block * (10_000_000 // len(block) + 1)).encode()
    start = time.process_time()
    note = parse_note(data, "huge.md")
    elapsed = time.process_time() - start
    assert elapsed < 10, elapsed
    assert note.size == len(data) and len(note.links) > 1000
    [warning] = note.problems
    assert warning.severity == "warning" and "too large" in warning.message
    assert note.body_text.rstrip().endswith("[[Link]] and a #tag, like many others in it.")  # tail: plain text


def test_pathological_inputs_stay_fast():
    # each of these was quadratic once (a closer searched for from every opener)
    for unit in ("[[", "==a ", "(k:: ", "[k:: ", "a:: ", ">", "`"):
        start = time.process_time()
        parse_note(unit * 5000, "p.md")
        assert time.process_time() - start < 2, unit


def test_parse_file_reads_and_stats(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "Note.md"
    path.write_bytes(b"# Note\n[[Other]]\n")
    note = parse_file(tmp_path, "sub/Note.md")
    assert note.path == "sub/Note.md" and note.title == "Note" and note.mtime == path.stat().st_mtime
    missing = parse_file(tmp_path, "gone.md")
    assert missing.problems[0].severity == "error" and "cannot read" in missing.problems[0].message


@SETTINGS
@given(st.text())
def test_any_text_parses(text):
    note = parse_note(text, "h.md")
    assert note.path == "h.md"
    assert all(p.severity in ("error", "warning", "info") and p.line >= 1 for p in note.problems)
    assert not any(p.message.startswith("parser failed") for p in note.problems), note.problems


@SETTINGS
@given(st.binary())
def test_any_bytes_parse(data):
    note = parse_note(data, "h.md")
    assert note.size == len(data)
    assert not any(p.message.startswith("parser failed") for p in note.problems), note.problems


MARKDOWNISH = st.lists(
    st.sampled_from(
        [
            "[[",
            "]]",
            "![[",
            "|",
            "\\|",
            "#",
            "#tag",
            "^id",
            " ^b-1",
            "%%",
            "==",
            "::",
            "key",
            "(",
            ")",
            "[",
            "]",
            "> ",
            ">",
            "[!note]",
            "[!faq]-",
            "- ",
            "- [ ] ",
            "1. ",
            "```",
            "`",
            "$",
            "$$",
            "---",
            "\n",
            "\n\n",
            " ",
            "a",
            "é",
            "â€¦",
            "*",
            "_",
            "<",
            ">",
            "&",
            "[^1]",
            "[^1]: ",
            "|---|",
            "\t",
            "    ",
            "\r\n",
            "\x00",
        ]
    ),
    max_size=60,
).map("".join)


@SETTINGS
@given(MARKDOWNISH)
def test_obsidian_shaped_text_parses(text):
    note = parse_note(text, "h.md")
    assert not any(p.message.startswith("parser failed") for p in note.problems), note.problems
    lines = text.replace("\r\n", "\n").count("\n") + 1
    assert all(1 <= link.line <= lines for link in note.links)
    assert all(c.line <= c.end_line for c in note.callouts)
