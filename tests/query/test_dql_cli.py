"""``paperkb query``, ``render`` and ``search`` on a vault written to disk (parsed and
indexed by the real parser and index)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app

NOTES = {
    "papers/Llama 2.md": """---
tags: [paper, llm/open]
aliases: [touvron2023llama]
year: 2023
type: preprint
authors: Hugo Touvron, Louis Martin
---
# Llama 2: Open Foundation and Fine-Tuned Chat Models

Pretrained and fine-tuned chat models from 7B to 70B parameters.
Rating:: 5

- [ ] check the RLHF section
- [x] read the abstract

See [[Attention Is All You Need]].
""",
    "papers/Attention Is All You Need.md": """---
tags: [paper, architecture]
year: 2017
---
# Attention Is All You Need

The Transformer relies entirely on self-attention.
Rating:: 4
""",
    "papers/FlashAttention.md": """---
tags: [paper, systems/gpu]
year: 2022
---
# FlashAttention

IO-aware exact attention with tiling; builds on [[Attention Is All You Need]].
""",
    "Reading list.md": """---
tags: [index]
---
# Reading list

```dataview
TABLE year, rating FROM #paper SORT year DESC
```

Cited here: `= length(this.file.outlinks)`

```dataview
LIST FROM [[]]
```

- [[Llama 2]]
""",
}


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    for rel, text in NOTES.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return tmp_path


def cli(vault: Path, *args: str):
    return CliRunner().invoke(app, ["--vault", str(vault), *args], terminal_width=200)


def test_query_json(vault):
    r = cli(vault, "query", "-f", "json", "TABLE year, rating FROM #paper WHERE year >= 2020 SORT year DESC")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [
        {"path": "papers/Llama 2.md", "year": 2023, "rating": 5},
        {"path": "papers/FlashAttention.md", "year": 2022, "rating": None},
    ]


def test_query_inlinks_and_group_by(vault):
    r = cli(vault, "query", "-f", "json", 'LIST length(file.inlinks) FROM "papers" SORT file.name')
    assert r.exit_code == 0, r.output
    assert [x["value"] for x in json.loads(r.stdout)] == [2, 0, 1]
    r = cli(vault, "query", "-f", "json", "TABLE length(rows) AS n FROM #paper GROUP BY year >= 2020 AS recent")
    assert json.loads(r.stdout) == [
        {"key": False, "rows": ["papers/Attention Is All You Need.md"], "n": 1},
        {"key": True, "rows": ["papers/FlashAttention.md", "papers/Llama 2.md"], "n": 2},
    ]


def test_query_markdown_csv_and_table(vault):
    r = cli(vault, "query", "-f", "markdown", "TABLE WITHOUT ID file.name, year FROM #llm SORT year")
    assert r.stdout == "| file.name | year |\n| --- | --- |\n| Llama 2 | 2023 |\n"
    r = cli(vault, "query", "-f", "csv", "TABLE year FROM #systems/gpu")
    assert r.stdout == "path,year\npapers/FlashAttention.md,2022\n"
    r = cli(vault, "query", "TABLE year FROM #paper SORT year")  # piped: tab-separated, no footer
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == "File\tyear" and len(r.stdout.splitlines()) == 4
    assert "[[papers/FlashAttention|FlashAttention]]\t2022" in r.stdout


def test_query_tasks_and_this(vault):
    r = cli(vault, "query", "-f", "json", "TASK WHERE !completed")
    assert [(t["path"], t["text"]) for t in json.loads(r.stdout)] == [("papers/Llama 2.md", "check the RLHF section")]
    r = cli(vault, "query", "-f", "json", "--this", "Llama 2", "LIST FROM outgoing([[]])")
    assert [x["path"] for x in json.loads(r.stdout)] == ["papers/Attention Is All You Need.md"]


@pytest.mark.parametrize("query,message", [
    ("TABLE year FROM", "error: line 1, column 16: expected a source"),
    ("LIST WHERE frobnicate(year)", "error: unknown function 'frobnicate'"),
    ('TABLE year - "x" FROM #paper', "error: cannot apply '-' to number and string"),
])
def test_bad_queries_give_one_line(vault, query, message):
    r = cli(vault, "query", query)
    assert r.exit_code == 1
    assert r.stderr.strip() == message or r.stderr.startswith(message)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_unknown_format(vault):
    r = cli(vault, "query", "-f", "xml", "LIST")
    assert r.exit_code == 2 and "unknown --format 'xml'" in r.stderr


def test_render_replaces_blocks(vault):
    r = cli(vault, "render", "Reading list")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith("---\ntags: [index]\n---\n# Reading list")
    assert "| File (3) | year | rating |" in out
    assert out.index("Llama 2\\|Llama 2]] | 2023 | 5 |") < out.index("| 2017 | 4 |")
    assert "Cited here: 1" in out
    assert "*No results.*" in out  # nothing links to the reading list
    assert "```dataview" not in out


def test_search(vault):
    r = cli(vault, "search", "-f", "json", "attention")
    hits = json.loads(r.stdout)
    assert hits[0]["path"] == "papers/Attention Is All You Need.md"  # the title match ranks first
    assert len(hits) == 3  # Llama 2 mentions it in a link
    assert "**Attention**" in hits[0]["snippet"]
    r = cli(vault, "search", "-f", "json", "attention", "--tag", "systems")
    assert [h["path"] for h in json.loads(r.stdout)] == ["papers/FlashAttention.md"]
    r = cli(vault, "search", "-f", "json", "attention", "--year", "2017")
    assert [h["path"] for h in json.loads(r.stdout)] == ["papers/Attention Is All You Need.md"]
    r = cli(vault, "search", "-f", "json", "attention", "--limit", "1")
    assert len(json.loads(r.stdout)) == 1
    r = cli(vault, "search", "transformer")
    assert r.exit_code == 0 and "Attention Is All You Need" in r.stdout


def test_search_bad_query_is_one_line(vault):
    r = cli(vault, "search", "attention AND (")
    assert r.exit_code == 1
    assert r.stderr.startswith("error: bad search query 'attention AND ('")
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli(vault, "search", "x", "--year", "soon")
    assert r.exit_code == 1 and "--year 'soon'" in r.stderr
