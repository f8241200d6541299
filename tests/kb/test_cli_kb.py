"""The knowledge-base commands through typer's test runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()

FILES = {
    "papers/Llama 2.md": (
        "---\naliases: [touvronLlama2023]\ntags: [paper, llm]\nyear: 2023\n---\n# Llama 2\n"
        "Cite Key: [[@touvronLlama2023]]\n\n> [!question] Why open?\n> asked\n\nBecause.\n\n"
        "> [!question] Open one?\n\n> [!claim] GQA works\n> experiment:: llama/nope\n^gqa\n\n"
        "## Reference and Related Notes\n- [[daoFlash2022]]\n- [[vaswani2017]]\n"
    ),
    "papers/Flash.md": "---\naliases: [daoFlash2022]\ntags: [paper]\n---\n# Flash \"Attention\"\nsee [[Llama 2]]\n",
    "Lonely.md": "# Lonely\n",
}


@pytest.fixture
def vault(tmp_path):
    for rel, text in FILES.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return tmp_path


def run(vault, *args):
    return runner.invoke(app, ["--vault", str(vault), *args])


def test_every_command_has_an_example():
    for name in ("index", "show", "links", "backlinks", "path", "tags", "questions", "graph", "check", "export"):
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example:" in result.output, name


def test_index_and_show(vault):
    result = run(vault, "index")
    assert result.exit_code == 0 and "3 notes" in result.output
    result = run(vault, "show", "touvronllama2023")
    assert result.exit_code == 0
    assert result.output.startswith("Llama 2\n") and "papers/Llama 2.md" in result.output
    assert "papers/Llama 2.md:9  [x]" in result.output and "[ ] Open one?" in result.output
    data = json.loads(run(vault, "show", "Flash", "--format", "json").output)
    assert data["path"] == "papers/Flash.md" and data["backlinks"] == 1


def test_show_unknown_note_is_one_line_error(vault):
    result = run(vault, "show", "Flsh")
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and result.output.startswith("error: no note named 'Flsh'")
    assert "Flash" in result.output


def test_missing_vault_is_one_line_error(tmp_path):
    result = run(tmp_path / "nope", "show", "x")
    assert result.exit_code == 2 and result.output.startswith("error: vault folder not found")


def test_links_backlinks(vault):
    result = run(vault, "links", "Llama 2")
    assert result.exit_code == 0 and "cites" in result.output and "(unresolved)" in result.output
    rows = json.loads(run(vault, "links", "Llama 2", "-f", "json").output)
    assert [r["resolved"] for r in rows] == ["papers/Llama 2.md", "papers/Flash.md", None]
    back = json.loads(run(vault, "backlinks", "daoFlash2022", "--format", "json").output)
    assert [(b["source"], b["edge"]) for b in back] == [("papers/Llama 2.md", "cites")]
    assert run(vault, "backlinks", "Lonely").exit_code == 0


def test_path(vault):
    data = json.loads(run(vault, "path", "Flash", "Llama 2", "-f", "json").output)
    assert data["path"] == ["papers/Flash.md", "papers/Llama 2.md"] and data["directed"]
    result = run(vault, "path", "Flash", "Lonely")
    assert result.exit_code == 1 and "no path" in result.output


def test_tags_and_questions(vault):
    tags = json.loads(run(vault, "tags", "-f", "json").output)
    assert tags[0] == {"tag": "paper", "notes": 2}
    qs = json.loads(run(vault, "questions", "--format", "json").output)
    assert len(qs) == 2
    open_qs = json.loads(run(vault, "questions", "--open", "--format", "json").output)
    assert [q["text"] for q in open_qs] == ["Open one?"]
    assert "Open one?" in run(vault, "questions", "--open").output


def test_bad_format_rejected(vault):
    result = run(vault, "tags", "--format", "xml")
    assert result.exit_code == 2 and "unknown --format" in result.output


@pytest.mark.parametrize("fmt,marker", [
    ("summary", "Citation graph"), ("graphml", "<graphml"), ("gexf", "<gexf"), ("json", '"nodes"'),
    ("mermaid", "flowchart LR"), ("dot", "digraph paperkb"),
])
def test_graph_formats(vault, fmt, marker):
    result = run(vault, "graph", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert marker in result.output


def test_graph_summary_counts(vault):
    out = run(vault, "graph").output
    assert "3 notes, 1 ghost" in out and "orphans" in out and "Lonely.md" in out


def test_graph_to_file(vault, tmp_path):
    out = tmp_path / "g.dot"
    assert run(vault, "graph", "-f", "dot", "-o", str(out)).exit_code == 0
    assert 'label="Flash \\"Attention\\""' in out.read_text()


def test_check_lines_and_exit_status(vault):
    result = run(vault, "check")
    assert result.exit_code == 1  # an unknown experiment is an error of the claim (it reads "error")
    assert "papers/Llama 2.md:16: error: claim 'gqa' names unknown experiment 'llama/nope' (known: " in result.output
    assert "papers/Llama 2.md:22: info: cited work 'vaswani2017' has no note yet" in result.output
    (vault / "bad.md").write_text("---\nkey: [unclosed\n---\n# Bad\n", encoding="utf-8")
    result = run(vault, "check", "--no-experiments")
    lines = [line for line in result.output.splitlines() if line.startswith("bad.md:")]
    assert lines and any(": error: " in line for line in lines)
    assert result.exit_code == 1
    data = json.loads(run(vault, "check", "-f", "json", "--no-experiments").stdout)
    assert {"path", "line", "severity", "message"} == set(data[0])


def test_export_json(vault):
    result = run(vault, "export", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert sorted(n["path"] for n in data["notes"]) == ["Lonely.md", "papers/Flash.md", "papers/Llama 2.md"]


def _read_tables(vault) -> set[str]:
    import sqlite3

    conn = sqlite3.connect(vault / ".paperkb" / "index.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {t for t in ("query_meta", "search_docs", "claim_notes") if t in tables}
    finally:
        conn.close()


def test_index_prepares_the_tables_read_commands_use(vault):
    import shutil

    result = runner.invoke(app, ["--vault", str(vault), "index", "--index-only"])
    assert result.exit_code == 0, result.output
    assert _read_tables(vault) == set()  # left to their first reader
    (vault / "papers" / "Flash.md").write_text("# Flash\nchanged\n", encoding="utf-8")
    result = runner.invoke(app, ["--vault", str(vault), "index"])
    assert result.exit_code == 0, result.output
    assert _read_tables(vault) == set()  # one changed note: the readers' own syncs are cheaper
    shutil.rmtree(vault / ".paperkb")
    result = runner.invoke(app, ["--vault", str(vault), "index"])  # a new index: prepared
    assert result.exit_code == 0, result.output
    assert _read_tables(vault) == {"query_meta", "search_docs", "claim_notes"}
