"""The worked example of docs/experiments.md, installed as a user would install their own
package (pip, from a git checkout, into a folder on PYTHONPATH) and run end to end: its
experiment through the entry point, its controls, `experiments show`, the package's
provenance in the run record, and the claim's status written back into the note."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "rope-example"
EXP = "rope-example/relative-position"

pytestmark = pytest.mark.slow  # pip, git and four experiment runs: about 30 s


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, capture_output=True, text=True, check=True, timeout=60,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("example")
    checkout = base / "checkout"
    shutil.copytree(EXAMPLE, checkout, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    _git(checkout, "init", "-q")
    _git(checkout, "add", "-A")
    _git(checkout, "commit", "-q", "-m", "rope example")
    commit = _git(checkout, "rev-parse", "HEAD")
    (checkout / "README.md").write_text("edited after the commit\n", encoding="utf-8")  # a dirty checkout
    target = base / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(checkout)],
        check=True, capture_output=True, timeout=300,
    )
    vault = base / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    shutil.copy(EXAMPLE / "RoFormer.md", vault / "RoFormer.md")
    env = {k: v for k, v in os.environ.items() if k not in ("PAPERKB_EXTRA_EXPERIMENT_MODULES", "PAPERKB_VAULT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(target)])
    return {"vault": vault, "env": env, "commit": commit, "checkout": checkout}


def paperkb(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.app", "--vault", str(installed["vault"]), *args],
        cwd=installed["vault"], env=installed["env"], capture_output=True, text=True, timeout=600,
    )


def test_experiments_show_describes_the_package(installed):
    result = paperkb(installed, "experiments", "show", EXP, "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["module"] == "rope_example.experiments"
    assert [(p["name"], p["type"], p["default"]) for p in info["params"]][:2] == [("dim", "int", 64),
                                                                                 ("positions", "int", 256)]
    assert info["params"][-1]["choices"] == ["float64", "float32"]
    assert info["presets"]["full-gpu"]["requires"]["device"] == "cuda"
    assert info["presets"]["full-gpu"]["scale"] == "full"
    assert [c["name"] for c in info["controls"]] == ["layout-mismatch", "no-pairs"]
    assert [(c["id"], c["note"]) for c in info["claims"]] == [("rope-relative", "RoFormer.md")]
    src = info["source"]
    assert (src["package"], src["version"], src["install"]["kind"]) == ("rope-example", "0.1.0", "folder")
    assert src["git"]["commit"] == installed["commit"] and src["git"]["dirty"] is True
    table = paperkb(installed, "experiments", "show", EXP).stdout
    assert "dtype: str = 'float64'  [one of 'float64', 'float32']" in table
    assert "full-gpu (scale full; needs cuda, ≥1 GB GPU memory)" in table
    assert "RoFormer.md:12  rope-relative  unverified" in table


def test_claim_runs_controls_fail_and_status_lands_in_the_note(installed):
    run = paperkb(installed, "run", "rope-relative", "--preset", "smoke")
    assert run.returncode == 0, run.stderr
    controls = paperkb(installed, "run", EXP, "--controls", "--preset", "smoke")
    assert controls.returncode == 0, controls.stderr  # both controls ended contradicted
    runs = json.loads(paperkb(installed, "runs", "--experiment", EXP, "--format", "json").stdout)
    assert sorted((r.get("control") or "", r["verdict"]) for r in runs) == [
        ("", "supported"), ("layout-mismatch", "contradicted"), ("no-pairs", "contradicted")]
    real = next(r for r in runs if not r.get("control"))
    shown = json.loads(paperkb(installed, "runs", "show", real["id"], "--format", "json").stdout)
    src = shown["environment"]["experiment_source"]
    assert src["package"] == "rope-example" and src["version"] == "0.1.0"
    assert src["git"]["commit"] == installed["commit"] and src["git"]["dirty"] is True
    assert shown["environment"]["git"]["commit"]  # paperkb's own state stays beside it
    assert "rope-example 0.1.0 (folder), git " + installed["commit"][:12] + " (dirty)" in paperkb(
        installed, "runs", "show", real["id"]).stdout
    [paper] = json.loads(paperkb(installed, "status", "--format", "json").stdout)
    assert paper["claims"][0]["status"] == "supported at small scale"
    wrote = paperkb(installed, "status", "--write-notes")
    assert wrote.returncode == 0 and "wrote 1 status:: fields into 1 notes" in wrote.stderr
    note = (installed["vault"] / "RoFormer.md").read_text(encoding="utf-8")
    assert f"> experiment:: {EXP}\n> status:: supported at small scale · run {real['id']} · " in note
