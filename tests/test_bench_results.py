"""bench/RESULTS.md stays readable at a glance: short cells, and every row links to its details."""

from __future__ import annotations

import re

MAX_CELL = 200
COLUMNS = ["area", "target", "figure", "peer in the same run", "date", "met"]


def _cells(line: str) -> list[str]:
    # a `|` inside backticks (none today) would split a cell; the column count check below catches it
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _top_table(text: str) -> tuple[list[str], list[list[str]]]:
    section = text.split("## Targets at a glance\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("|")]
    header, rule, body = rows[0], rows[1], rows[2:]
    assert set(rule.replace("|", "").replace(" ", "")) <= {"-", ":"}, "the table's second line is not its rule"
    return _cells(header), [_cells(ln) for ln in body]


def test_the_table_at_a_glance_has_short_cells_and_links_each_row_to_its_details(repo_root):
    bench = repo_root / "bench"
    header, rows = _top_table((bench / "RESULTS.md").read_text(encoding="utf-8"))
    assert header == COLUMNS
    assert len(rows) >= 20  # the live targets of issues 2-23: the table was found, not an empty one
    for row in rows:
        assert len(row) == len(COLUMNS), row
        long = [c for c in row if len(c) > MAX_CELL]
        assert not long, f"a cell over {MAX_CELL} characters ({len(long[0])}): {long[0][:80]}..."
        links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", " | ".join(row))
        assert links, f"row without a link to its details: {row[:2]}"
        for link in links:
            assert (bench / link).is_file(), f"{row[1]}: its details link {link} names no file"
    areas = [row[0] for row in rows]
    # grouped by area: once an area's rows end, it does not come back further down
    assert all(areas.index(a) == i or areas[i - 1] == a for i, a in enumerate(areas)), areas
