"""WHERE and SORT over ScalarPages (plain field values kept in the index) give exactly the
results of the same query over whole pages, and follow every edit."""

from __future__ import annotations

import pytest

from kb.query import QueryError, evaluate, run_query, to_json_text
from kb.vault import Vault

NOTES = {
    "a/Alpha.md": "---\ntags: [gpu]\nyear: 2019\nvenue: NeurIPS\nscore: 0.5\n---\n# Alpha\n",
    "a/Beta.md": "---\ntags: [gpu]\nyear: 2021\nvenue: ICML\nflag: true\n---\n# Beta\nrating:: 4\n",
    "b/Gamma.md": "---\ntags: [gpu]\nYear: 2015\n---\n# Gamma\n",  # found through its canonical name
    "b/Delta.md": '---\ntags: [gpu]\nyear: "2022-05-01"\n---\n# Delta\n',  # a date, not a plain value
    "b/Eps.md": "---\ntags: [gpu]\n---\n# Eps\nyear:: 2018\nyear:: 2020\n",  # two inline values: a list
    "c/Zeta.md": "---\ntags: [gpu, other]\nyear: 2023\nvenue: [[Alpha]]\nflag: false\n---\n# Zeta\n",
    "c/Eta.md": "---\ntags: [gpu]\nyear: 2019\nvenue: neurips\nscore: .nan\n---\n# Eta\n",
    "c/Theta.md": "---\ntags: [gpu]\nyear: 12345678901234567890123\n---\n# Theta\n",
    "c/Iota.md": "---\ntags: [gpu]\n---\n# Iota\n",
    "d/Kappa.md": '---\ntags: [gpu]\nyear: 2017\n"date of note": 2020-01-02\n---\n# Kappa\nrating:: 5\n',
}

QUERIES = [
    "TABLE year, venue FROM #gpu WHERE year >= 2019 SORT year DESC, file.name LIMIT 20",
    'LIST FROM #gpu WHERE venue = "NeurIPS" OR flag SORT file.name',
    "TABLE rating FROM #gpu WHERE rating > 3 SORT rating DESC",
    "TABLE score FROM #gpu WHERE score < 1 SORT score",
    "TABLE year FROM #gpu WHERE !flag SORT file.path DESC LIMIT 5",
    'TABLE year FROM #gpu WHERE contains(lower(venue), "neur") SORT year',
    "TABLE year FROM #gpu SORT year, file.folder LIMIT 4",
    "TABLE year FROM #gpu WHERE year = null",
    "TABLE year FROM #gpu WHERE date-of-note SORT file.name",
    "TABLE year FROM #gpu WHERE file.link = [[Alpha]] OR year > 2020",
    "TABLE year FROM #gpu WHERE venue = [[Alpha]]",
    'TABLE year FROM #gpu WHERE venue != "ICML" SORT venue, year DESC',
]


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _answer(root, q) -> str:
    with Vault(root) as v:
        try:
            return to_json_text(run_query(v, q))
        except QueryError as exc:
            return f"error: {exc}"


def _both(root, q, monkeypatch):
    monkeypatch.setattr(evaluate, "SCALAR_MIN_PAGES", 0)
    fast = _answer(root, q)
    monkeypatch.setattr(evaluate, "scalar_names", lambda q: None)
    slow = _answer(root, q)
    monkeypatch.undo()
    return fast, slow


@pytest.mark.parametrize("q", QUERIES)
def test_scalar_pages_give_the_whole_page_result(tmp_path, monkeypatch, q):
    _write(tmp_path, NOTES)
    fast, slow = _both(tmp_path, q, monkeypatch)
    again, _ = _both(tmp_path, q, monkeypatch)  # now from the kept values
    assert fast == slow == again


def test_scalar_pages_are_used_and_follow_edits(tmp_path, monkeypatch):
    _write(tmp_path, NOTES)
    monkeypatch.setattr(evaluate, "SCALAR_MIN_PAGES", 0)
    q = "TABLE year FROM #gpu WHERE year >= 2021 SORT year DESC"
    with Vault(tmp_path) as v:
        assert [r.path for r in run_query(v, q).rows] == ["c/Theta.md", "c/Zeta.md", "a/Beta.md"]
        kept = v.connect().execute("SELECT count(*) FROM query_scalars WHERE name = 'year'").fetchone()[0]
        assert kept == len(NOTES)
    _write(tmp_path, {"a/Alpha.md": NOTES["a/Alpha.md"].replace("2019", "2024")})
    (tmp_path / "c/Zeta.md").unlink()
    _write(tmp_path, {"e/New.md": "---\ntags: [gpu]\nyear: 2022\n---\n# New\n"})
    with Vault(tmp_path) as v:
        assert [r.path for r in run_query(v, q).rows] == ["c/Theta.md", "a/Alpha.md", "e/New.md", "a/Beta.md"]


@pytest.mark.parametrize(
    "q, plain",
    [
        ("TABLE x FROM #a WHERE year > 1 SORT file.name", {"year"}),
        ("TABLE x FROM #a WHERE file.size > 1", None),
        ("TABLE x FROM #a WHERE row.year > 1", None),
        ("TABLE x FROM #a WHERE any(tags, (t) => t = 1)", None),
        ("TABLE x FROM #a GROUP BY year", None),
        ("TASK FROM #a WHERE year > 1", None),
        ("TABLE x FROM #a WHERE mystery(year)", None),
        ("TABLE x FROM #a WHERE length(claims) > 0", None),
        ("TABLE x FROM #a WHERE this.year = year LIMIT 3", {"year"}),
    ],
)
def test_which_queries_run_on_scalar_pages(q, plain):
    from kb.query import parse_query

    assert evaluate.scalar_names(parse_query(q)) == plain


def test_scalar_values_are_not_waited_for_when_another_process_writes(tmp_path, monkeypatch):
    import sqlite3
    import time

    _write(tmp_path, NOTES)
    monkeypatch.setattr(evaluate, "SCALAR_MIN_PAGES", 0)
    q = "TABLE year FROM #gpu WHERE year >= 2021 SORT year DESC"
    with Vault(tmp_path) as v:
        run_query(v, "LIST FROM #gpu")  # index and helper tables ready
        other = sqlite3.connect(v.index_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            start = time.monotonic()
            rows = [r.path for r in run_query(v, q).rows]
            assert time.monotonic() - start < 5
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert rows == ["c/Theta.md", "c/Zeta.md", "a/Beta.md"]
        assert v.connect().execute("PRAGMA busy_timeout").fetchone()[0] > 0  # put back


def test_scalar_tables_are_made_in_an_index_synced_by_older_code(tmp_path, monkeypatch):
    _write(tmp_path, NOTES)
    monkeypatch.setattr(evaluate, "SCALAR_MIN_PAGES", 0)
    q = "TABLE year FROM #gpu WHERE year >= 2021 SORT year DESC"
    with Vault(tmp_path) as v:
        first = [r.path for r in run_query(v, q).rows]
        v.connect().execute("DROP INDEX query_meta_hash")
        v.connect().execute("DROP TABLE query_scalars")
    with Vault(tmp_path) as v:
        assert [r.path for r in run_query(v, q).rows] == first
        names = {r[0] for r in v.connect().execute("SELECT name FROM sqlite_master")}
        assert {"query_scalars", "query_meta_hash"} <= names


def test_a_long_or_chain_runs_on_scalar_pages(tmp_path, monkeypatch):
    _write(tmp_path, NOTES)
    chain = " OR ".join(f"year = {1000 + i}" for i in range(1600)) + " OR year = 2023"
    q = f"LIST FROM #gpu WHERE {chain}"
    fast, slow = _both(tmp_path, q, monkeypatch)
    assert fast == slow and "Zeta" in fast


def test_what_is_kept_as_a_plain_value():
    from kb.query.corpus import _scalar_row, _scalar_value

    for value in (None, True, False, 0, -(2**63), 2**63 - 1, 1.5, -0.0, "", "é", "a\x00b"):
        kind, stored = _scalar_row(value)
        assert kind != "x" and _scalar_value(kind, stored) == value
        assert type(_scalar_value(kind, stored)) is type(value)
    for value in (2**63, float("nan"), float("inf"), "\ud800", [1], {"a": 1}):
        assert _scalar_row(value)[0] == "x"
