"""Plain helpers (imported, not fixtures) for the port of Dataview's own test suite (blacksmithgu/obsidian-dataview,
``src/test/``). Each case's pytest id names the Dataview test file and test it came from.

Dataview evaluates its cases in a context whose link handler resolves nothing; ``ev`` does
the same with an empty corpus and a fixed clock.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from kb.parse import parse_note
from kb.query import Context, MemoryCorpus, parse_expression
from kb.query.pages import Page

NOW = dt.datetime(2024, 3, 15, 10, 30)


def evaluate(text: str, corpus: MemoryCorpus | None = None) -> Any:
    return Context(corpus or MemoryCorpus([]), None, NOW).eval(parse_expression(text), None)


def same(actual: Any, expected: Any) -> bool:
    """Equality as Jest's toEqual means it: numbers by value (1 == 1.0), recursively."""
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return math.isclose(actual, expected, rel_tol=1e-12)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            same(actual[k], expected[k]) for k in expected)
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    return type(actual) is type(expected) and actual == expected or (
        isinstance(expected, int) and isinstance(actual, (int, float)) and not isinstance(actual, bool)
        and actual == expected)


def page_of(text: str, path: str = "note.md") -> Page:
    """The page of one note written as Markdown (in a corpus of that note alone)."""
    corpus = MemoryCorpus([parse_note(text, path)])
    return corpus.pages([path])[0]
