"""Shared fixtures. Tests never touch the network or a GPU unless one is present."""

from __future__ import annotations

import os
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
