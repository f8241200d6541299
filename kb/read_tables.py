"""The tables read commands keep beside the index: the query engine's (kb.query.tables), the
full-text search index (kb.search) and the claims table (kb.claims). Each reader brings its own
up to date on first use; ``paperkb index`` builds them all at once after a large update.
This sits above kb.vault and the readers, which therefore never import each other."""

from __future__ import annotations

import time
from collections.abc import Callable

from kb import claims, search
from kb.index import IndexStats
from kb.query.corpus import IndexCorpus
from kb.vault import Vault

# `paperkb index` prepares the read commands' tables after an update this large (see
# prepare_reads); smaller ones are left to the readers' own incremental syncs.
PREPARE_MIN_CHANGES = 200
READ_TABLES = ("query tables", "search index", "claims table")  # what prepare_reads builds, in order


def prepare_reads(
    vault: Vault, stage: Callable[[str], None] | None = None, *, after: IndexStats | None = None
) -> float:
    """Build what read commands keep beside the index (the query engine's tables, the
    full-text search index, the claims table) now. Each is otherwise built by its
    first reader after the index changed: 1-3 s each after a cold index of 10,000
    notes, where an up-to-date one answers in a tenth of a second. Nothing to do for
    an index that cannot be written. Returns the seconds it took.

    ``after`` (the update just made): only when it rebuilt the index or changed at
    least ``PREPARE_MIN_CHANGES`` notes; a reader brings the tables up to date with a
    few changed notes in milliseconds, and the walk and checks here would cost more."""
    if after is not None and not after.rebuilt and after.parsed + after.deleted < PREPARE_MIN_CHANGES:
        return 0.0
    start = time.perf_counter()
    # store the walk digest now (an index that changed dropped it): the tables below
    # record it, and the next command finds both current without a walk and compare
    vault.refresh_index()
    conn = vault.connect()
    if getattr(conn, "readonly", False):
        return 0.0
    builders = (lambda: IndexCorpus(conn, vault.root), lambda: search.sync(conn), lambda: claims.sync(conn))
    for name, build in zip(READ_TABLES, builders):  # (the corpus syncs its tables when made)
        if stage is not None:
            stage(name)
        build()
    return time.perf_counter() - start
