"""kb.claims on a warm index: the per-note comparison is skipped only while the index's
walk digest says nothing changed, and every edit is still seen."""

from __future__ import annotations

from vault_files import write

from kb.claims import indexed_claims
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
