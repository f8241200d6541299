"""A vault with every kind of bad input still indexes, and says what is wrong where."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.vault import Vault

GOOD = "---\naliases: [goodKey]\n---\n# Good\nlinks to [[Cycle A]]\n"
BAD_FILES: dict[str, bytes] = {
    "bad yaml.md": b"---\ntitle: [unclosed\nyear: 2020\n---\n# Body still parsed\n[[Good]]\n",
    "bad utf8.md": b"# Latin-1\ncaf\xe9 and \xff\xfe\n[[Good]]\n",
    "bom.md": "\ufeff---\ntitle: With BOM\n---\n# BOM\n[[Good]]\n".encode("utf-8"),
    "crlf.md": b"---\r\ntitle: CRLF note\r\n---\r\n# CRLF\r\n\r\n> [!question] Why?\r\n\r\n[[Good]]\r\n",
    "binary.md": bytes(range(256)) * 8 + b"\x00\x00\x89PNG",
    "empty.md": b"",
    "Cycle A.md": b"# A\n[[Cycle B]]\n",
    "Cycle B.md": b"# B\n[[Cycle A]] [[Cycle B]]\n",
    "mojibake.md": "# M\nwait\u00e2\u20ac\u00a6 done\n".encode("utf-8"),
}


def make(root, *, big: bool):
    (root / "Good.md").write_text(GOOD, encoding="utf-8")
    for name, data in BAD_FILES.items():
        (root / name).write_bytes(data)
    if big:
        line = b"Filler text with a [[Good]] link and a #tag in it, over and over.\n"
        (root / "big.md").write_bytes(b"# Big\n" + line * (10_000_000 // len(line)))
    return root


def by_path(problems):
    out: dict[str, list] = {}
    for p in problems:
        out.setdefault(p.path, []).append(p)
    return out


def check_common(v: Vault):
    paths = set(v.paths())
    assert {"Good.md", *BAD_FILES} <= paths  # every file is a note, even the broken ones
    problems = by_path(v.problems())
    for p in v.problems():
        assert p.line >= 1 and p.severity in ("error", "warning", "info")
    assert "bad yaml.md" in problems and problems["bad yaml.md"][0].line in (1, 2, 3, 4)
    bad_yaml = v.note("bad yaml.md")
    assert [l.resolved for l in bad_yaml.links] == ["Good.md"]  # body parsed despite broken frontmatter
    assert "bad utf8.md" in problems
    assert [l.resolved for l in v.note("bad utf8.md").links] == ["Good.md"]
    assert v.note("With BOM").path == "bom.md"
    crlf = v.note("CRLF note")
    assert crlf.path == "crlf.md" and crlf.questions and crlf.questions[0].line == 6
    assert [l.resolved for l in crlf.links] == ["Good.md"] and crlf.links[0].line == 8
    assert "binary.md" in problems
    assert v.note("empty.md").links == []
    assert [l.resolved for l in v.note("Cycle B").links] == ["Cycle A.md", "Cycle B.md"]
    assert any("…" in p.message and p.line == 2 for p in problems["mojibake.md"])
    assert v.note("goodKey").path == "Good.md"


def test_bad_inputs_small(tmp_path):
    v = Vault(make(tmp_path, big=False))
    stats = v.index()
    assert stats.notes == len(BAD_FILES) + 1
    check_common(v)


@pytest.mark.slow
def test_bad_inputs_with_a_10mb_note(tmp_path):
    v = Vault(make(tmp_path, big=True))
    v.index()
    check_common(v)
    big = v.note("big.md")
    assert big.size > 9_000_000 and big.links and big.links[0].resolved == "Good.md"
    # the graph copes with cycles and self-links
    from kb import graph as G

    g = v.graph()
    assert G.citation_path(g, "Cycle A.md", "Cycle B.md")[0] == ["Cycle A.md", "Cycle B.md"]


def test_check_reports_every_problem_with_path_and_line(tmp_path):
    make(tmp_path, big=False)
    result = CliRunner().invoke(app, ["--vault", str(tmp_path), "check", "--no-experiments"])
    lines = [line for line in result.output.splitlines() if ": " in line and not line.startswith(" ")]
    assert any(line.startswith("bad yaml.md:") for line in lines)
    assert any(line.startswith("binary.md:1: ") for line in lines)
    for line in lines:
        path, lineno, rest = line.split(":", 2)
        assert lineno.isdigit() and rest.split(":")[0].strip() in ("error", "warning", "info")


def test_missing_vault_one_line(tmp_path):
    result = CliRunner().invoke(app, ["--vault", str(tmp_path / "absent"), "index"])
    assert result.exit_code == 2  # a usage error (issue 23)
    assert result.output.count("\n") == 1 and result.output.startswith("error: vault folder not found")
