"""How `runs show`, `runs compare`, `claims` and `run --all` read (issue 25): ids and paths
never split at 80 columns, plain tab-separated lines without box drawing in a pipe, an empty
claims listing that says so, and the deliberate needs:: claims named once at the end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from repro_testkit import ROOT
from typer.testing import CliRunner

from cli.app import app
from repro.run_session import not_runnable_line, set_aside_not_runnable
from repro.status import ClaimRef
from repro.tracker import FAILED, PASSED, Tracker

BOX = re.compile("[\u2500-\u257f]")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ARTIFACT = "plot-loss-over-training-steps-at-every-seed.png"


@pytest.fixture
def recorded(tmp_path) -> tuple[Path, list[str]]:
    """A vault (under a long folder name) with two recorded runs that differ in a parameter,
    a check, a package and their status; each has a plot."""
    vault = tmp_path / "a-folder-name-long-enough-to-pass-eighty-columns" / "vault"
    vault.mkdir(parents=True)
    env = {
        "git": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": False},
        "machine": {"host": "box", "cpu_model": "a CPU", "cpu_count": 2, "ram_bytes": 2**33},
    }
    ids = []
    with Tracker(vault) as tracker:
        for target, status in ((1.0, PASSED), (0.01, FAILED)):
            run = tracker.create_run(
                "test/ok",
                preset="smoke",
                params={"target": target},
                claims=["c-ok"],
                environment={**env, "packages": {"typer": "0.12", "numpy": str(target)}},
                command=["paperkb", "run", "test/ok"],
            )
            tracker.mark_running(run.id, None)
            tracker.add_metrics(run.id, [{"name": "loss", "value": 0.5, "step": 3}])
            (tracker.run_dir(run.id) / ARTIFACT).write_bytes(b"png")
            tracker.add_artifact(run.id, ARTIFACT, "plot")
            check = {"name": "loss", "value": 0.5, "op": "<", "threshold": target, "passed": status == PASSED}
            tracker.finish(run.id, status, checks=[check], summary="loss 0.5")
            ids.append(run.id)
    return vault, ids


def _piped(vault: Path, *args: str):
    return CliRunner().invoke(app, ["--vault", str(vault), *args])


def test_piped_show_and_compare_are_tab_separated_lines_without_box_drawing(recorded):
    vault, (first, second) = recorded
    shown = _piped(vault, "runs", "show", first)
    assert shown.exit_code == 0, shown.output
    assert not BOX.search(shown.stdout)
    lines = shown.stdout.splitlines()
    assert f"run folder\t{vault / '.paperkb' / 'runs' / first}" in lines
    assert f"plot\t{vault / '.paperkb' / 'runs' / first / ARTIFACT}" in lines
    assert "check\tvalue\top\tthreshold\tscale\tevidence\tpassed" in lines
    assert not [line for line in lines if line != line.rstrip(" ") or "   " in line]  # no padding to a width

    compared = _piped(vault, "runs", "compare", first, second)
    assert compared.exit_code == 0, compared.output
    assert not BOX.search(compared.stdout)
    table = [line.split("\t") for line in compared.stdout.splitlines()]
    assert table[0] == ["section", "key", first, second, "same"]
    assert all(len(row) == 5 for row in table)
    assert ["params", "target", "1", "0.01", "no"] in table and ["packages", "numpy", "1.0", "0.01", "no"] in table
    assert "equal rows hidden" in compared.stderr  # a note for the reader, not a row
    assert json.loads(_piped(vault, "runs", "compare", first, second, "-f", "json").stdout)["a"] == first


def _on_a_terminal(columns: int, *args: str) -> str:
    """paperkb's output on a pseudo-terminal ``columns`` wide, escape sequences removed."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "PAGER": "cat"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.app", *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, out
    return ANSI.sub("", out.decode().replace("\r", ""))


def test_at_80_columns_run_ids_and_paths_stay_whole(recorded):
    vault, (first, second) = recorded
    folder = vault / ".paperkb" / "runs" / first
    assert len(str(folder / ARTIFACT)) > 80  # a path that cannot fit: it must not be cut
    shown = _on_a_terminal(80, "--vault", str(vault), "--no-pager", "runs", "show", first)
    assert not BOX.search(shown)
    words = shown.split()
    assert str(folder) in words and str(folder / ARTIFACT) in words and first in words
    for flag in ([], ["--all"]):
        compared = _on_a_terminal(80, "--vault", str(vault), "runs", "compare", first, second, *flag)
        assert not BOX.search(compared)
        words = compared.split()
        assert words.count(first) >= 2 and words.count(second) >= 2, compared  # the title and the columns
        assert "0123456789abcdef0123456789abcdef01234567" in words or not flag


def test_an_empty_claims_listing_says_so(tmp_path):
    (tmp_path / "Reading.md").write_text("# Reading\n\nNo claims here.\n", encoding="utf-8")
    for args, line in (
        (["--status", "unverified"], "no claims with status 'unverified'"),
        (["--tag", "paper"], "no claims tagged paper"),
        ([], "no claims in this vault"),
    ):
        result = _piped(tmp_path, "claims", *args)
        assert result.exit_code == 0 and result.stdout == "" and result.stderr.startswith(line), result.output
    assert json.loads(_piped(tmp_path, "claims", "--status", "unverified", "-f", "json").stdout) == []
    assert _piped(tmp_path, "claims", "-f", "tsv").stdout.startswith("id\tstatus")  # tsv keeps its header


def _claim(claim_id: str, experiments: list[str], needs: str = "") -> ClaimRef:
    return ClaimRef(claim_id, "a statement", experiments, "A.md", "A", 5, needs=needs)


def test_needs_claims_are_set_aside_unless_named():
    runnable, wanted, stray = _claim("c-ok", ["test/ok"]), _claim("c-gpu", [], "8 GPUs"), _claim("c-bare", [])
    assert set_aside_not_runnable([runnable, wanted, stray]) == ([runnable, stray], [wanted])
    assert set_aside_not_runnable([runnable, wanted], named=["c-gpu"]) == ([runnable, wanted], [])
    assert not_runnable_line([wanted]).startswith("not runnable here: c-gpu (1 claim")
    assert not_runnable_line([]) == ""


@pytest.mark.slow  # a real run of test/ok: about 10 s on a loaded machine
@pytest.mark.usefixtures("repro_env")
def test_run_all_names_the_needs_claims_once_at_the_end(tmp_path, monkeypatch):
    (tmp_path / "A.md").write_text("# A\n\nA note with claims.\n", encoding="utf-8")
    claims = [_claim("c-ok", ["test/ok"]), _claim("c-gpu", [], "8 GPUs"), _claim("c-data", [], "the WMT14 data")]
    monkeypatch.setattr("repro.status.vault_claims", lambda root, **filters: claims)
    result = _piped(tmp_path, "run", "--all", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "names no experiment" not in result.output and "warning" not in result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("not runnable here: c-gpu, c-data (2 claims"), result.stdout


def test_the_library_answers_what_the_commands_print(recorded):
    from paperkb.errors import PaperkbError
    from repro.run_queries import check_run_filters, runs_matching

    vault, (first, second) = recorded
    with Tracker(vault) as tracker:
        a, b = tracker.get(first), tracker.get(second)
        rows = {(r["section"], r["key"]): r for r in tracker.compare(a, b)}
        other = tracker.create_run("test/raise", preset="smoke", params={}, claims=[])
        by_claim = runs_matching(tracker, claim="c-named", claims=[_claim("c-named", ["test/raise"])])
        limited = runs_matching(tracker, experiment="test/ok", limit=1)
    assert rows[("params", "target")] == {"section": "params", "key": "target", "a": 1.0, "b": 0.01, "same": False}
    assert rows[("environment", "git commit")]["same"] and rows[("environment", "host")]["a"] == "box"
    assert rows[("packages", "numpy")]["b"] == "0.01" and ("packages", "typer") not in rows  # only those that differ
    assert a.brief()["id"] == first and "environment" not in a.brief() and a.brief()["slurm_job_id"] is None
    assert [r.id for r in by_claim] == [other.id]  # of an experiment the claim names, though not launched for it
    assert [r.id for r in limited] == [second]  # newest first
    with pytest.raises(PaperkbError, match=r"--claim 'c-okk' is not a claim of this vault \(did you mean c-ok\?\)"):
        check_run_filters("c-okk", None, [_claim("c-ok", ["test/ok"])])
