"""Verdicts a reviewer can trust: evidence kinds, scales, controls, overrides, a claim's own
params:: / expect:: / needs::, and the registry's refusal of an experiment without a control."""

from __future__ import annotations

import time

import pytest
from repro_testkit import fake_experiments

from kb.claimspec import ClaimSpecError, expectation_threshold, parse_expect, parse_params
from repro import registry
from repro.registry import Control, Param, Preset, RegistryError, RunContext
from repro.status import (
    CONTRADICTED,
    SMALL_SCALE,
    SMALL_SCALE_PROXY,
    STATUS_ERROR,
    UNVERIFIED,
    ClaimRef,
    claim_statuses,
    normalise_status,
    status_matches,
)
from repro.tracker import FAILED, PASSED, Tracker


def _claim(cid, *exps, **kw):
    return ClaimRef(id=cid, statement=cid, experiments=list(exps), note="A.md", title="A", line=3, **kw)


def _check(passed=True, evidence="direct", scale="smoke", name="c"):
    return {
        "name": name,
        "value": 1.0,
        "op": "<=",
        "threshold": 2.0,
        "passed": passed,
        "evidence": evidence,
        "scale": scale,
        "description": "",
    }


def _run(t, exp, status, *, checks=None, scale="smoke", preset="smoke", **kw):
    run = t.create_run(exp, preset=preset, params={}, scale=scale, **kw)
    t.mark_running(run.id, None)
    verdict = {"passed": "supported", "failed": "contradicted"}.get(status)
    t.finish(run.id, status, verdict=verdict, checks=checks if checks is not None else [_check(status == PASSED)])
    time.sleep(0.002)
    return run.id


# ---- the claim's own fields, parsed as data ----------------------------------------------
def test_params_and_expect_syntax():
    assert parse_params("d_model=768, n_layers=12, tied=true, name='a, b', sizes=[7B, 13B], lr=1e-4") == {
        "d_model": 768,
        "n_layers": 12,
        "tied": True,
        "name": "a, b",
        "sizes": ["7B", "13B"],
        "lr": 1e-4,
    }
    [e] = parse_expect("params_millions ≈ 110 ± 2%")
    assert expectation_threshold(e) == ("between", pytest.approx((107.8, 112.2)))
    a, b = parse_expect("loss < 2.5; acc ~= 0.9 +- 0.01")
    assert expectation_threshold(a) == ("<", 2.5)
    assert expectation_threshold(b) == ("between", pytest.approx((0.89, 0.91)))
    for bad in ("x ≈ 3", "x < 3 ± 1%", "__import__('os') > 1", "x = 3", "x < nan"):
        with pytest.raises(ClaimSpecError):
            parse_expect(bad)
    for bad in ("d_model", "=3", "a=1, a=2", "x" * 3000):
        with pytest.raises(ClaimSpecError):
            parse_params(bad)


def test_claim_fields_in_a_note_and_bad_ones_are_errors_kept_on_the_claim():
    from kb.parse import parse_note

    note = parse_note(
        "# N\n\n> [!claim] BERT-base has about 110M parameters.\n> experiment:: transformer/param-count\n"
        "> params:: d_model=768, n_layers=12\n> expect:: params_millions ≈ 110 ± 2%\n\n^bert\n\n"
        "> [!claim] BLEU 28.4.\n> needs:: the WMT14 data\n\n^bleu\n\n"
        "> [!claim] Broken.\n> params:: d_model\n> expect:: x ≈ 3\n\n^broken\n",
        "N.md",
    )
    bert, bleu, broken = note.claims
    assert bert.params == {"d_model": 768, "n_layers": 12} and bert.expect[0]["metric"] == "params_millions"
    assert bleu.needs == "the WMT14 data" and bleu.experiments == []
    assert broken.params == {} and broken.expect == []
    assert [(p.line, p.severity) for p in note.problems] == [(16, "error"), (17, "error")]
    assert [e.split(":")[0] for e in broken.spec_errors] == ["line 16", "line 17"] and not bert.spec_errors


# ---- evidence and scale ------------------------------------------------------------------
def test_reference_checks_never_count():
    ctx = RunContext({}, scale="smoke")
    ctx.check("torch_sdpa_speedup", 3.0, ">", 1.0, evidence="reference")
    with pytest.raises(RegistryError, match="only reference checks"):
        ctx.result()
    ctx.check("ours", 1.0, "<=", 2.0)
    ctx.check("torch_fails", 0.0, ">", 1.0, evidence="reference")
    assert ctx.result().verdict == "supported"  # a failed reference figure contradicts nothing either


def test_words_from_scale_evidence_controls_overrides_and_needs(tmp_path):
    with Tracker(tmp_path) as t:
        _run(t, "e/full", PASSED, scale="full", preset="full")
        _run(t, "e/proxy", PASSED, checks=[_check(), _check(evidence="proxy", name="p")])
        _run(t, "e/ref-fails", PASSED, checks=[_check(), _check(False, evidence="reference", name="r")])
        ok = _run(t, "e/ctl", PASSED)
        _run(t, "e/ctl", PASSED, control="sabotage")  # the control passed: this check cannot fail
        good = _run(t, "e/good-ctl", PASSED)
        _run(t, "e/good-ctl", FAILED, control="sabotage")
        _run(t, "e/ctl-only", FAILED, control="sabotage")  # a control run decides nothing
        _run(t, "e/over", PASSED)
        _run(t, "e/over", FAILED, overrides={"vocab_size": 32000})  # --param: recorded, decides nothing
        _run(t, "e/spec", FAILED)
        spec = _run(t, "e/spec", PASSED, overrides={"d_model": 768})  # the claim names exactly this value
        t.record_skipped("e/gpu", preset="smoke", needs="a CUDA GPU", reason="e/gpu: needs a CUDA GPU")
        _run(t, "e/gpu-elsewhere", PASSED)  # made on a machine with a GPU, then skipped here
        t.record_skipped("e/gpu-elsewhere", preset="smoke", needs="a CUDA GPU", reason="needs a CUDA GPU")
    claims = [
        _claim("full", "e/full"),
        _claim("proxy", "e/proxy"),
        _claim("ref", "e/ref-fails"),
        _claim("ctl", "e/ctl"),
        _claim("good", "e/good-ctl"),
        _claim("ctl-only", "e/ctl-only"),
        _claim("over", "e/over"),
        _claim("spec", "e/spec", params={"d_model": 768}),
        _claim("plain-spec", "e/spec"),
        _claim("gpu", "e/gpu"),
        _claim("bleu", needs="the WMT14 data"),
        _claim("mixed", "e/full", "e/gpu"),
        _claim("elsewhere", "e/gpu-elsewhere"),
    ]
    st = claim_statuses(tmp_path, claims, experiments=fake_experiments(claims))
    assert {k: v["status"] for k, v in st.items()} == {
        "full": SMALL_SCALE,
        "proxy": SMALL_SCALE_PROXY,
        "ref": SMALL_SCALE,
        "ctl": STATUS_ERROR,  # its own control passed: this check cannot fail here
        "good": SMALL_SCALE,
        "ctl-only": UNVERIFIED,
        "over": SMALL_SCALE,
        "spec": STATUS_ERROR,  # params:: given but no expect:: to judge them
        "plain-spec": CONTRADICTED,
        "gpu": "needs a CUDA GPU",
        "bleu": "needs the WMT14 data",
        "mixed": "needs a CUDA GPU",
        "elsewhere": SMALL_SCALE,
    }
    assert st["ctl"]["run_id"] == ok and st["good"]["run_id"] == good and st["spec"]["run_id"] == spec
    assert st["spec"]["reason"].startswith("params:: given but no expect:: to judge them; e/spec has no parameter")
    assert st["ctl"]["reason"].startswith("this check cannot fail here: control sabotage of e/ctl passed")
    [bad] = st["ctl"]["controls"]
    assert bad["ok"] is False and "cannot fail" in bad["error"] and bad["control"] == "sabotage"
    assert [c["ok"] for c in st["good"]["controls"]] == [True]
    assert {c["evidence"] for c in st["ref"]["checks"]} == {"direct", "reference"}
    assert status_matches("needs a CUDA GPU", normalise_status("needs"))
    assert status_matches(SMALL_SCALE_PROXY, normalise_status("supported"))
    assert not status_matches(STATUS_ERROR, normalise_status("contradicted"))


# ---- the registry refuses an experiment without a control ---------------------------------
def test_registry_refuses_an_experiment_without_control():
    def fn(ctx):
        ctx.check("x", 1.0, "==", 1.0)
        return ctx.result()

    bare = registry.Experiment("test/no-control", "d", fn, presets={"smoke": Preset(), "full": Preset()})
    with pytest.raises(RegistryError, match="declares no negative control"):
        registry.register(bare)
    registry.experiment("test/no-control-decorated", "d")(fn)  # refused as a load error, not a crash
    assert any("test/no-control-decorated" in e and "no negative control" in e for e in registry.load_errors())
    with pytest.raises(RegistryError, match="declares no negative control"):
        registry.get("test/no-control-decorated")


def test_control_reaches_the_experiment_and_expectations_become_checks():
    def fn(ctx):
        ctx.log_metric("params_millions", 50.0 if ctx.control == "halve" else 100.0 + ctx.params["extra"])
        ctx.check("positive", 1.0, ">", 0.0)
        return ctx.result()

    registry.register(
        registry.Experiment(
            "test/expect",
            "d",
            fn,
            params=(Param("extra", float, 0.0),),
            presets={"smoke": Preset(), "full": Preset()},
            controls=(Control("halve", "halves the count"),),
        )
    )
    expect = parse_expect("params_millions ≈ 110 ± 2%")
    assert registry.run_inline("test/expect", expect=expect).verdict == "contradicted"
    res = registry.run_inline("test/expect", expect=expect, extra=10)
    assert res.verdict == "supported" and res.checks[-1].name == "expect params_millions"
    assert registry.run_inline("test/expect", control="halve", expect=expect).verdict == "contradicted"
    with pytest.raises(RegistryError, match="no control 'nope'"):
        registry.run_inline("test/expect", control="nope")
    with pytest.raises(RegistryError, match="did not record"):
        registry.run_inline("test/expect", expect=parse_expect("missing < 1"))


# ---- the runner: targets per claim spec, control runs, exit codes -------------------------
@pytest.mark.usefixtures("repro_env")
def test_targets_split_by_claim_spec_and_controls_expand():
    from kb.errors import PaperkbError
    from repro.runner import RunOptions, controls_exit_code, plan_runs, resolve_targets
    from repro.tracker import Run

    claims = [
        _claim("a", "test/ok"),
        _claim("b", "test/ok"),
        _claim("c", "test/ok", params={"steps": 3}, expect=parse_expect("loss < 1")),
    ]
    targets = resolve_targets([], all_claims=True, claims=claims)
    assert sorted((t.experiment, tuple(t.claims), bool(t.claim_spec)) for t in targets) == [
        ("test/ok", ("a", "b"), False),
        ("test/ok", ("c",), True),
    ]
    planned, _ = plan_runs(targets, RunOptions())
    by_claims = {tuple(p.claims): p for p in planned}
    assert by_claims[("c",)].params["steps"] == 3 and by_claims[("c",)].overrides == {}
    assert by_claims[("a", "b")].params["steps"] == 5
    # only the plain claims ride on a run of the experiment id
    [t] = resolve_targets(["test/ok"], claims=claims)
    assert t.claims == ["a", "b"] and not t.claim_spec
    planned, _ = plan_runs(targets, RunOptions(controls=True))
    # a control runs once per claim spec, under that spec's own params:: and expect::
    got = sorted((p.experiment, p.control, tuple(p.claims), p.params["steps"]) for p in planned)
    assert got == [("test/ok", "break", ("a", "b"), 5), ("test/ok", "break", ("c",), 3)]
    assert {bool(p.claim_spec) for p in planned} == {True, False}
    with pytest.raises(PaperkbError, match="no experiment of this run has that control"):
        plan_runs(targets, RunOptions(control="nope"))
    # a claim that cannot be judged as written never becomes a target: refused by id, skipped with --all
    said = []
    bad = _claim("d", "test/ok", params={"nope": 1}, expect=parse_expect("loss < 1"))
    with pytest.raises(PaperkbError, match="no claim of this vault names"):
        resolve_targets([], all_claims=True, claims=[bad], warn=said.append)
    assert "test/ok has no parameter 'nope' (known: steps, target)" in said[0]
    with pytest.raises(PaperkbError, match="cannot be judged as written"):
        resolve_targets(["d"], claims=[bad])
    runs = [Run("1", "e", "smoke", FAILED), Run("2", "e", "smoke", PASSED)]
    assert controls_exit_code(runs[:1]) == 0 and controls_exit_code(runs) == 1 and controls_exit_code([]) == 1


def test_registered_experiments_have_controls_and_only_paper_presets_reach_paper_scale():
    """With the status rule (only a paper-scale run of direct evidence reproduces), this is
    why `run --all --preset smoke` (or full) can never make a claim "reproduced"."""
    exps = registry.load_all()
    assert exps
    for exp in exps.values():
        assert exp.controls, exp.id
        for name in exp.presets:
            assert (exp.scale_of(name) == "paper") == (name == "paper"), (exp.id, name)


def test_the_run_help_example_is_an_override():
    from cli.run_commands import run_cmd

    # the command whose statuses test_repro_cli checks stay unchanged
    assert "Example: paperkb run transformer-param-count --preset smoke --param vocab_size=32000" in run_cmd.__doc__


def test_a_third_party_experiment_without_control_is_refused_and_its_siblings_load(monkeypatch):
    import importlib.metadata

    def fn(ctx):
        ctx.check("x", 1.0, "==", 1.0)
        return ctx.result()

    presets = {"smoke": Preset(), "full": Preset()}
    good = registry.Experiment("thirdparty/good", "d", fn, presets=presets, controls=(Control("c", "broken"),))
    bad = registry.Experiment("thirdparty/bad", "d", fn, presets=presets)

    class EntryPoint:
        name = "thirdparty"

        def load(self):
            return lambda: [bad, good]

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [EntryPoint()])
    monkeypatch.setattr(registry, "_LOADED", False)
    exps = registry.load_all()
    assert "thirdparty/good" in exps and "thirdparty/bad" not in exps
    assert any(e.startswith("entry point thirdparty:") and "thirdparty/bad" in e for e in registry.load_errors())


def test_claims_come_from_the_index_and_follow_edits(tmp_path):
    from kb.claims import indexed_claims

    (tmp_path / "P.md").write_text(
        "---\ntags: [paper/llm]\ncitekey: p2024\n---\n# P\n\n> [!claim] P holds.\n"
        "> experiment:: e/a\n> params:: n=3\n\n^p-holds\n",
        encoding="utf-8",
    )
    (tmp_path / "Q.md").write_text("# Q\n\n> [!claim] Q holds.\n> needs:: a GPU\n\n^q-holds\n", encoding="utf-8")
    (tmp_path / "R.md").write_text("# R\n\nno claims\n", encoding="utf-8")
    every = indexed_claims(tmp_path)
    assert [(c["id"], c["note"], c["citekey"]) for c in every] == [
        ("p-holds", "P.md", "p2024"),
        ("q-holds", "Q.md", None),
    ]
    assert every[0]["params"] == {"n": 3} and every[1]["needs"] == "a GPU"
    assert [c["id"] for c in indexed_claims(tmp_path, tag="paper")] == ["p-holds"]
    assert [c["id"] for c in indexed_claims(tmp_path, note_path="Q.md")] == ["q-holds"]
    (tmp_path / "Q.md").write_text("# Q\n\n> [!claim] Q changed.\n\n^q-changed\n", encoding="utf-8")
    (tmp_path / "P.md").unlink()
    (tmp_path / "R.md").write_text("# R\n\n> [!claim] R now holds.\n\n^r-holds\n", encoding="utf-8")
    assert [c["id"] for c in indexed_claims(tmp_path)] == ["q-changed", "r-holds"]
