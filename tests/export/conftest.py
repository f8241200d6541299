"""Fixtures of the export tests (the copy of the bundled vault, ``bundled_copy``, is in
tests/conftest.py)."""

from __future__ import annotations

import pytest
from zoterokit import Library, new_library


@pytest.fixture
def zotero_library(tmp_path) -> Library:
    """An empty Zotero data folder (``.data_dir``, ``tmp_path / "Zotero"``) with a ``zotero.sqlite``
    in Zotero 7's schema; a test adds the items, collections and attachments it needs."""
    return new_library(tmp_path / "Zotero")
