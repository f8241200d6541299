"""Read paths on a warm index (claims, DQL query, search): the per-note comparison of
their helper tables with the index is skipped only while the index's walk digest says
nothing changed, and every edit is still seen."""

from __future__ import annotations

from vaultkit import write

from kb.claims import indexed_claims
from kb.query import run_query
from kb.search import search
from kb.vault import Vault


def _claim(cid: str) -> str:
    return f"# N\n\n> [!claim] It holds.\n\n^{cid}\n"


def _traced(vault: Vault) -> list[str]:
    seen: list[str] = []
    vault.connect().set_trace_callback(seen.append)
    return seen


def test_warm_claims_skip_the_hash_comparison_and_still_follow_edits(tmp_path):
    write(tmp_path, {"A.md": _claim("a-one"), "B.md": "# B\n"})
    assert [c["id"] for c in indexed_claims(tmp_path)] == ["a-one"]
    v = Vault(tmp_path)
    seen = _traced(v)
    assert [c["id"] for c in indexed_claims(v)] == ["a-one"]
    assert not any("LEFT JOIN" in s for s in seen)  # nothing changed: no comparison
    v.close()

    write(tmp_path, {"A.md": _claim("a-two")})
    assert [c["id"] for c in indexed_claims(tmp_path)] == ["a-two"]


def test_claims_follow_an_explicit_index_read_without_refresh(tmp_path):
    write(tmp_path, {"A.md": _claim("a-one")})
    assert [c["id"] for c in indexed_claims(tmp_path)] == ["a-one"]
    write(tmp_path, {"A.md": _claim("a-two"), "C.md": _claim("c-one")})
    Vault(tmp_path).index()  # `paperkb index`: the stored walk is dropped with the change
    stale_ok = Vault(tmp_path, refresh=False)
    assert [c["id"] for c in indexed_claims(stale_ok)] == ["a-two", "c-one"]


def test_warm_query_and_search_skip_the_comparison_and_follow_edits(tmp_path):
    write(tmp_path, {"A.md": "---\ntags: [gpu]\nyear: 2020\n---\n# A\nflash kernel\n", "B.md": "# B\n"})

    def table(v: Vault) -> list:
        return run_query(v, "TABLE year FROM #gpu").rows

    def hits(v: Vault) -> list[str]:
        return [h.path for h in search(v, "kernel")]

    assert table(Vault(tmp_path)) and hits(Vault(tmp_path)) == ["A.md"]
    v = Vault(tmp_path)
    seen = _traced(v)
    first = table(v)
    assert hits(v) == ["A.md"]
    assert not any("LEFT JOIN" in s for s in seen)  # nothing changed: no comparison
    v.close()

    write(tmp_path, {"A.md": "---\ntags: [gpu]\nyear: 2021\n---\n# A\nflash\n", "C.md": "# C\nkernel\n"})
    v = Vault(tmp_path)
    assert table(v) != first
    assert hits(v) == ["C.md"]


def test_claims_by_tag_take_the_tag_and_those_below_it_only(tmp_path):
    write(
        tmp_path,
        {
            "A.md": "---\ntags: [ml/gpu]\n---\n" + _claim("a"),
            "B.md": "---\ntags: [ml/gpu/kernels]\n---\n" + _claim("b"),
            "C.md": "---\ntags: [ml/gpu0, ml/gpux, ml]\n---\n" + _claim("c"),
        },
    )
    assert [c["id"] for c in indexed_claims(tmp_path, tag="ml/gpu")] == ["a", "b"]
    assert [c["id"] for c in indexed_claims(tmp_path, tag="ml")] == ["a", "b", "c"]
    assert [c["id"] for c in indexed_claims(tmp_path, tag="ml/gp")] == []


def test_refresh_sees_edits_to_a_linked_note_and_in_a_subfolder(tmp_path):
    import os
    import time

    vault = tmp_path / "vault"
    write(vault, {"A.md": "# A\n", "sub/deep/B.md": "---\nyear: 2020\n---\n# B\n"})
    (vault / "real.md").write_text("---\nyear: 1999\n---\n# Real\n", encoding="utf-8")
    os.symlink(vault / "real.md", vault / "Link.md")

    def years(v: Vault) -> list:
        return [r.values[0] for r in run_query(v, "TABLE year SORT file.name").rows]

    assert years(Vault(vault)) == [None, 2020, 1999, 1999]
    assert years(Vault(vault)) == [None, 2020, 1999, 1999]  # warm: nothing changed
    time.sleep(0.01)
    (vault / "real.md").write_text("---\nyear: 2001\n---\n# Real\n", encoding="utf-8")  # seen through the link too
    (vault / "sub/deep/B.md").write_text("---\nyear: 2021\n---\n# B\n", encoding="utf-8")
    assert years(Vault(vault)) == [None, 2021, 2001, 2001]
    (vault / "sub/deep/B.md").unlink()
    assert years(Vault(vault)) == [None, 2001, 2001]
