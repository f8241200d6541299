"""The parser cases of the port, used in whole queries over notes (what a vault sees)."""

from __future__ import annotations

import datetime as dt

from kb.parse import parse_note
from kb.query import MemoryCorpus, execute

NOTES = {
    "a.md": "---\ntags: [x, y]\n---\n📷:: 3\nvisited:: 2021-08-15T12:40:50[Europe/Paris]\nv3:: \"yes,\"\n",
    "b.md": "---\ntags: [x]\n---\n📷:: 5\nlinks:: [[a]],\n",
    "c.md": "---\ntags: [y]\n---\nnums:: 1, 2, 3\n",
}


def corpus() -> MemoryCorpus:
    return MemoryCorpus([parse_note(text, path) for path, text in NOTES.items()])


def paths(query: str) -> list[str]:
    return [r.path for r in execute(query, corpus()).rows]


def test_ampersand_and_pipe_in_from_and_where():
    assert paths("LIST FROM #x & #y") == ["a.md"]
    assert paths("LIST FROM #x | #y") == ["a.md", "b.md", "c.md"]
    assert paths("LIST FROM #x WHERE 📷 > 2 & 📷 < 4") == ["a.md"]
    assert paths("LIST WHERE 📷 = 5 | nums") == ["b.md", "c.md"]


def test_emoji_fields_chained_calls_and_field_values():
    rows = execute("TABLE 📷, ((a) => (b) => a + b)(📷)(1) AS next, v3, links, nums FROM #x OR #y SORT file.name",
                   corpus()).rows
    values = {r.path: r.values for r in rows}
    assert values["a.md"][:3] == [3, 4, "yes,"]
    assert values["b.md"][3][0].path == "a.md"  # "[[a]]," is a one-item list, resolved
    assert values["c.md"][4] == [1, 2, 3]


def test_zoned_field_keeps_its_zone():
    (row,) = execute('TABLE visited.hour, visited.zoneName, visited = date(2021-08-15T10:40:50Z) FROM "a"',
                     corpus()).rows
    assert row.values == [12, "Europe/Paris", True]
    assert isinstance(execute('LIST visited FROM "a"', corpus()).rows[0].values[0], dt.datetime)
