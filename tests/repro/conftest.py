"""Fixtures of the reproduction-framework tests (``repro_env`` is in tests/conftest.py: the CLI
robustness tests share it)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def vault(tmp_path) -> Path:
    """An empty vault folder."""
    root = tmp_path / "vault"
    root.mkdir()
    return root
