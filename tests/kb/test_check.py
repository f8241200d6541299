"""``kb.check``: vault problems, broken dataview blocks and the claims/experiments
cross-check (experiments handed in by the caller: ``repro.catalog``)."""

from __future__ import annotations

import pytest

from kb.check import DeclaredExperiment, check, experiment_problems, has_errors
from kb.model import Claim, Note
from kb.vault import Vault
from repro import catalog, registry


def _declared_here(ctx):  # an experiment function for the fake registry entries
    return None


@pytest.fixture
def fake_registry(monkeypatch):
    registry.load_all()
    for exp_id in ("test/known", "test/unused"):
        monkeypatch.setitem(registry._REGISTRY, exp_id, registry.Experiment(exp_id, "demo", _declared_here))
    monkeypatch.setattr(registry, "_LOAD_ERRORS", ["repro.broken.experiments: SyntaxError: bad"])


def test_unknown_and_unused_experiments(fake_registry):
    notes = [Note("p.md", claims=[Claim("c1", "s", ["test/known", "test/missing"], 7), Claim("c2", "t", [], 9)])]
    problems = experiment_problems(notes, catalog.declared_experiments(), catalog.load_errors(), unnamed=True)
    text = [p.format() for p in problems]
    [unknown] = [t for t in text if "unknown experiment" in t]
    assert unknown.startswith("p.md:7: error: claim 'c1' names unknown experiment 'test/missing' (known: ")
    assert "test/known" in unknown and "test/unused" in unknown  # the known ids are listed
    assert any(t.startswith("p.md:9: warning: claim 'c2' names no experiment") for t in text)
    unused = [p for p in problems if "'test/unused' is named by no claim" in p.message]
    assert len(unused) == 1 and unused[0].path == "tests/kb/test_check.py"
    assert unused[0].line == _declared_here.__code__.co_firstlineno
    assert not any("'test/known' is named by no claim" in t for t in text)
    broken = [p for p in problems if "could not be loaded" in p.message]
    assert broken[0].path == "repro/broken/experiments.py" and broken[0].severity == "warning"
    quiet = experiment_problems(notes, catalog.declared_experiments())
    assert not any("is named by no claim" in p.message for p in quiet)  # only when asked (--all)


def test_check_vault_sorted_and_errors(tmp_path, fake_registry):
    (tmp_path / "b.md").write_text("# B\n[[missing]]\n", encoding="utf-8")
    (tmp_path / "a.md").write_bytes(b"# A\n\xff\xfe broken utf-8\n")
    problems = check(Vault(tmp_path), experiments=catalog.declared_experiments())
    vault_part = [p for p in problems if p.path in ("a.md", "b.md")]
    assert [p.path for p in vault_part] == sorted(p.path for p in vault_part)
    assert any(p.path == "b.md" and p.line == 2 and "missing" in p.message for p in vault_part)
    assert any(p.path == "a.md" for p in vault_part)
    assert has_errors(problems) == any(p.severity == "error" for p in problems)
    assert check(Vault(tmp_path), dataview=False) == Vault(tmp_path).problems()


def test_claim_id_shared_by_two_notes(fake_registry):
    notes = [
        Note("a.md", claims=[Claim("same", "s", ["test/known"], 3)]),
        Note("b.md", claims=[Claim("same", "t", ["test/known"], 8)]),
    ]
    text = [p.format() for p in experiment_problems(notes, [DeclaredExperiment("test/known")])]
    assert any(t.startswith("b.md:8: warning: claim id 'same' is also used at a.md:3") for t in text), text


def test_a_vault_without_claims_is_not_buried_in_warnings():
    problems = experiment_problems([Note("a.md")], ["test/known", "test/unused"])
    assert problems == []


def test_broken_dataview_block_is_reported_at_its_fence(tmp_path):
    (tmp_path / "q.md").write_text(
        "# Q\n\n```dataview\nTABLE year FROM\n```\n\n```dataview\nLIST FROM #paper\n```\n", encoding="utf-8"
    )
    problems = [p for p in check(Vault(tmp_path)) if "dataview" in p.message]
    assert [(p.path, p.line, p.severity) for p in problems] == [("q.md", 3, "warning")]
