"""Claim status roll-up from the latest runs (repro.status)."""

from __future__ import annotations

import time

from kb.model import Claim, Note
from repro.status import (
    CONTRADICTED, REPRODUCED, SMALL_SCALE, STATUS_ERROR, UNVERIFIED, ClaimRef, claim_statuses, claims_of_notes,
    status_table,
)
from repro_testkit import fake_experiments
from repro.tracker import ERROR, FAILED, INTERRUPTED, PASSED, TIMEOUT, Tracker


def _claim(cid, *exps, note="papers/A.md"):
    return ClaimRef(id=cid, statement=f"statement {cid}", experiments=list(exps), note=note, title=note, line=3)


def _record(t: Tracker, exp: str, status: str, preset="smoke", overrides=None, scale=None, checks=None, **kw):
    run = t.create_run(exp, preset=preset, params={}, overrides=overrides or {},
                       scale=scale or {"full": "full", "paper": "paper"}.get(preset, "smoke"), **kw)
    t.mark_running(run.id, None)
    verdict = {"passed": "supported", "failed": "contradicted"}.get(status)
    if checks is None and status in (PASSED, FAILED):
        checks = [{"name": "c", "value": 1.0, "op": "<=", "threshold": 2.0, "passed": status == PASSED,
                   "evidence": "direct", "scale": scale or preset, "description": "d"}]
    t.finish(run.id, status, verdict=verdict, checks=checks)
    time.sleep(0.002)  # distinct creation times
    return run.id


def test_no_tracker_means_unverified_and_nothing_created(tmp_path):
    st = claim_statuses(tmp_path, [_claim("c", "e")], experiments=fake_experiments([_claim("c", "e")]))
    assert st["c"]["status"] == UNVERIFIED and st["c"]["checks"] == [] and st["c"]["controls"] == []
    assert not (tmp_path / ".paperkb").exists()


def test_roll_up_words(tmp_path):
    with Tracker(tmp_path) as t:
        paper = _record(t, "e/paper", PASSED, preset="paper")
        _record(t, "e/full", PASSED, preset="full")
        _record(t, "e/smoke", PASSED)
        _record(t, "e/override", PASSED, preset="full", overrides={"n": 3})
        _record(t, "e/fail", PASSED, preset="full")
        fail = _record(t, "e/fail", FAILED)  # the latest run decides
        _record(t, "e/err", TIMEOUT)
        _record(t, "e/int", PASSED)
        _record(t, "e/int", INTERRUPTED)  # says nothing about the claim
        _record(t, "e/only-int", INTERRUPTED)
        _record(t, "e/crash", ERROR)
    claims = [
        _claim("paper", "e/paper"), _claim("full", "e/full"), _claim("smoke", "e/smoke"),
        _claim("override", "e/override"), _claim("fail", "e/fail"), _claim("err", "e/err"), _claim("int", "e/int"),
        _claim("only-int", "e/only-int"), _claim("none", "e/never"), _claim("no-exp"),
        _claim("mixed-fail", "e/full", "e/fail", "e/err"), _claim("mixed-err", "e/full", "e/crash"),
        _claim("mixed-missing", "e/full", "e/never"), _claim("mixed-ok", "e/paper", "e/smoke"),
    ]
    st = claim_statuses(tmp_path, claims, experiments=fake_experiments(claims))
    words = {k: v["status"] for k, v in st.items()}
    assert words == {
        "paper": REPRODUCED, "full": SMALL_SCALE, "smoke": SMALL_SCALE, "override": UNVERIFIED,
        "fail": CONTRADICTED, "err": STATUS_ERROR, "int": SMALL_SCALE, "only-int": UNVERIFIED, "none": UNVERIFIED,
        "no-exp": UNVERIFIED, "mixed-fail": CONTRADICTED, "mixed-err": STATUS_ERROR, "mixed-missing": UNVERIFIED,
        "mixed-ok": SMALL_SCALE,
    }
    assert st["paper"]["run_id"] == paper and st["paper"]["scale"] == "paper"
    assert st["paper"]["verdict"] == "supported" and st["paper"]["ended"].endswith("+00:00")
    assert st["fail"]["run_id"] == fail and st["fail"]["verdict"] == "contradicted"
    assert st["none"]["run_id"] is None and st["none"]["experiments"] == {"e/never": None}
    [check] = st["paper"]["checks"]
    assert set(check) == {"name", "value", "op", "threshold", "scale", "evidence", "run_id", "experiment", "passed",
                          "description", "counts", "seed"}
    assert check["run_id"] == paper and check["scale"] == "paper" and check["evidence"] == "direct"
    assert set(st["paper"]) >= {"status", "run_id", "preset", "scale", "ended", "checks", "controls", "experiments"}


def test_claims_of_hand_built_notes_and_status_table(tmp_path):
    notes = [
        Note(path="papers/A.md", title="Paper A", citekey="a2020",
             claims=[Claim("a1", "A holds", ["e/ok"], 10), Claim("a2", "A2 holds", [], 12)]),
        Note(path="papers/B.md", claims=[Claim("b1", "B holds", ["e/ok", "e/other"], 4)]),
        Note(path="papers/C.md"),
    ]
    refs = claims_of_notes(notes)
    assert [(c.id, c.note, c.title) for c in refs] == [
        ("a1", "papers/A.md", "Paper A"), ("a2", "papers/A.md", "Paper A"), ("b1", "papers/B.md", "B")]
    with Tracker(tmp_path) as t:
        _record(t, "e/ok", PASSED, preset="full")
    table = status_table(tmp_path, refs, experiments=fake_experiments(refs))
    assert [p["note"] for p in table] == ["papers/A.md", "papers/B.md"]
    assert [c["status"] for c in table[0]["claims"]] == [SMALL_SCALE, UNVERIFIED]
    assert table[1]["claims"][0]["status"] == UNVERIFIED  # e/other never ran
