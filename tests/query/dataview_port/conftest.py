"""Fixtures for the port of Dataview's own test suite; the plain helpers live in
``dataview_kit`` (a module of their own: several test folders have a conftest, so
``from conftest import ...`` would reach whichever was imported first)."""

from __future__ import annotations

import pytest
from dataview_kit import evaluate


@pytest.fixture
def ev():
    return evaluate
