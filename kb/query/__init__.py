"""Dataview's query language (DQL) outside Obsidian.

Library use::

    from kb.vault import Vault
    from kb.query import run_query, to_markdown

    vault = Vault("notes")
    result = run_query(vault, 'TABLE year, authors FROM #paper WHERE year >= 2023 SORT year DESC')
    print(to_markdown(result))

``parse_query`` gives the syntax tree, ``execute(query, corpus)`` runs it over any
:class:`Corpus` (``MemoryCorpus`` for notes in memory, ``IndexCorpus`` for the index).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kb.query.errors import QueryError

if TYPE_CHECKING:  # pragma: no cover
    from kb.query.corpus import Corpus, IndexCorpus, MemoryCorpus
    from kb.query.evaluate import Context, Result, ResultRow, execute
    from kb.query.limits import Limits
    from kb.query.pages import Page
    from kb.query.parser import parse_expression, parse_query
    from kb.query.render import find_blocks, render_blocks, to_csv, to_json_text, to_markdown, to_records

# Where each name lives: loaded on first use, so that `paperkb search` (which reads only the
# helper tables' bookkeeping, kb.query.tables) does not load the whole engine.
_LAZY = {
    "Corpus": "corpus",
    "IndexCorpus": "corpus",
    "MemoryCorpus": "corpus",
    "Context": "evaluate",
    "Result": "evaluate",
    "ResultRow": "evaluate",
    "execute": "evaluate",
    "Limits": "limits",
    "Page": "pages",
    "parse_expression": "parser",
    "parse_query": "parser",
    "find_blocks": "render",
    "render_blocks": "render",
    "to_csv": "render",
    "to_json_text": "render",
    "to_markdown": "render",
    "to_records": "render",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kb.query' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kb.query.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Corpus",
    "IndexCorpus",
    "MemoryCorpus",
    "QueryError",
    "Context",
    "Result",
    "ResultRow",
    "Page",
    "Limits",
    "execute",
    "parse_query",
    "parse_expression",
    "to_markdown",
    "to_records",
    "to_json_text",
    "to_csv",
    "find_blocks",
    "render_blocks",
    "corpus_of",
    "run_query",
    "render_note",
]


def corpus_of(vault: Any, *, refresh: bool = True) -> IndexCorpus:
    """The index corpus of a :class:`kb.vault.Vault` (the index brought up to date first)."""
    from kb.query.corpus import IndexCorpus

    if refresh and getattr(vault, "refresh", True):
        vault.refresh_index()
    return IndexCorpus(vault.connect(), vault.root)


def run_query(vault: Any, text: str, *, this: str | None = None) -> Result:
    """Run DQL ``text`` over a vault; ``this`` names the note ``this`` and ``[[]]`` refer to."""
    from kb.query.evaluate import execute

    corpus = corpus_of(vault)
    page = None
    if this is not None:
        page = corpus.page(vault.note(this).path)
    return execute(text, corpus, this=page)


def render_note(vault: Any, name: str) -> str:
    """The note called ``name`` with each dataview block replaced by its result (Markdown)."""
    corpus = corpus_of(vault)
    note = vault.note(name)
    page = corpus.page(note.path)
    source = (vault.root / note.path).resolve()
    if not source.is_relative_to(vault.root):  # never read outside the vault
        raise QueryError(f"{note.path}: outside the vault")
    text = source.read_bytes().decode("utf-8", "replace")
    from kb.query.render import render_blocks

    return render_blocks(text, corpus, page)
