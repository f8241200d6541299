"""Shared fixtures. Tests never touch the network or a GPU unless one is present.

Fixtures live in conftest.py files (this one for the whole suite; tests/repro, tests/export and
tests/robustness have their own) and are never imported by a test module. A few plain functions
stay importable from helper modules beside this file, because a fixture would not fit them:

- ``vaultkit.write(root, files)``: called with a different root and different files several times
  in one test, inside module-level helpers and other fixtures, and under hypothesis (whose examples
  cannot take function-scoped fixtures);
- ``repro_testkit``: ``paperkb(vault, *args)`` starts a child process, ``rows``, ``wait_for``,
  ``pid_alive`` and ``fake_experiments(claims)`` are called with arguments in the middle of a test;
- ``export/exportkit.py`` (``tiny_png``, ``paper``) and ``export/zoterokit.py`` (a Zotero database
  built item by item): builders of values that take arguments;
- ``robustness/hostile_vault.build``: also used by bench/robustness.py, outside pytest.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "seeds" / "000_99a7086af6abba95.txt"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def bundled_vault() -> Path:
    return ROOT / "notes"


@pytest.fixture
def bundled_copy(tmp_path) -> Path:
    """A copy of the bundled vault to write into (its `.paperkb/` left behind)."""
    return Path(shutil.copytree(ROOT / "notes", tmp_path / "vault", ignore=shutil.ignore_patterns(".paperkb")))


@pytest.fixture
def repro_env(monkeypatch) -> dict[str, str]:
    """Register the test-only experiments (tests/repro/paperkb_test_experiments.py) here and in
    every child process; returns the environment to hand those children."""
    from repro_testkit import TEST_EXPERIMENTS_DIR, TEST_MODULE

    from repro.worker import EXTRA_MODULES_ENV, load_experiments

    monkeypatch.setenv(EXTRA_MODULES_ENV, TEST_MODULE)
    path = [str(TEST_EXPERIMENTS_DIR), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, path)))
    monkeypatch.delenv("PAPERKB_VAULT", raising=False)
    monkeypatch.syspath_prepend(str(TEST_EXPERIMENTS_DIR))
    load_experiments()
    return os.environ.copy()


@pytest.fixture
def seed_text() -> str:
    """The user's real note (shared/seeds); a copy is kept in tests/data for clones without shared/."""
    local = ROOT / "tests" / "data" / "seed_llama2.md"
    return (SEED if SEED.exists() else local).read_bytes().decode("utf-8")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests that use torch run it on one intra-op thread: with pytest-xdist already using
    both cores, OpenMP threads spinning against each other make small matmuls many times
    slower. Tests that never import torch are left alone (and do not import it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
