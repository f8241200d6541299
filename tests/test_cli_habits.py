"""What a researcher expects of a command-line tool: the vault found like git finds its
repository, listings that fit the terminal or pipe cleanly, one error line with the
right exit status, --version, and layers that keep kb free of repro and torch."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app, error_line, hoist_vault
from cli.output import clean, emit, table_lines
from kb.locate import find_vault_root, init_vault, locate_vault
from paperkb.errors import PaperkbError, VaultError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _vault(tmp_path: Path) -> Path:
    root = tmp_path / "v"
    (root / ".obsidian").mkdir(parents=True)
    (root / "papers").mkdir()
    (root / "papers" / "A.md").write_text("---\ntags: [paper]\n---\n# A\nsee [[B]]\n", encoding="utf-8")
    (root / "B.md").write_text("# B\n", encoding="utf-8")
    return root


# ---- vault discovery -------------------------------------------------------------------


def test_vault_is_found_by_walking_up(tmp_path):
    root = _vault(tmp_path)
    assert find_vault_root(root / "papers") == root
    assert locate_vault(cwd=root / "papers", environ={}) == root
    assert find_vault_root(tmp_path) is None


def test_precedence_option_then_env_then_walk_up(tmp_path):
    root = _vault(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    assert locate_vault(cwd=root, environ={"PAPERKB_VAULT": str(other)}) == other.resolve()
    assert locate_vault(str(root), cwd=tmp_path, environ={"PAPERKB_VAULT": str(other)}) == root


def test_outside_a_vault_is_refused_with_how_to_pick_one(tmp_path):
    with pytest.raises(VaultError) as exc:
        locate_vault(cwd=tmp_path, environ={})
    assert "paperkb init" in str(exc.value) and "--vault" in str(exc.value) and exc.value.exit_code == 2


def test_read_only_commands_create_nothing_outside_a_vault(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAPERKB_VAULT", raising=False)
    (tmp_path / "stray.md").write_text("# stray\n", encoding="utf-8")
    for args in (["tags"], ["status"], ["experiments"], ["search", "x"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("error: ") and "paperkb init" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stray.md"]


def test_init_then_commands_find_the_vault_from_a_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("PAPERKB_VAULT", raising=False)
    (tmp_path / "sub").mkdir()
    (tmp_path / "N.md").write_text("---\ntags: [x]\n---\n# N\n", encoding="utf-8")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 0 and "made a paperkb vault" in result.stdout
    assert init_vault(tmp_path) == (tmp_path.resolve(), False)  # already one
    monkeypatch.chdir(tmp_path / "sub")
    result = runner.invoke(app, ["tags", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"tag": "x", "notes": 1}]


def test_vault_option_after_the_subcommand(tmp_path):
    root = _vault(tmp_path)
    assert hoist_vault(["index", "--vault", "n", "-q"]) == ["--vault", "n", "index", "-q"]
    assert hoist_vault(["query", "--", "--vault"]) == ["query", "--", "--vault"]
    assert hoist_vault(["status", "--no-pager", "-f", "tsv"]) == ["--no-pager", "status", "-f", "tsv"]
    result = runner.invoke(app, ["tags", "--format", "json", "--vault", str(root)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"tag": "paper", "notes": 1}]


# ---- output ----------------------------------------------------------------------------

ROWS = [
    {
        "id": "transformer-param-count",
        "status": "reproduced",
        "statement": "The base model has about 65M parameters and the big one 213M, as in Table 3 of the paper",
    },
    {"id": "x", "status": None, "statement": "short"},
]


@pytest.mark.parametrize("width", [120, 80, 72])
def test_tables_fit_the_terminal_and_never_split_ids(width):
    lines = table_lines(
        ["id", "status", "statement"],
        [[str(r["id"]), r["status"] or "", r["statement"]] for r in ROWS],
        width,
        wrap="statement",
    )
    assert all(len(line) <= width for line in lines), lines
    assert any(line.startswith("transformer-param-count  reproduced") for line in lines)


def test_narrow_terminals_get_one_block_per_row():
    lines = table_lines(["id", "status", "statement"], [[r["id"], r["status"] or "", r["statement"]] for r in ROWS], 50)
    assert lines[0] == "transformer-param-count" and lines[1].split() == ["status", "reproduced"]
    assert all(len(line) <= 50 for line in lines)
    path = "papers/A folder with spaces/A rather long note name that goes on.md"
    lines = table_lines(["n", "path", "title"], [["1", path, "a title " * 8]], 40, wrap="title", key="path")
    assert lines[0] == path and lines[1].split() == ["n", "1"]  # heads the block, whole
    assert lines[2].startswith("  title  a title") and len(lines) > 3


def test_piped_tables_are_tab_separated_and_formats_agree():
    out = io.StringIO()
    emit(ROWS, ["id", "status", "statement"], out=out, terminal=False)
    lines = out.getvalue().splitlines()
    assert lines[0] == "id\tstatus\tstatement" and lines[1].split("\t")[0] == "transformer-param-count"
    out = io.StringIO()
    emit(ROWS, ["id", "status"], "csv", no_header=True, out=out)
    assert out.getvalue() == "transformer-param-count,reproduced\nx,\n"
    out = io.StringIO()
    emit(ROWS, [], "jsonl", out=out)
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == ["transformer-param-count", "x"]


def test_terminal_escapes_from_notes_are_cleaned():
    assert clean("Title\x1b]0;pwned\x07 \x1b[2Jtext\x9b\u202e") == "Title text??"
    out = io.StringIO()
    emit([{"t": "a\x1b[31mred\tb\nc"}], ["t"], out=out, terminal=True, width=80)
    assert "\x1b" not in out.getvalue() and "ared b c" in out.getvalue()


def test_every_listing_takes_the_formats_and_no_header(tmp_path):
    root = _vault(tmp_path)
    for args in (
        ["tags"],
        ["links", "A"],
        ["backlinks", "B"],
        ["questions"],
        ["check"],
        ["search", "see"],
        ["query", "LIST FROM #paper"],
    ):
        for fmt in ("tsv", "csv", "json", "jsonl"):
            result = runner.invoke(app, ["--vault", str(root), *args, "--format", fmt, "--no-header"])
            assert result.exit_code == 0, (args, fmt, result.output)
    result = runner.invoke(app, ["--vault", str(root), "tags", "--no-header"])
    assert result.stdout == "1\tpaper\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal():
    from cli.output import Progress

    piped, tty = io.StringIO(), _Tty()
    for stream in (piped, tty):
        with Progress("exporting", total=2, stream=stream) as progress:
            progress.advance("a.md")
            progress.advance("b.md")
    assert piped.getvalue() == "" and "exporting 2/2 b.md" in tty.getvalue()


# ---- errors and exit codes -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["search", "x", "--limit", "0"],
        ["search", "x", "--limit", "1e20"],
        ["tags", "--format", "xml"],
        ["tags", "--bogus"],
        ["show"],
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args):
    result = runner.invoke(app, ["--vault", str(_vault(tmp_path)), *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.strip().count("\n") == 0


@pytest.mark.parametrize(
    "exc,words",
    [
        (MemoryError(), "out of memory"),
        (OSError(28, "No space left on device", "/v/.paperkb/index.db"), "the disk is full"),
        (sqlite3.OperationalError("database is locked"), "busy"),
        (ModuleNotFoundError("No module named 'torch'", name="torch"), "pip install 'paperkb[repro]'"),
        (ValueError("odd"), "unexpected problem: odd"),
    ],
)
def test_no_exception_name_reaches_the_user(exc, words):
    message, status = error_line(exc)
    assert words in message and status == 1
    assert type(exc).__name__ not in message


def test_error_suggestions_are_a_field(tmp_path):
    root = _vault(tmp_path)
    (root / "Flash Attention.md").write_text("# Flash Attention\n", encoding="utf-8")
    from kb.lookup import find_unique
    from kb.vault import Vault

    with pytest.raises(PaperkbError) as exc:
        find_unique(Vault(root), "Flsh Attention")
    assert exc.value.suggestions == ["Flash Attention"]
    with pytest.raises(PaperkbError) as exc:
        find_unique(Vault(root), "attention flash")  # the words, in another order
    assert exc.value.suggestions == ["Flash Attention"]


def test_version_and_completion():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("paperkb ")
    assert "--install-completion" in runner.invoke(app, ["--help"], terminal_width=200).stdout


# ---- layers ----------------------------------------------------------------------------


def test_kb_never_imports_repro_or_anything_heavy():
    code = (
        "import sys, kb.check, kb.query, kb.search, kb.graph, kb.publish.json_export, kb.vault, kb.lookup, kb.locate, kb.errors\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('repro', 'torch', 'transformers', 'matplotlib', 'safetensors', 'triton')]\n"
        "print('BAD', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "BAD []" in out.stdout, out.stdout + out.stderr


def test_cli_holds_no_sql():
    for path in (ROOT / "cli").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert ".execute(" not in text and "SELECT " not in text, path.name


def test_science_modules_do_not_import_the_knowledge_base():
    for folder in ("llama", "attention", "transformer"):
        for path in (ROOT / "repro" / folder).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "from kb" not in text and "import kb" not in text, path  # errors: paperkb.errors


def test_query_gets_claim_statuses_from_the_cli(tmp_path, monkeypatch):
    import repro.status

    root = _vault(tmp_path)
    (root / "N.md").write_text("# N\n\n> [!claim] It works\n> experiment:: e/x\n^c1\n", encoding="utf-8")
    monkeypatch.setattr(repro.status, "claim_statuses", lambda vault_root: {"c1": {"status": "reproduced"}})
    result = runner.invoke(app, ["--vault", str(root), "query", "-f", "json", 'TABLE claims.status FROM "N"'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["claims.status"] == ["reproduced"]


def test_table_cells_fast_path_equals_cell_text():
    from cli.output import _cell, cell_text, clean

    for value in [
        "plain",
        "tab\there",
        "\x1b[31mred",
        ["a", "b"],
        ["a", "\x1b]0;t\x07"],
        [],
        ["x", 1],
        None,
        False,
        True,
        1.5,
        3,
        [None, "y"],
        ("a", "b"),
    ]:
        assert _cell(value) == clean(cell_text(value)), value
