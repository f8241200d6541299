"""Issue 23: CSV cells, bounded inputs and command lines (items 7, 9-14)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from paperkb.csvsafe import spreadsheet_safe

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


# ---- 7. CSV formula injection ------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://x.invalid","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("cell", FORMULAS)
def test_spreadsheet_safe_defuses_formulas(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-5", "+1.5e3", "plain", "", "a=b", "3-2"])
def test_spreadsheet_safe_leaves_numbers_and_text(cell):
    assert spreadsheet_safe(cell) == cell


def test_query_csv_and_csv_function_cells_are_defused(tmp_path):
    from vaultkit import write

    vault = write(
        tmp_path / "v",
        {
            "P.md": "---\ntags: [paper]\nnote: '=HYPERLINK(\"http://x.invalid\")'\nyear: -5\n---\n# =cmd|x\n",
            "data.csv": 'name,value\n"=HYPERLINK(""http://x.invalid"",""c"")",@SUM(A1)\nok,-3\n',
            "Q.md": "# Q\n",
        },
    )
    for fmt, extra in (("csv", []), ("csv", ["--no-header"])):
        result = cli("--vault", str(vault), "query", "TABLE note, year FROM #paper", "-f", fmt, *extra)
        assert result.exit_code == 0, result.output
        cells = [c for row in csv.reader(io.StringIO(result.stdout)) for c in row]
        assert not [c for c in cells if c[:1] in "=+@" or (c[:1] == "-" and c != "-5")], cells
        assert '\'=HYPERLINK("http://x.invalid")' in cells and "-5" in cells
    result = cli("--vault", str(vault), "query", 'TABLE WITHOUT ID name, value FROM csv("data.csv")', "-f", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[1][-2:] == ['\'=HYPERLINK("http://x.invalid","c")', "'@SUM(A1)"] and rows[2][-2:] == ["ok", "-3"]


# ---- 10. a deep params:: value is an error on its line; the note keeps the rest ----------
@pytest.mark.parametrize("depth", [9, 500, 5000])
def test_deep_params_is_an_error_and_the_note_keeps_its_claims_and_links(tmp_path, depth):
    from kb.vault import Vault
    from vaultkit import write

    deep = "[" * depth + "1" + "]" * depth
    vault = write(
        tmp_path / "v",
        {
            "P.md": f"# P\n\nSee [[Other]].\n\n> [!claim] first ^c1\n> params:: x={deep}\n\n"
            "> [!claim] second ^c2\n> params:: n=[[1, 2], [3]]\n",
            "Other.md": "# Other\n",
        },
    )
    with Vault(vault) as v:
        note = v.note_at("P.md")
        assert [c.id for c in note.claims] == ["first", "second"] and note.claims[1].params == {"n": [[1, 2], [3]]}
        assert "Other.md" in {link.resolved for link in note.links}
        errors = [(p.line, p.message) for p in v.problems() if p.line == 6 and "params" in p.message]
    why = "is longer than 2000 characters" if depth > 999 else "nests lists more than 8 deep"
    assert errors == [(6, f"claim 'first': params:: {why}")]


# ---- 11. configuration YAML has frontmatter's limits --------------------------------------
LAUGHS = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    + "tags: *i\n"
)


@pytest.mark.parametrize(
    "text, why",
    [
        (LAUGHS, "too large or recursive"),
        ("tags: " + "- " * 20_000 + "x\n", "nested too deeply"),
        ("tags: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
        ("x" * 200_000, "over the 100,000-byte limit"),
    ],
)
def test_papers_yaml_bombs_are_one_line_errors(tmp_path, text, why):
    import resource

    from kb.publish.papers import load_rule
    from paperkb.errors import PaperkbError

    (tmp_path / ".paperkb").mkdir()
    (tmp_path / ".paperkb" / "papers.yaml").write_text(text)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(PaperkbError) as err:
        load_rule(tmp_path)
    assert "papers.yaml" in str(err.value) and (why in str(err.value) or "not valid YAML" in str(err.value))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no blow-up


def test_export_summary_with_a_bomb_in_papers_yaml_fails_in_one_line(tmp_path):
    from vaultkit import write

    vault = write(tmp_path / "v", {"P.md": "---\ntags: [paper]\n---\n# P\n", ".paperkb/papers.yaml": LAUGHS})
    result = cli("--vault", str(vault), "export", "summary")
    assert result.exit_code == 1 and "papers.yaml" in result.output and "Traceback" not in result.output


def test_markdown_export_does_not_expand_a_bomb_in_frontmatter(tmp_path):
    from kb.publish.markdown import export_markdown
    from kb.vault import Vault
    from vaultkit import write

    vault = write(tmp_path / "v", {"Bomb.md": "---\n" + LAUGHS + "---\n# Bomb\n"})
    export_markdown(Vault(vault), tmp_path / "out")
    text = (tmp_path / "out" / "Bomb.md").read_text()
    assert len(text) < 1000 and "paperkb-export: markdown" in text


# ---- 12. every input is a regular file of bounded size ------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_config_and_csv_inputs_that_are_fifos_or_devices_fail_fast(tmp_path):
    from vaultkit import write

    vault = write(tmp_path / "v", {"P.md": "---\ntags: [paper]\n---\n# P\n"})
    (vault / ".paperkb").mkdir(exist_ok=True)
    os.mkfifo(vault / ".paperkb" / "papers.yaml")
    result = cli("--vault", str(vault), "export", "summary")
    assert result.exit_code == 1 and "not a regular file" in result.output
    (vault / ".paperkb" / "papers.yaml").unlink()
    os.symlink("/dev/zero", vault / "zero.csv")
    os.mkfifo(vault / "fifo.csv")
    for name, why in (("zero.csv", "outside the vault"), ("fifo.csv", "not a regular file")):
        result = cli("--vault", str(vault), "query", f'TABLE WITHOUT ID x FROM csv("{name}")')
        assert result.exit_code == 1 and why in result.output


# ---- 9, 14. command-line values beyond the machine are usage errors -------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "fa-linear-memory", "--nproc", "100000"], "--nproc must be at most"),
        (["run", "fa-linear-memory", "--nproc", "0"], "--nproc must be at least 1"),
        (["run", "fa-linear-memory", "--seed", "99999999999999999999999999"], "--seed"),
        (["run", "fa-linear-memory", "--seed", "-1"], "--seed"),
    ],
)
def test_out_of_range_options_exit_2_before_anything_starts(tmp_path, args, words):
    from vaultkit import write

    vault = write(tmp_path / "v", {"P.md": "# P\n"})
    result = runner.invoke(app, ["--vault", str(vault), *args])
    assert result.exit_code == 2 and words in result.stderr and "Traceback" not in result.output
    assert not (vault / ".paperkb" / "runs").exists()


def test_a_missing_vault_given_on_the_command_line_is_a_usage_error(tmp_path, monkeypatch):
    assert cli("--vault", str(tmp_path / "nonexistent"), "status").exit_code == 2
    (tmp_path / "file").write_text("x")
    assert cli("--vault", str(tmp_path / "file"), "tags").exit_code == 2
    monkeypatch.setenv("PAPERKB_VAULT", str(tmp_path / "nonexistent"))
    assert cli("tags").exit_code == 2


# ---- 8. a run's memory is estimated before it starts; every preset has a time limit --------
HUNGRY = """# Hungry

> [!claim] quadratic attention at sixty thousand tokens
> experiment:: flash-attention/linear-memory
> params:: ns=[60000], impls=["naive"]
> expect:: naive_memory_exponent <= 2.2

> [!claim] sixty-four layers of width eight thousand
> experiment:: transformer/copy-task
> params:: d_model=8192, n_layers=64, d_ff=65536
> expect:: token_accuracy >= 0.99
"""


@pytest.mark.parametrize("claim", ["quadratic-attention-at-sixty-thousand-tokens", "sixty-four-layers-of-width-eight-thousand"])
def test_claim_params_beyond_the_machine_are_refused_before_starting(tmp_path, claim, monkeypatch):
    import repro.budget
    from vaultkit import write

    monkeypatch.setattr(repro.budget, "machine_memory", lambda: 16 << 30)  # the same on any machine
    vault = write(tmp_path / "v", {"Hungry.md": HUNGRY})
    result = runner.invoke(app, ["--vault", str(vault), "run", claim])
    assert result.exit_code == 1 and "refused before starting" in result.stderr, result.output
    assert "more than this machine has (16.0 GiB)" in result.stderr


def test_claim_params_beyond_a_parameters_bounds_are_refused_by_check(tmp_path):
    from vaultkit import write

    text = "# Deep\n\n> [!claim] twenty thousand layers\n> experiment:: transformer/copy-task\n"
    text += "> params:: d_model=512, n_layers=20000\n> expect:: token_accuracy >= 0.99\n"
    vault = write(tmp_path / "v", {"Deep.md": text})
    result = runner.invoke(app, ["--vault", str(vault), "check"])
    assert result.exit_code == 1 and "n_layers" in result.output, result.output
    result = runner.invoke(app, ["--vault", str(vault), "run", "twenty-thousand-layers"])
    assert result.exit_code != 0 and not (vault / ".paperkb" / "runs").exists()


def test_max_memory_option(tmp_path):
    from vaultkit import write

    vault = write(tmp_path / "v", {"P.md": "# P\n"})
    result = runner.invoke(app, ["--vault", str(vault), "run", "flash-attention/linear-memory", "--max-memory", "1M"])
    assert result.exit_code == 1 and "more than --max-memory (1.0 MiB)" in result.stderr
    result = runner.invoke(app, ["--vault", str(vault), "run", "flash-attention/linear-memory", "--max-memory", "x"])
    assert result.exit_code == 2 and "--max-memory takes a size" in result.stderr


def test_every_shipped_preset_fits_and_has_a_time_limit():
    from repro import registry
    from repro.budget import estimate_bytes, memory_refusal, preset_timeout

    for exp in registry.load_all().values():
        for name, preset in exp.presets.items():
            params = exp.resolve_params(name)
            if preset.requires.device == "cpu":
                assert memory_refusal(exp.id, params, "cpu", None) is None, (exp.id, name)
            assert 0 < preset_timeout(preset, exp.scale_of(name)) < float("inf")
    big = registry.get("flash-attention/linear-memory").resolve_params("smoke", {"ns": [60000], "impls": ["naive"]})
    assert estimate_bytes("flash-attention/linear-memory", big) >= 2 * 60000**2 * 4  # scores and probabilities
