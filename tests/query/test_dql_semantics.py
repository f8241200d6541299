"""Query semantics on a small hand-built vault; expected results worked out by hand from
Dataview's documentation (query types, data commands, sources, implicit fields)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from kb.model import Claim, InlineField, Link as NoteLink, Note, Question, Task
from kb.query import MemoryCorpus, QueryError, execute, render_blocks, to_csv, to_markdown, to_records
from kb.query.values import Duration, Link

NOW = dt.datetime(2024, 3, 15, 9, 0)


def wl(target: str, line: int = 10) -> NoteLink:
    return NoteLink(target=target, kind="wikilink", line=line)


def make_vault() -> MemoryCorpus:
    notes = [
        Note(path="Books/Dune.md", tags=["book", "scifi/classic"],
             frontmatter={"author": "Frank Herbert", "rating": 9, "published": "1965-08-01",
                          "genres": ["scifi", "classic"], "DOI": "10.1/dune"},
             inline_fields=[InlineField("Status", "read", 8)],
             links=[wl("Frank Herbert")], mtime=1_700_000_000.0, ctime=1_600_000_000.0, size=120),
        Note(path="Books/Foundation.md", tags=["book", "scifi"],
             frontmatter={"author": "Isaac Asimov", "rating": 8, "published": "1951-05-01", "genres": ["scifi"]},
             tasks=[Task("Reread [due:: 2024-01-01]", " ", False, 7), Task("Buy", "x", True, 8)]),
        Note(path="Books/Emma.md", tags=["book", "romance"],
             frontmatter={"author": "Jane Austen", "rating": 7, "published": "1815-12-23"},
             tasks=[Task("Lend to Ann", " ", False, 5)]),
        Note(path="Authors/Frank Herbert.md", tags=["author"], links=[wl("Dune")],
             citekey="herbert1965", aliases=["F. Herbert"]),
        Note(path="Daily/2024-03-14.md", tags=["daily"],
             inline_fields=[InlineField("Mood", "good", 3), InlineField("Time Spent", "2 hours", 4),
                            InlineField("read", "[[Dune]]", 5), InlineField("read", "[[Emma]]", 6)],
             links=[wl("Dune"), wl("Foundation"), wl("https://example.org")]),
        Note(path="Inbox.md",
             claims=[Claim("c1", "Dune is long", ["exp1"], 3)],
             questions=[Question("Why?", "Because.", True, 5)]),
    ]
    return MemoryCorpus(notes)


@pytest.fixture
def vault() -> MemoryCorpus:
    return make_vault()


def paths(result) -> list[str]:
    return [r.path for r in result.rows]


def run(vault, q, **kw):
    return execute(q, vault, now=NOW, **kw)


# ---- FROM ------------------------------------------------------------------------------

@pytest.mark.parametrize("source,expected", [
    ("#book", ["Books/Dune.md", "Books/Emma.md", "Books/Foundation.md"]),
    ("#scifi", ["Books/Dune.md", "Books/Foundation.md"]),  # subtags included
    ("#scifi/classic", ["Books/Dune.md"]),
    ("#SciFi", ["Books/Dune.md", "Books/Foundation.md"]),  # tags compare case-insensitively
    ('"Books"', ["Books/Dune.md", "Books/Emma.md", "Books/Foundation.md"]),
    ('"Books/Dune"', ["Books/Dune.md"]),
    ('"Book"', []),  # a folder, not a prefix
    ("[[Dune]]", ["Authors/Frank Herbert.md", "Daily/2024-03-14.md"]),  # notes linking to Dune
    ("[[herbert1965]]", ["Books/Dune.md"]),  # by citekey
    ("outgoing([[2024-03-14]])", ["Books/Dune.md", "Books/Foundation.md"]),
    ("#book and -#scifi", ["Books/Emma.md"]),
    ("#author or #daily", ["Authors/Frank Herbert.md", "Daily/2024-03-14.md"]),
    ('!"Books" and !#daily', ["Authors/Frank Herbert.md", "Inbox.md"]),
    ('(#scifi or #romance) and -outgoing([[2024-03-14]])', ["Books/Emma.md"]),
    ("-[[2024-03-14]] and #book", ["Books/Dune.md", "Books/Emma.md", "Books/Foundation.md"]),
])
def test_from_sources(vault, source, expected):
    assert paths(run(vault, f"LIST FROM {source}")) == expected


def test_no_from_means_every_note(vault):
    assert len(run(vault, "LIST").rows) == 6


# ---- WHERE / SORT / LIMIT ----------------------------------------------------------------

def test_where_sort_limit(vault):
    r = run(vault, "TABLE rating FROM #book WHERE rating > 7 SORT rating DESC")
    assert paths(r) == ["Books/Dune.md", "Books/Foundation.md"]
    assert [row.values for row in r.rows] == [[9], [8]]
    assert paths(run(vault, "LIST FROM #book SORT published")) == [
        "Books/Emma.md", "Books/Foundation.md", "Books/Dune.md"]  # frontmatter dates compare as dates
    assert len(run(vault, "LIST FROM #book SORT rating LIMIT 2").rows) == 2


def test_sort_puts_nulls_first_and_is_stable_over_keys(vault):
    r = run(vault, "LIST FROM #book SORT genres ASC, file.name DESC")
    assert paths(r)[0] == "Books/Emma.md"  # no genres: null sorts first
    assert paths(run(vault, "LIST SORT rating DESC, file.name"))[:3] == [
        "Books/Dune.md", "Books/Foundation.md", "Books/Emma.md"]


def test_null_fields_in_where(vault):
    assert paths(run(vault, 'LIST WHERE contains(genres, "classic")')) == ["Books/Dune.md"]
    assert paths(run(vault, "LIST FROM #book WHERE !genres")) == ["Books/Emma.md"]
    assert len(run(vault, "LIST WHERE rating > 0").rows) == 3  # null > 0 is false


def test_commands_apply_in_sequence(vault):
    # LIMIT before SORT keeps the first two by path, then sorts those two
    r = run(vault, "LIST FROM #book LIMIT 2 SORT rating DESC")
    assert paths(r) == ["Books/Dune.md", "Books/Emma.md"]


# ---- fields ------------------------------------------------------------------------------

def test_file_fields(vault):
    r = run(vault, "TABLE file.name, file.folder, file.ext, file.size, file.tags, file.etags, file.link "
                   'FROM "Books/Dune"')
    name, folder, ext, size, tags, etags, link = r.rows[0].values
    assert (name, folder, ext, size) == ("Dune", "Books", "md", 120)
    assert tags == ["#book", "#scifi", "#scifi/classic"]  # each level of a nested tag
    assert etags == ["#book", "#scifi/classic"]  # explicit tags only
    assert link == Link("Books/Dune.md")
    r = run(vault, 'TABLE file.mtime, file.mday, file.cday FROM "Books/Dune"')
    mtime, mday, cday = r.rows[0].values
    assert mtime == dt.datetime.fromtimestamp(1_700_000_000)
    assert mday == mtime.replace(hour=0, minute=0, second=0, microsecond=0)
    assert cday.year == dt.datetime.fromtimestamp(1_600_000_000).year


def test_inlinks_outlinks_aliases_day(vault):
    r = run(vault, 'TABLE file.inlinks, file.outlinks, file.aliases FROM "Authors"')
    inlinks, outlinks, aliases = r.rows[0].values
    assert inlinks == [Link("Books/Dune.md")]
    assert outlinks == [Link("Books/Dune.md")]
    assert aliases == ["F. Herbert"]
    r = run(vault, 'TABLE file.day, file.outlinks FROM "Daily"')
    day, outlinks = r.rows[0].values
    assert day == dt.datetime(2024, 3, 14)
    assert outlinks == [Link("Books/Dune.md"), Link("Books/Foundation.md")]  # no URLs
    assert paths(run(vault, "LIST WHERE file.day = date(2024-03-14)")) == ["Daily/2024-03-14.md"]
    assert paths(run(vault, "LIST WHERE file.day")) == ["Daily/2024-03-14.md"]


def test_inline_fields_typed_and_sanitised(vault):
    r = run(vault, 'TABLE mood, time-spent, row["Time Spent"], read, Status FROM "Daily" or "Books/Dune"')
    daily = next(x for x in r.rows if x.path.startswith("Daily"))
    assert daily.values[:3] == ["good", Duration(0, 7200.0), Duration(0, 7200.0)]
    assert daily.values[3] == [Link("Books/Dune.md"), Link("Books/Emma.md")]  # repeated key: a list
    dune = next(x for x in r.rows if x.path.startswith("Books"))
    assert dune.values[4] == "read"
    assert paths(run(vault, 'LIST WHERE status = "read"')) == ["Books/Dune.md"]  # sanitised key


def test_frontmatter_keys_in_written_and_lower_case(vault):
    r = run(vault, 'TABLE DOI, doi FROM "Books/Dune"')
    assert r.rows[0].values == ["10.1/dune", "10.1/dune"]


def test_link_fields_reach_the_linked_note(vault):
    r = run(vault, 'TABLE [[Dune]].rating, file.outlinks.rating, read.author FROM "Daily"')
    assert r.rows[0].values == [9, [9, 8], ["Frank Herbert", "Jane Austen"]]


def test_our_fields_claims_and_questions(vault):
    r = run(vault, 'TABLE claims.id, claims.status, questions.answered FROM "Inbox"')
    assert r.rows[0].values == [["c1"], ["unverified"], [True]]


def test_claim_status_comes_from_the_run_records(tmp_path):
    seen = []

    def fake_statuses(root):
        seen.append(root)
        return {"c1": {"status": "reproduced", "run_id": "r7"}}

    corpus = MemoryCorpus(make_vault()._data.values(), root=tmp_path)
    corpus.status_source = fake_statuses  # kb never imports repro: the caller hands statuses in
    r = run(corpus, 'TABLE claims.status, claims.run_id FROM "Inbox"')
    assert r.rows[0].values == [["reproduced"], ["r7"]]
    assert paths(run(corpus, 'LIST WHERE any(claims, (c) => c.status = "reproduced")')) == ["Inbox.md"]
    assert seen == [tmp_path]  # asked once per query run, not once per page


# ---- GROUP BY / FLATTEN ------------------------------------------------------------------

def test_group_by_rows(vault):
    r = run(vault, "TABLE length(rows) AS n, rows.file.name AS names GROUP BY file.folder")
    assert r.grouped and r.id_header == "key"
    assert [row.id for row in r.rows] == ["", "Authors", "Books", "Daily"]  # groups sorted by key
    books = r.rows[2]
    assert books.values == [3, ["Dune", "Emma", "Foundation"]]
    assert [m.path for m in books.group] == ["Books/Dune.md", "Books/Emma.md", "Books/Foundation.md"]


def test_group_by_with_name_and_sort_on_key(vault):
    r = run(vault, "TABLE sum(rows.rating) AS total FROM #book GROUP BY length(genres) AS ngenres SORT ngenres DESC")
    assert [(row.id, row.values[0]) for row in r.rows] == [(2, 9), (1, 8), (0, 7)]
    assert r.id_header == "ngenres"


def test_flatten_then_group(vault):
    r = run(vault, "LIST rows.file.name FROM #book FLATTEN genres AS g WHERE g GROUP BY g")
    assert [(row.id, row.values[0]) for row in r.rows] == [("classic", ["Dune"]), ("scifi", ["Dune", "Foundation"])]


def test_flatten_a_field_in_place(vault):
    r = run(vault, 'TABLE file.tags FROM "Books/Dune" FLATTEN file.tags')
    assert [row.values[0] for row in r.rows] == ["#book", "#scifi", "#scifi/classic"]
    r = run(vault, 'LIST FROM "Books/Dune" FLATTEN file.tags WHERE file.tags = "#scifi"')
    assert len(r.rows) == 1


def test_flatten_empty_list_drops_the_row_and_null_keeps_it(vault):
    assert len(run(vault, 'LIST FROM #book FLATTEN genres').rows) == 4  # 2 + 1 + Emma's null


# ---- TASK ----------------------------------------------------------------------------------

def test_task_query(vault):
    r = run(vault, "TASK WHERE !completed")
    assert [(row.path, row.task["text"]) for row in r.rows] == [
        ("Books/Emma.md", "Lend to Ann"), ("Books/Foundation.md", "Reread [due:: 2024-01-01]")]
    r = run(vault, "TASK WHERE due AND due < date(2024-06-01)")
    assert [row.task["text"] for row in r.rows] == ["Reread [due:: 2024-01-01]"]
    # as in Dataview, a missing due (null) is less than every date
    assert len(run(vault, "TASK WHERE due < date(2024-06-01)").rows) == 3
    r = run(vault, "TASK FROM #book WHERE rating >= 8")  # page fields reachable from tasks
    assert len(r.rows) == 2
    md = to_markdown(run(vault, "TASK FROM #book"))
    assert "- [x] Buy" in md and "- [ ] Lend to Ann" in md


def test_task_group_by(vault):
    r = run(vault, "TASK GROUP BY completed")
    assert [row.id for row in r.rows] == [False, True]


# ---- this and [[]] ----------------------------------------------------------------------------

def test_this_and_empty_link(vault):
    herbert = vault.page("Authors/Frank Herbert.md")
    assert paths(run(vault, "LIST FROM [[]]", this=herbert)) == ["Books/Dune.md"]
    assert paths(run(vault, "LIST WHERE author = this.file.name", this=herbert)) == ["Books/Dune.md"]
    assert paths(run(vault, "LIST WHERE contains(file.outlinks, [[]])", this=herbert)) == ["Books/Dune.md"]
    with pytest.raises(QueryError, match=r"\[\[\]\]"):
        run(vault, "LIST FROM [[]]")


def test_render_blocks_relative_to_their_note(vault):
    text = ("# Herbert\n\n```dataview\nTABLE rating FROM [[]]\n```\n\nBooks: `= length(this.file.inlinks)`\n\n"
            "```dataview\nLIST WHERE nosuch(1)\n```\n\n```python\nx = 1  # `= not a query`\n```\n")
    out = render_blocks(text, vault, vault.page("Authors/Frank Herbert.md"), now=NOW)
    assert "| File (1) | rating |" in out
    assert "| [[Books/Dune\\|Dune]] | 9 |" in out
    assert "Books: 1" in out
    assert "> [!warning] Dataview query failed: unknown function 'nosuch'" in out
    assert "# `= not a query`" in out  # code blocks are left alone
    assert "```dataview" not in out


# ---- output ---------------------------------------------------------------------------------

def test_json_records(vault):
    recs = to_records(run(vault, 'TABLE rating AS "Score", published FROM #book SORT rating DESC LIMIT 1'))
    assert recs == [{"path": "Books/Dune.md", "Score": 9, "published": "1965-08-01"}]
    recs = to_records(run(vault, 'LIST author FROM #scifi'))
    assert recs == [{"path": "Books/Dune.md", "value": "Frank Herbert"},
                    {"path": "Books/Foundation.md", "value": "Isaac Asimov"}]
    recs = to_records(run(vault, "TABLE length(rows) AS n FROM #book GROUP BY length(genres) > 0"))
    assert recs == [{"key": False, "rows": ["Books/Emma.md"], "n": 1},
                    {"key": True, "rows": ["Books/Dune.md", "Books/Foundation.md"], "n": 2}]
    json.dumps(to_records(run(vault, "TABLE file, file.tasks, claims, file.mtime")))  # always serialisable


def test_markdown_and_csv(vault):
    md = to_markdown(run(vault, "TABLE WITHOUT ID file.name AS Name, rating FROM #scifi SORT rating DESC"))
    assert md == "| Name | rating |\n| --- | --- |\n| Dune | 9 |\n| Foundation | 8 |\n"
    md = to_markdown(run(vault, "LIST FROM #scifi"))
    assert md == "- [[Books/Dune|Dune]]\n- [[Books/Foundation|Foundation]]\n"
    md = to_markdown(run(vault, "LIST rating FROM #scifi"))
    assert md.splitlines()[0] == "- [[Books/Dune|Dune]]: 9"
    md = to_markdown(run(vault, "LIST GROUP BY file.folder"))
    assert "- Books\n    - [[Books/Dune|Dune]]" in md
    csv_text = to_csv(run(vault, "TABLE rating, genres FROM #scifi"))
    assert csv_text.splitlines() == ["path,rating,genres", "Books/Dune.md,9,scifi; classic",
                                     "Books/Foundation.md,8,scifi"]


def test_evaluation_errors_surface_as_query_errors(vault):
    with pytest.raises(QueryError, match="unknown function 'nope'"):
        run(vault, "LIST WHERE nope(rating)")
    with pytest.raises(QueryError, match="LIMIT needs a non-negative number"):
        run(vault, 'LIST LIMIT "x"')
    with pytest.raises(QueryError, match=r"lower\(\) expected string, got number"):
        run(vault, "TABLE lower(rating) FROM #book")
