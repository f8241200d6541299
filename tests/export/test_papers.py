"""What is a paper, what it cites (under the vault's citation rule) and who merely mentions it."""

from __future__ import annotations

import pytest
from exportkit import paper
from vaultkit import write

from kb.errors import PaperkbError
from kb.model import Note
from kb.publish.papers import Citations, PaperRule, is_paper, load_rule
from kb.publish.selection import light_notes, select_paths
from kb.vault import Vault


def test_paper_rule_tags_citekey_doi_and_exclusions():
    assert is_paper(Note(path="a.md", tags=["paper"]))
    assert is_paper(Note(path="b.md", citekey="leeA2020"))
    assert is_paper(Note(path="c.md", doi="10.1/x"))
    assert not is_paper(Note(path="d.md", title="Reading list"))
    assert not is_paper(Note(path="e.md", tags=["journal"], doi="10.1/x"))  # excluded kind wins
    assert not is_paper(Note(path="f.md", tags=["paper"], frontmatter={"paperkb-export": "summary"}))
    rule = PaperRule(tags=("article",), citekey=False, doi=False, types=("preprint",))
    assert not is_paper(Note(path="g.md", citekey="leeA2020"), rule)
    assert is_paper(Note(path="h.md", frontmatter={"type": "Preprint"}), rule)


def test_rule_file_is_read_safely_and_errors_name_the_file(tmp_path):
    write(tmp_path, {".paperkb/papers.yaml": "tags: [article]\ndoi: false\n"})
    rule = load_rule(tmp_path)
    assert rule.tags == ("article",) and rule.doi is False and rule.citekey is True
    write(tmp_path, {".paperkb/papers.yaml": "tags: [a\n"})
    with pytest.raises(PaperkbError, match=r"papers\.yaml:\d+: not valid YAML"):
        load_rule(tmp_path)
    write(tmp_path, {".paperkb/papers.yaml": "!!python/object/apply:os.system ['true']\n"})
    with pytest.raises(PaperkbError):
        load_rule(tmp_path)


def test_citations_follow_the_vault_rule_and_mentions_apart(tmp_path):
    write(tmp_path, {
        "A.md": paper("Paper A", "leeA2020", "We build on [[B]] in the text, and on [[ghostKey2019]].\n\n"
                      "## References\n- [[C]]\n- ![[figure.png]]"),
        "B.md": paper("Paper B", "leeB2019"),
        "C.md": paper("Paper C", "leeC2018"),
        "Journal 2026-11-30.md": "---\ntags: [journal]\n---\nRead [[A]] today; also [[B]].\n",
        "Reading list.md": "# Reading list\n- [[A]]\n- [[C]]\n",
        "summary.md": "---\npaperkb-export: summary\n---\n# Reading summary\n[[A]] [[B]]\n",
    })
    vault = Vault(tmp_path)
    c = Citations(light_notes(vault))
    assert c.papers == {"A.md", "B.md", "C.md"}
    # the default rule: only the links under the References heading cite
    assert [(x.key, x.path) for x in c.of("A.md").cites] == [("C.md", "C.md")]
    assert [x.path for x in c.of("A.md").mentions] == ["B.md"]
    assert c.of("C.md").cited_by == ["A.md"] and c.of("B.md").cited_by == []
    assert sorted(c.of("B.md").mentioned_by) == ["A.md", "Journal 2026-11-30.md"]
    assert sorted(c.of("A.md").mentioned_by) == ["Journal 2026-11-30.md", "Reading list.md"]
    assert "summary.md" not in c.notes  # our own export is never read back
    # the graph and `links` read the same mark
    assert {(u, v, k) for u, v, k in vault.graph().out_edges("A.md", keys=True)} >= {
        ("A.md", "C.md", "cites"), ("A.md", "B.md", "mentions")}

    # the user says every link of a paper cites: the index re-reads the notes by itself
    write(tmp_path, {".paperkb/papers.yaml": "citations:\n  anywhere: true\n"})
    vault = Vault(tmp_path)
    c = Citations(light_notes(vault))
    cites = c.of("A.md").cites
    assert [(x.key, x.path) for x in cites] == [("B.md", "B.md"), ("ghostKey2019", None), ("C.md", "C.md")]
    assert c.of("B.md").cited_by == ["A.md"]
    assert sorted(c.of("A.md").mentioned_by) == ["Journal 2026-11-30.md", "Reading list.md"]
    assert "ghost:ghostKey2019" in vault.graph()
    g = c.graph(["B.md"], depth=1)
    assert set(g) == {"A.md", "B.md"}


def test_select_by_name_tag_and_query(tmp_path):
    write(tmp_path, {"A.md": paper("Paper A", "leeA2020", tags="paper, ml/nlp"), "B.md": paper("Paper B", "leeB2019"),
                     "N.md": "plain"})
    vault = Vault(tmp_path)
    assert select_paths(vault) is None
    assert select_paths(vault, ["leeB2019"]) == ["B.md"]
    assert select_paths(vault, tag="ml") == ["A.md"]
    assert select_paths(vault, tag="#ML/nlp") == ["A.md"]
    assert select_paths(vault, query="LIST FROM #paper WHERE year = 2020") == ["A.md", "B.md"]
