"""Fixtures of the robustness tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_vault import build


@pytest.fixture
def hostile_vault(tmp_path) -> Path:
    """The small hostile vault of hostile_vault.py (one file for each way a vault has broken
    paperkb before), written under a fresh folder. ``build`` stays a plain function because
    bench/robustness.py builds the same vault outside pytest."""
    return build(tmp_path / "hostile")
