"""Light notes (kb.publish.selection): decoded by msgspec, they equal what SQLite's
json_extract gives for the same stored notes."""

from __future__ import annotations

from vaultkit import write

from kb.publish.selection import _light_fields, light_notes
from kb.vault import Vault


def test_light_fields_equal_sqlite_json_extract(tmp_path):
    write(tmp_path, {
        "a.md": "---\ntype: article\ncitekey: kA\ndoi: 10.1/x\nyear: 2020\n---\n# A\n",
        "b.md": "---\ntype: {kind: nested, n: [1, 2.5]}\npaperkb-export: null\n---\n# B\n",
        "c.md": "---\ntype: [x, y]\npaperkb-export: true\n---\n# C\n",
        "d.md": "---\ntype: true\nyear: two thousand\n---\n# D\n",
        "e.md": "---\ntype: 3.25\n---\nno heading, Ünïcode ✓\n",
        "f.md": "",
    })
    vault = Vault(tmp_path)
    conn = vault.ensure_index()
    rows = conn.execute(
        "SELECT path, CAST(data AS BLOB), json_extract(data, '$.title'), json_extract(data, '$.citekey'), "
        "json_extract(data, '$.doi'), json_extract(data, '$.year'), json_extract(data, '$.frontmatter.type'), "
        "json_type(data, '$.frontmatter.\"paperkb-export\"') FROM notes ORDER BY path"
    ).fetchall()
    assert len(rows) == 6
    for path, data, title, citekey, doi, year, kind, marker in rows:
        assert _light_fields(data) == (title, citekey, doi, year, kind, marker is not None), path
    notes = {n.path: n for n in light_notes(vault)}
    assert notes["a.md"].frontmatter == {"type": "article"} and notes["a.md"].year == 2020
    assert "paperkb-export" in notes["b.md"].frontmatter and "paperkb-export" in notes["c.md"].frontmatter
    assert "paperkb-export" not in notes["d.md"].frontmatter


def test_light_fields_of_a_note_the_typed_decoder_refuses():
    # NaN is not JSON: the general parser takes it; a frontmatter that is not a mapping is ignored
    assert _light_fields(b'{"title": "T", "year": NaN, "frontmatter": {"type": "x"}}')[:1] == ("T",)
    assert _light_fields(b'{"title": "T", "frontmatter": [1]}') == ("T", None, None, None, None, False)
