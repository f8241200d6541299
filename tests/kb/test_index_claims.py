"""kb.index.claims: the claims of the vault from the index, filtered by note and tag."""

from __future__ import annotations

from vault_files import write

from kb.index import claims
from kb.vault import Vault


def test_claims_with_note_and_tag_filters(tmp_path):
    write(tmp_path, {
        "a/P.md": "---\ntags: [paper/llm]\nclaims:\n  - id: fm-claim\n    statement: From frontmatter\n---\n"
                  "# P\n> [!claim] Scaling helps\n> experiment:: exp/a\n^scaling\n",
        "Q.md": "---\ntags: [papers]\n---\n> [!claim] Q holds\n",
        "R.md": "#paper\nno claims here, only \"claims\": [{ in text\n",
    })
    vault = Vault(tmp_path)
    conn = vault._ensure()
    every = claims(conn)
    assert [(r.path, r.claim.id) for r in every] == [("Q.md", "q-holds"), ("a/P.md", "fm-claim"), ("a/P.md", "scaling")]
    assert every[2].title == "P" and every[2].tags == ["paper/llm"] and every[2].claim.experiments == ["exp/a"]
    # the same claims as the note model has
    assert sorted((p, c.id, c.line) for p, c in vault.claims()) == sorted((r.path, r.claim.id, r.claim.line) for r in every)
    assert [r.claim.id for r in claims(conn, path="a/P.md")] == ["fm-claim", "scaling"]
    # nested tags count, a tag that merely starts the same does not
    assert [r.path for r in claims(conn, tag="#paper")] == ["a/P.md", "a/P.md"]
    assert [r.path for r in claims(conn, tag="Paper/LLM")] == ["a/P.md", "a/P.md"]
    assert [r.path for r in claims(conn, tag="papers")] == ["Q.md"]
    assert claims(conn, tag="nothing") == [] and claims(conn, path="R.md") == []
