"""Full-text search (FTS5) and the lazily synced query tables over the real index."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kb.query import IndexCorpus, execute, run_query
from kb.search import SearchError, parse_years, prepare_query, search, sync
from kb.vault import Vault


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    st = p.stat()  # make sure the index sees a change even within one mtime tick
    os.utime(p, (st.st_atime, st.st_mtime + 2))


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    write(tmp_path, "a/Scaling Laws.md", "---\ntags: [paper, scaling]\nyear: 2020\n---\n# Scaling laws\n\n"
          "Loss falls as a power law in compute, data and parameters.\n")
    write(tmp_path, "b/Chinchilla.md", "---\ntags: [paper, scaling/compute]\nyear: 2022\naliases: [hoffmann2022]\n---\n"
          "# Training compute-optimal models\n\nTokens and parameters should grow equally with compute.\n")
    write(tmp_path, "c/Notes.md", "# Misc\n\nA note about gardening and compute budgets for tomatoes.\n")
    return Vault(tmp_path)


def paths(hits) -> list[str]:
    return [h.path for h in hits]


def test_ranking_prefers_title_matches(vault):
    hits = search(vault, "scaling")
    assert paths(hits)[0] == "a/Scaling Laws.md"
    assert hits[0].score <= hits[-1].score  # bm25: lower is better


def test_phrase_prefix_boolean_and_columns(vault):
    assert paths(search(vault, '"power law"')) == ["a/Scaling Laws.md"]
    assert paths(search(vault, '"law power"')) == []
    assert set(paths(search(vault, "param*"))) == {"a/Scaling Laws.md", "b/Chinchilla.md"}
    assert set(paths(search(vault, "compute NOT tomatoes"))) == {"a/Scaling Laws.md", "b/Chinchilla.md"}
    assert paths(search(vault, "gardening OR hoffmann2022")) != []
    assert paths(search(vault, "aliases:hoffmann2022")) == ["b/Chinchilla.md"]
    assert paths(search(vault, "compute-optimal")) == ["b/Chinchilla.md"]  # punctuation: quoted for FTS5


def test_snippet_marks_hits(vault):
    hit = search(vault, "tomatoes")[0]
    assert "**tomatoes**" in hit.marked()


def test_filters(vault):
    assert set(paths(search(vault, "compute", tag="scaling"))) == {"a/Scaling Laws.md", "b/Chinchilla.md"}
    assert paths(search(vault, "compute", tag="#scaling/compute")) == ["b/Chinchilla.md"]
    assert paths(search(vault, "compute", year="2021-")) == ["b/Chinchilla.md"]
    assert paths(search(vault, "compute", year="2020")) == ["a/Scaling Laws.md"]
    assert len(search(vault, "compute", limit=1)) == 1
    assert parse_years("2019..2021") == (2019, 2021) and parse_years("-2019") == (0, 2019)
    with pytest.raises(SearchError):
        parse_years("2023-2020")


def test_bad_queries(vault):
    with pytest.raises(SearchError, match="bad search query"):
        search(vault, "compute AND (")
    with pytest.raises(SearchError, match="empty search"):
        search(vault, "  ")
    with pytest.raises(SearchError, match="no words"):
        search(vault, "-")
    assert prepare_query('GPT-4o "a b" x* title:y-z') == '"GPT-4o" "a b" x* title:"y-z"'


def test_search_tables_follow_the_index_lazily(vault):
    root = vault.root
    assert paths(search(vault, "tomatoes")) == ["c/Notes.md"]
    conn = vault.connect()
    assert sync(conn) == 0  # nothing changed since the last search
    write(root, "c/Notes.md", "# Misc\n\nNow about cucumbers.\n")
    write(root, "d/New.md", "# New\n\ntomatoes again\n")
    (root / "a/Scaling Laws.md").unlink()
    assert paths(search(vault, "tomatoes")) == ["d/New.md"]
    assert paths(search(vault, "cucumbers")) == ["c/Notes.md"]
    assert paths(search(vault, "power")) == []
    assert conn.execute("SELECT count(*) FROM search_docs").fetchone()[0] == 3


def test_query_tables_follow_the_index_lazily(vault):
    root = vault.root
    assert [r.path for r in run_query(vault, "LIST FROM #scaling").rows] == ["a/Scaling Laws.md", "b/Chinchilla.md"]
    write(root, "c/Notes.md", "---\ntags: [scaling/garden]\n---\nLinks to [[Chinchilla]].\n")
    (root / "a/Scaling Laws.md").unlink()
    assert [r.path for r in run_query(vault, "LIST FROM #scaling").rows] == ["b/Chinchilla.md", "c/Notes.md"]
    assert [r.path for r in run_query(vault, "LIST FROM [[hoffmann2022]]").rows] == ["c/Notes.md"]
    corpus = IndexCorpus(vault.connect(), vault.root)
    assert corpus.sync() == 0
    r = execute("TABLE file.inlinks FROM #scaling/compute", corpus)
    assert [str(x) for x in r.rows[0].values[0]] == ["[[c/Notes|Notes]]"]


def test_a_rebuilt_index_redoes_the_derived_tables(vault):
    conn = vault.connect()
    assert paths(search(vault, "tomatoes")) == ["c/Notes.md"]
    IndexCorpus(conn, vault.root)
    # another parser version: same files (same hashes), different data
    with conn:
        conn.execute("UPDATE meta SET value = 'other' WHERE key = 'fingerprint'")
        conn.execute("UPDATE notes SET data = json_set(data, '$.body_text', 'now about radishes', "
                     "'$.tags', json('[\"veg\"]')) WHERE path = 'c/Notes.md'")
    assert sync(conn) == 3
    assert paths(search_only(conn, "radishes")) == ["c/Notes.md"]
    corpus = IndexCorpus(conn, vault.root)
    assert sorted(corpus.tagged("veg")) == ["c/Notes.md"]
    assert corpus.sync() == 0


def search_only(conn, text):
    from kb.search import search_conn

    return search_conn(conn, text)


def helper_tables(conn) -> dict:
    """The derived query/search rows, ids left out (they depend on the order of inserts)."""
    out = {t: sorted(conn.execute(f"SELECT * FROM {t}")) for t in ("query_meta", "query_tags", "query_names",
                                                                       "query_links")}
    out["search_docs"] = sorted(conn.execute("SELECT path, hash, title, year, tags FROM search_docs"))
    out["search_fts"] = sorted(conn.execute(
        "SELECT d.path, f.title, f.aliases, f.authors, f.headings, f.body FROM search_fts AS f "
        "JOIN search_docs AS d ON d.id = f.rowid"))
    return out


def test_incremental_sync_equals_a_fresh_one(vault):
    root = vault.root
    write(root, "e/Links.md", "---\naliases: [linker]\n---\n# Links\n\n[[Scaling Laws]] and [[hoffmann2022]] "
          "and [x](https://example.org)\n")
    for i in range(6):  # enough notes that the edits below are synced incrementally
        write(root, f"g/Filler {i}.md", f"---\ntags: [filler]\n---\nfiller {i} links [[Chinchilla]]\n")
    conn = vault.connect()
    search(vault, "anything")
    IndexCorpus(conn, vault.root)
    # edit, delete, add, then sync incrementally
    write(root, "b/Chinchilla.md", "---\ntags: [paper, scaling/data]\nyear: 2023\naliases: [chinchilla]\n---\n"
          "# Compute-optimal\n\nNow cites [[Links]] and [[e/Links.md]].\n")
    (root / "c/Notes.md").unlink()
    write(root, "f/Fresh.md", "---\ntags: [fresh/one]\n---\n# Fresh\n\nSee [[linker]] and [[missing note]].\n")
    vault.index()
    assert sync(conn) == 3
    assert IndexCorpus(conn, vault.root).sync() == 0  # its constructor synced the same 3
    incremental = helper_tables(conn)
    assert {r[0] for r in incremental["query_meta"]} == {"a/Scaling Laws.md", "b/Chinchilla.md", "e/Links.md",
                                                          "f/Fresh.md"} | {f"g/Filler {i}.md" for i in range(6)}
    # a fresh sync from empty helper tables must give the very same rows
    with conn:
        for t in ("query_meta", "query_tags", "query_names", "query_links", "search_docs", "search_fts"):
            conn.execute(f"DELETE FROM {t}")
    assert IndexCorpus(conn, vault.root).sync() == 0
    assert sync(conn) == 10
    assert helper_tables(conn) == incremental


def test_notes_sqlite_json_cannot_read_are_still_synced(vault):
    # YAML's .nan becomes NaN in the index's JSON, which SQLite's JSON functions reject:
    # the sync falls back to decoding in Python
    write(vault.root, "n/NaN.md", "---\ntags: [odd]\nscore: .nan\n---\n# Not a number\n\nzucchini\n")
    vault.index()
    conn = vault.connect()
    assert "NaN" in conn.execute("SELECT data FROM notes WHERE path = 'n/NaN.md'").fetchone()[0]
    assert paths(search(vault, "zucchini")) == ["n/NaN.md"]
    assert [r.path for r in run_query(vault, "LIST FROM #odd").rows] == ["n/NaN.md"]
    assert len(run_query(vault, "LIST FROM #scaling").rows) == 2


def test_links_read_from_the_note_json_without_the_index_links_table(vault, tmp_path):
    import sqlite3

    write(vault.root, "e/Links.md", "# Links\n\n[[Scaling Laws]], [[hoffmann2022]], [[nowhere]], [x](https://a.org)\n")
    vault.index()
    conn = vault.connect()
    IndexCorpus(conn, vault.root)
    copy = sqlite3.connect(str(tmp_path / "copy.db"), isolation_level=None)
    conn.backup(copy)
    with copy:
        copy.execute("DROP TABLE links")
        copy.execute("DROP TABLE query_links")
        copy.execute("DELETE FROM query_state")
    IndexCorpus(copy, vault.root)
    links = "SELECT path, target FROM query_links ORDER BY 1, 2"
    assert copy.execute(links).fetchall() == conn.execute(links).fetchall()
    assert ("e/Links.md", "b/chinchilla.md") in conn.execute(links).fetchall()


def test_stored_values_decode_as_json_does():
    from kb.search import _loads

    for text in ("18446744073709551616", "[-9223372036854775809, 1]", "NaN", '{"a": "é"}', "null", "2023"):
        assert repr(_loads(text)) == repr(json.loads(text))
