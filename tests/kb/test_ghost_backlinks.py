"""A work linked by several notes but with no note of its own (a ghost) has backlinks;
`links` and `show` say "no note yet" rather than "no note named"."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.vault import Vault

runner = CliRunner()

FILES = {
    "LoRA.md": "---\ntags: [paper]\n---\n# LoRA\nBuilds on [[Attention Is All You Need]].\n"
    "## References\n- [[@vaswaniAttentionAllYou2017]]\n- [[Attention Is All You Need]]\n",
    "RoFormer.md": "---\ntags: [paper]\n---\n# RoFormer\n## References\n- [[attention is all you need|Vaswani]]\n",
    "Chinchilla.md": "---\ntags: [paper]\n---\n# Chinchilla\n## References\n- [[Attention Is All You Need.md]]\n",
    "Journal.md": "# Journal\nNothing cited here.\n",
}


@pytest.fixture
def vault(tmp_path):
    for rel, text in FILES.items():
        (tmp_path / rel).write_text(text, encoding="utf-8")
    (tmp_path / ".obsidian").mkdir()
    return tmp_path


def run(vault, *args):
    return runner.invoke(app, ["--vault", str(vault), *args])


def test_library_lists_the_ghosts_backlinks(vault):
    rows = Vault(vault).ghost_backlinks("Attention Is All You Need")
    assert [(r.src, r.line, r.edge) for r in rows] == [
        ("Chinchilla.md", 6, "cites"), ("LoRA.md", 5, "mentions"), ("LoRA.md", 8, "cites"), ("RoFormer.md", 6, "cites")]
    assert [r.src for r in Vault(vault).ghost_backlinks("@vaswaniAttentionAllYou2017")] == ["LoRA.md"]
    assert Vault(vault).ghost_backlinks("Journal") == []  # a note, not a ghost: nothing unresolved links to it


def test_backlinks_of_a_ghost(vault):
    result = run(vault, "backlinks", "Attention Is All You Need", "--format", "tsv", "--no-header")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["Chinchilla.md", "6", "cites"], ["LoRA.md", "5", "mentions"], ["LoRA.md", "8", "cites"],
        ["RoFormer.md", "6", "cites"]]
    assert "'Attention Is All You Need': no note yet; 3 notes link to it" in result.stderr
    result = run(vault, "backlinks", "Attention Is All You Need", "--format", "json")
    assert {row["source"] for row in json.loads(result.stdout)} == {"Chinchilla.md", "LoRA.md", "RoFormer.md"}


def test_links_and_show_of_a_ghost_say_no_note_yet(vault):
    result = run(vault, "links", "Attention Is All You Need", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "no note yet; 3 notes link to it (paperkb backlinks 'Attention Is All You Need')" in result.stderr
    result = run(vault, "show", "Attention Is All You Need")
    assert result.exit_code == 0
    assert "no note yet" in result.stdout and "3 notes link here" in result.stdout
    assert "RoFormer.md:6  cites" in result.stdout
    data = json.loads(run(vault, "show", "vaswaniAttentionAllYou2017", "--format", "json").stdout)
    assert data == {"name": "vaswaniAttentionAllYou2017", "note": None, "ghost": True, "backlinks": 1,
                    "linked_from": ["LoRA.md"]}


def test_a_name_nothing_links_to_is_still_not_found(vault):
    for command in ("show", "links", "backlinks"):
        result = run(vault, command, "Neither a note nor a ghost")
        assert result.exit_code == 1 and "no note named 'Neither a note nor a ghost'" in result.stderr
