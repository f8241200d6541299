"""``FROM csv("file.csv")``: Dataview's CSV source, held to regular .csv files inside the
vault (parse.expression.test.ts::Parse simple sources has the syntax; the reading is ours)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from kb.parse import parse_note
from kb.query import MemoryCorpus, QueryError, execute, render_blocks, to_records
from kb.query import csvsource

BOOKS = "title,Year Read,rating,finished\nDune,2021-03-04,5,true\nEmma,,3.5,false\n\n# a comment line\nUlysses,2019-01-02,2,\n"


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "books.csv").write_text(BOOKS, encoding="utf-8")
    (tmp_path / "Reading.md").write_text("# Reading\n", encoding="utf-8")
    return tmp_path


def corpus_in(root: Path) -> MemoryCorpus:
    return MemoryCorpus([parse_note("# Reading\n", "Reading.md")], root=root)


def test_rows_are_typed_and_keys_sanitised(vault):
    result = execute('TABLE title, year-read, rating, finished FROM csv("data/books.csv") SORT rating DESC',
                     corpus_in(vault))
    assert [r.values for r in result.rows] == [
        ["Dune", dt.datetime(2021, 3, 4), 5, True],
        ["Emma", None, 3.5, False],
        ["Ulysses", dt.datetime(2019, 1, 2), 2, None],
    ]
    assert [r.id for r in result.rows] == ["data/books.csv#0", "data/books.csv#1", "data/books.csv#2"]
    assert to_records(result)[0]["title"] == "Dune"


def test_commands_apply_to_csv_rows(vault):
    result = execute('LIST WITHOUT ID title FROM csv("data/books.csv") WHERE rating >= 3 GROUP BY finished',
                     corpus_in(vault))
    assert [r.id for r in result.rows] == [False, True]


def test_relative_to_the_note_holding_the_query(vault):
    (vault / "data" / "Shelf.md").write_text("x\n", encoding="utf-8")
    corpus = MemoryCorpus([parse_note("x\n", "data/Shelf.md")], root=vault)
    page = corpus.pages(["data/Shelf.md"])[0]
    out = render_blocks('```dataview\nLIST title FROM csv("books.csv")\n```\n', corpus, page)
    assert "Dune" in out and "Ulysses" in out


@pytest.mark.parametrize("name, message", [
    ("../outside.csv", "outside the vault"),
    ("/etc/passwd.csv", "no such file in the vault"),
    ("data/missing.csv", "no such file in the vault"),
    ("data/books.txt", "only .csv files"),
    ("link.csv", "outside the vault"),
    ("fifo.csv", "not a regular file"),
    ("folder.csv", "not a regular file"),
])
def test_only_regular_csv_files_inside_the_vault(vault, name, message):
    (vault.parent / "outside.csv").write_text("a\n1\n", encoding="utf-8")
    (vault / "link.csv").symlink_to(vault.parent / "outside.csv")
    (vault / "data" / "books.txt").write_text(BOOKS, encoding="utf-8")
    (vault / "folder.csv").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(vault / "fifo.csv")
    elif name == "fifo.csv":
        pytest.skip("no FIFOs here")
    with pytest.raises(QueryError, match=message):
        execute(f'LIST FROM csv("{name}")', corpus_in(vault))


def test_size_and_row_limits(vault, monkeypatch):
    monkeypatch.setattr(csvsource, "MAX_CSV_BYTES", 20)
    with pytest.raises(QueryError, match="over the 20-byte limit"):
        execute('LIST FROM csv("data/books.csv")', corpus_in(vault))
    monkeypatch.undo()
    from kb.query.limits import Limits

    with pytest.raises(QueryError, match="row limit"):
        execute('LIST FROM csv("data/books.csv")', corpus_in(vault), limits=Limits(max_rows=2))


def test_csv_cannot_be_combined_or_used_without_a_vault(vault):
    with pytest.raises(QueryError, match="must be the whole FROM"):
        execute('LIST FROM csv("data/books.csv") or #x', corpus_in(vault))
    with pytest.raises(QueryError, match="no vault folder"):
        execute('LIST FROM csv("data/books.csv")', MemoryCorpus([]))
    with pytest.raises(QueryError, match="TASK cannot read a CSV"):
        execute('TASK FROM csv("data/books.csv")', corpus_in(vault))


def test_csv_from_the_command_line(vault):
    from typer.testing import CliRunner

    from cli.app import app

    r = CliRunner().invoke(app, ["--vault", str(vault), "query", "-f", "csv",
                                 'TABLE WITHOUT ID title, rating FROM csv("data/books.csv") WHERE finished'])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["path,title,rating", "data/books.csv#0,Dune,5"]
    r = CliRunner().invoke(app, ["--vault", str(vault), "query", 'LIST FROM csv("../x.csv")'])
    assert r.exit_code == 1 and r.output.strip() == 'error: csv("../x.csv"): outside the vault'
