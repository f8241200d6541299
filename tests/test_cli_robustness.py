"""The CLI as a careless user meets it: every mistake ends as ONE line ``error: ...`` on
stderr and a non-zero exit status, never a traceback or a boxed usage panel.

Most tests go through typer's runner on ``cli.app.app`` (the root group itself turns
errors into one line, so the runner sees what a user sees); the signal test and one
usage error go through a real ``paperkb`` process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from repro_testkit import paperkb, pid_alive, rows, wait_for
from typer.testing import CliRunner

from cli.app import app

ROOT = Path(__file__).resolve().parents[1]

runner = CliRunner()

# every command that reads the vault, with arguments that are fine on the bundled vault
VAULT_COMMANDS = [
    ["index"], ["show", "vaswaniAttentionAllYou2017"], ["links", "vaswaniAttentionAllYou2017"],
    ["backlinks", "vaswaniAttentionAllYou2017"], ["path", "vaswaniAttentionAllYou2017", "vaswaniAttentionAllYou2017"],
    ["tags"], ["questions"], ["graph"], ["graph", "--format", "json"], ["check"], ["export", "json"],
    ["export", "summary"], ["experiments"], ["claims"], ["run", "--all"], ["runs"], ["runs", "show", "x"],
    ["runs", "compare", "x", "y"], ["status"],
]
NOTE_COMMANDS = [["show"], ["links"], ["backlinks"], ["claims"], ["run"]]
LISTING_COMMANDS = [
    ["show", "vaswaniAttentionAllYou2017"], ["links", "vaswaniAttentionAllYou2017"],
    ["backlinks", "vaswaniAttentionAllYou2017"], ["path", "vaswaniAttentionAllYou2017", "vaswaniAttentionAllYou2017"],
    ["tags"], ["questions"], ["graph"], ["check"], ["experiments"], ["claims"], ["runs"], ["runs", "show", "x"],
    ["runs", "compare", "x", "y"], ["status"], ["run", "transformer/param-count"],
]


def invoke(vault: Path | str, *args: str):
    return runner.invoke(app, ["--vault", str(vault), *args])


def assert_one_line_error(result, code: int | None = None, contains: str = "") -> str:
    """The result failed with exactly one ``error: ...`` line on stderr; returns it."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code != 0, (result.stdout, result.stderr)
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "╭" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert contains in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Path:
    """A copy of the bundled vault (indexing writes into it)."""
    dest = tmp_path_factory.mktemp("qa") / "notes"
    shutil.copytree(ROOT / "notes", dest, ignore=shutil.ignore_patterns(".paperkb"))
    return dest


# ---- the vault itself ------------------------------------------------------------------
@pytest.mark.parametrize("args", VAULT_COMMANDS, ids=" ".join)
def test_missing_vault_and_file_vault(tmp_path, args):
    assert_one_line_error(invoke(tmp_path / "no-such-vault", *args), contains="vault folder not found")
    a_file = tmp_path / "vault.txt"
    a_file.write_text("not a folder")
    assert_one_line_error(invoke(a_file, *args), contains="vault is not a folder")


def test_empty_vault(tmp_path):
    for args in (["index"], ["tags"], ["questions"], ["graph"], ["export", "json"], ["export", "summary"],
                 ["claims"], ["runs"], ["status"], ["check"]):
        result = invoke(tmp_path, *args)
        assert result.exit_code == 0, (args, result.output)
    for args in (["show", "x"], ["links", "x"], ["backlinks", "x"], ["path", "x", "y"], ["claims", "x"],
                 ["runs", "show", "x"]):
        assert_one_line_error(invoke(tmp_path, *args))
    assert_one_line_error(invoke(tmp_path, "run", "--all"), contains="no claim of this vault")


def test_check_of_a_vault_without_claims_is_clean(tmp_path):
    (tmp_path / "Reading.md").write_text("# Reading\n\nJust notes, no claims.\n", encoding="utf-8")
    result = invoke(tmp_path, "check", "--format", "json")
    assert result.exit_code == 0
    import json

    problems = [p for p in json.loads(result.stdout) if "could not be loaded" not in p["message"]]
    assert problems == []  # unnamed experiments are reported only with --all
    problems = json.loads(invoke(tmp_path, "check", "--format", "json", "--all").stdout)
    assert any("is named by no claim" in p["message"] for p in problems)


def test_note_text_is_never_read_as_rich_markup(tmp_path):
    (tmp_path / "A.md").write_text('---\ntitle: "Weird [/bold] title [red]x"\n---\n# A\n', encoding="utf-8")
    (tmp_path / "B.md").write_text("# B\n\n## References and Related Notes\n- [[A]]\n- [[@ghost[/]key]]\n",
                                   encoding="utf-8")
    result = invoke(tmp_path, "graph")
    assert result.exit_code == 0, result.output
    assert "Weird [/bold] title [red]x" in result.stdout and "ghost[/]key" in result.stdout


def test_note_text_cannot_send_terminal_escapes(tmp_path):
    (tmp_path / "E.md").write_text('---\ntitle: "Bad \\e]0;pwned\\a title"\n---\n# E\n\n'
                                   "> [!question] Why \x1b[2J now?\n", encoding="utf-8")
    for args in (["show", "E"], ["questions"]):
        result = invoke(tmp_path, *args)
        assert result.exit_code == 0 and "\x1b" not in result.stdout and "\a" not in result.stdout, args


# ---- note names --------------------------------------------------------------------------
@pytest.mark.parametrize("args", NOTE_COMMANDS, ids=" ".join)
def test_unknown_note_suggests_close_matches(notes, args):
    line = assert_one_line_error(invoke(notes, *args, "llama"))
    assert "did you mean" in line and "Llama 2" in line, line


def test_misspelt_note_and_experiment_suggest(notes):
    assert "FlashAttention" in assert_one_line_error(invoke(notes, "show", "flashatention"))
    assert "transformer/param-count" in assert_one_line_error(invoke(notes, "run", "transformer/param-cont"))


def test_ambiguous_note_names_are_refused_with_candidates(tmp_path):
    for folder, title in (("a", "One"), ("b", "Two")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "Dup.md").write_text(f"# {title}\n", encoding="utf-8")
    for args in (["show", "Dup"], ["links", "Dup"], ["backlinks", "Dup"], ["path", "Dup", "a/Dup"]):
        line = assert_one_line_error(invoke(tmp_path, *args), contains="names 2 notes")
        assert "a/Dup.md" in line and "b/Dup.md" in line
    result = invoke(tmp_path, "show", "a/Dup")  # the path picks one
    assert result.exit_code == 0 and result.stdout.startswith("One")


# ---- option values -----------------------------------------------------------------------
@pytest.mark.parametrize("args", LISTING_COMMANDS, ids=" ".join)
def test_unknown_format_is_a_usage_error(notes, args):
    assert_one_line_error(invoke(notes, *args, "--format", "xml"), code=2, contains="unknown --format 'xml'")


@pytest.mark.parametrize(
    "option, message",
    [
        (["--preset", "huge"], "--preset must be one of smoke, full"),
        (["--param", "bad"], "--param expects NAME=VALUE"),
        (["--param", "n=notanumber"], "--param n: no experiment of this run has that parameter"),
        (["--param", "vocab_size=notanumber"], "parameter 'vocab_size' expects int"),
        (["--timeout", "-1"], "--timeout must be a positive number of seconds"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds"),
        (["--nproc", "0"], "--nproc must be at least 1"),
        (["--nproc", "abc"], "'abc' is not a valid int"),
        (["--device", "tpu"], "--device must be auto, cpu or cuda"),
    ],
)
def test_bad_run_options_are_refused_before_anything_runs(notes, option, message):
    assert_one_line_error(invoke(notes, "run", "transformer/param-count", *option), contains=message)
    # nothing ran; the skips are recorded so that the claims read "needs a CUDA GPU"
    assert not (notes / ".paperkb" / "runs.db").exists() or not rows(
        notes, "SELECT id FROM runs WHERE status != 'skipped'")


def test_bad_listing_options(notes):
    assert_one_line_error(invoke(notes, "runs", "--limit", "0"), code=2, contains="--limit must be at least 1")
    assert_one_line_error(invoke(notes, "runs", "--status", "bogus"), code=2, contains="--status must be one of")
    assert_one_line_error(invoke(notes, "claims", "--status", "bogus"), code=2, contains="--status must be one of")
    assert_one_line_error(invoke(notes, "index", "--workers", "0"), code=2, contains="--workers")


def test_runs_filters_that_name_nothing_are_refused(notes):
    line = assert_one_line_error(invoke(notes, "runs", "--experiment", "transformer/param-cont"), code=2)
    assert "not a registered experiment" in line and "transformer/param-count" in line
    line = assert_one_line_error(invoke(notes, "runs", "--claim", "fa-exac"), code=2)
    assert "not a claim of this vault" in line and "fa-exact" in line
    result = invoke(notes, "runs", "--claim", "fa-exact")  # real but never run: an empty listing
    assert result.exit_code == 0 and result.stdout.splitlines()[1:] == []  # piped: the header line only


@pytest.mark.parametrize(
    "args",
    [["graph"], *(["graph", "--format", f] for f in ("graphml", "gexf", "json", "mermaid", "dot")),
     ["export", "json"], ["export", "summary"]],
    ids=" ".join,
)
def test_unwritable_output_is_refused(notes, tmp_path, args):
    assert_one_line_error(invoke(notes, *args, "-o", "/nonexistent/dir/x"), code=2, contains="does not exist")
    assert_one_line_error(invoke(notes, *args, "-o", str(tmp_path)), code=2, contains="it is a folder")
    out = tmp_path / "out.txt"
    result = invoke(notes, *args, "-o", str(out))
    assert result.exit_code == 0 and out.stat().st_size > 0
    assert result.stdout == "" and f"wrote {out}" in result.stderr


def test_usage_errors_are_one_line(notes):
    assert_one_line_error(runner.invoke(app, ["show"]), code=2, contains="Missing argument")
    assert_one_line_error(runner.invoke(app, ["bogus"]), code=2, contains="No such command 'bogus'")
    assert_one_line_error(invoke(notes, "export", "json", "--format", "xml"), code=2, contains="No such option")
    assert_one_line_error(invoke(notes, "path", "a"), code=2, contains="(see: paperkb path --help)")


def test_usage_error_through_the_console_script():
    proc = subprocess.run([sys.executable, "-m", "cli.app", "show"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: Missing argument 'note'. (see: paperkb show --help)"


# ---- help ----------------------------------------------------------------------------------
def _commands(cmd, path=()):
    yield list(path)
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize("path", list(_commands(typer.main.get_command(app))), ids=lambda p: " ".join(p) or "paperkb")
def test_every_help_has_an_example(path):
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "Example:" in result.output, result.output


# ---- run: requirements the machine lacks ------------------------------------------------
class _NoCuda:
    cuda = {"available": False, "count": 0, "memory_gb": []}


def test_unmet_requirements_are_skipped_and_the_rest_planned():
    from repro.runner import RunOptions, Target, plan, plan_runs
    from repro.worker import load_experiments

    load_experiments()
    targets = [Target("flash-attention/speed", ["fa-speed"]), Target("transformer/param-count", ["tpc"])]
    planned, skipped = plan_runs(targets, RunOptions(preset="full"), machine=_NoCuda())
    assert [p.experiment for p in planned] == ["transformer/param-count"]
    assert [(s.experiment, s.claims) for s in skipped] == [("flash-attention/speed", ["fa-speed"])]
    assert "needs a CUDA GPU and none is available" in skipped[0].reason
    with pytest.raises(Exception, match="needs a CUDA GPU"):  # plan() keeps refusing outright
        plan(targets, RunOptions(preset="full"), machine=_NoCuda())


def test_run_with_nothing_runnable_is_one_line_and_records_nothing(notes, monkeypatch):
    import repro.runner

    monkeypatch.setattr(repro.runner, "_Machine", _NoCuda)
    line = assert_one_line_error(invoke(notes, "run", "fa-speed", "fa-exact", "--preset", "full"), code=1)
    assert "nothing can run" in line and "flash-attention/speed" in line and "needs a CUDA GPU" in line
    line = assert_one_line_error(invoke(notes, "run", "flash-attention/speed", "--preset", "full"), code=1)
    assert line == ("error: flash-attention/speed: preset 'full' needs a CUDA GPU and none is available "
                    "(try --preset smoke)")
    # nothing ran; the skips are recorded so that the claims read "needs a CUDA GPU"
    assert not (notes / ".paperkb" / "runs.db").exists() or not rows(
        notes, "SELECT id FROM runs WHERE status != 'skipped'")


# ---- run: stopped from outside ---------------------------------------------------------
def test_sigterm_records_the_run_interrupted(repro_env, tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    proc = paperkb(vault, "run", "test/sleep", "test/ok", env=repro_env)
    db = vault / ".paperkb" / "runs.db"
    run = wait_for(lambda: db.exists() and [r for r in rows(vault, "SELECT id, status FROM runs WHERE "
                                                            "experiment='test/sleep' AND status='running'")],
                   timeout=60)[0]
    pid_file = vault / ".paperkb" / "runs" / run["id"] / "pid.txt"
    child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=60))
    os.kill(proc.pid, signal.SIGTERM)  # paperkb alone, as `kill PID` or a closed terminal would
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    statuses = {r["experiment"]: r["status"] for r in rows(vault, "SELECT experiment, status FROM runs")}
    assert statuses == {"test/sleep": "interrupted", "test/ok": "interrupted"}
    wait_for(lambda: not pid_alive(child), timeout=20)
