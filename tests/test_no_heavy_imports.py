"""Knowledge-base commands and the experiment declarations never import torch (nor the other
engines): `paperkb experiments`, `claims`, `status` and `show` stay fast on a machine without a
GPU stack, and a note's claims are listed without loading what runs them.

One test, one fresh interpreter per case: whatever a case imports stays in ``sys.modules``, so
each case is checked in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("torch", "transformers", "matplotlib", "lm_eval", "sacrebleu", "datasets", "triton")
# `show`, `links` and `backlinks` answer from the index alone: not even the Markdown parser or the graph library loads
INDEX_ONLY = ENGINES + ("markdown_it", "networkx", "kb.parse")

CASES = {
    # the declaration modules: `paperkb experiments` imports them just to list ids
    "repro.llama.experiments": ("import repro.llama.experiments", ENGINES),
    "repro.finetune.experiments": ("import repro.finetune.experiments", ENGINES),
    "repro.transformer.experiments": ("import repro.transformer.experiments", ENGINES),
    "repro.attention": ("import repro.attention, repro.attention.experiments", ENGINES),
    "repro.evaluation": ("import repro.evaluation, repro.evaluation.experiments", ENGINES),
    "every declaration and input": (
        "from repro import registry, inputs\n"
        "registry.load_all(); inputs.declared()\n"
        "assert registry.load_errors() == [], registry.load_errors()",
        ENGINES,
    ),
    # the commands, run through the console script's entry point on an indexed copy of the bundled vault
    "paperkb show / links / backlinks": (
        "for args in (['show', 'Attention Is All You Need'], ['links', 'Attention Is All You Need'],\n"
        "             ['backlinks', 'Attention Is All You Need']):\n"
        "    main_of(*args)",
        INDEX_ONLY,
    ),
    "paperkb experiments / claims / status / runs": (
        "for args in (['experiments'], ['experiments', '-f', 'json'], ['claims'], ['status'], ['runs']):\n"
        "    main_of(*args)",
        ENGINES,
    ),
}

PRELUDE = """
import sys
vault = sys.argv[1]

def main_of(*args):
    from cli.app import main
    sys.argv = ['paperkb', '--vault', vault, *args]
    try:
        main()
    except SystemExit as exit:
        assert exit.code in (0, None), (args, exit.code)
"""


@pytest.fixture(scope="module")
def indexed_vault(tmp_path_factory) -> Path:
    import shutil

    vault = tmp_path_factory.mktemp("no-heavy") / "vault"
    shutil.copytree(ROOT / "notes", vault, ignore=shutil.ignore_patterns(".paperkb"))
    index = subprocess.run(
        [sys.executable, "-m", "cli.app", "--vault", str(vault), "index"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert index.returncode == 0, index.stderr
    return vault


@pytest.mark.parametrize("case", list(CASES))
def test_no_engine_is_imported(case, indexed_vault):
    code, heavy = CASES[case]
    check = f"\nloaded = [m for m in {heavy!r} if m in sys.modules]\nprint('LOADED', loaded)\n"
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + code + check, str(indexed_vault)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout, proc.stdout[-2000:]
