"""The run tracker: SQLite WAL storage, state changes, lookups, heartbeat reaping."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from kb.errors import PaperkbError
from repro.tracker import ERROR, INTERRUPTED, PASSED, QUEUED, RUNNING, Tracker


def _new(tracker: Tracker, experiment="test/ok", **kw):
    kw.setdefault("preset", "smoke")
    kw.setdefault("params", {"steps": 5})
    return tracker.create_run(experiment, **kw)


def test_open_existing_creates_nothing(tmp_path):
    assert Tracker.open_existing(tmp_path) is None
    assert not (tmp_path / ".paperkb").exists()


def test_run_lifecycle_round_trips(tmp_path):
    with Tracker(tmp_path) as t:
        assert t.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        run = _new(t, claims=["c1", "c2"], seed=3, overrides={"steps": 5}, environment={"git": {"commit": "abc"}})
        assert t.get(run.id).status == QUEUED
        assert t.run_dir(run.id).is_dir()
        t.mark_running(run.id, child_pid=12345)
        t.add_metrics(run.id, [{"name": "loss", "value": 2.0, "step": 0, "time": 0.1},
                               {"name": "loss", "value": 1.0, "step": 1, "time": 0.2}])
        t.update_environment(run.id, {"torch": {"version": "x"}})
        checks = [{"name": "final", "value": 1.0, "op": "<=", "threshold": 1.5, "passed": True}]
        t.finish(run.id, PASSED, verdict="supported", checks=checks, summary="ok")
        got = t.get(run.id)
    assert got.status == PASSED and got.verdict == "supported" and got.checks == checks
    assert got.claims == ["c1", "c2"] and got.seed == 3 and got.overrides == {"steps": 5}
    assert got.environment == {"git": {"commit": "abc"}, "torch": {"version": "x"}}
    assert got.child_pid == 12345 and got.started and got.ended >= got.started
    d = got.to_dict()
    assert d["ended"].endswith("+00:00") and d["duration_s"] >= 0
    with Tracker(tmp_path) as t:
        assert [m["value"] for m in t.metrics(run.id)] == [2.0, 1.0]
        assert t.final_metrics(run.id) == {"loss": 1.0}
        assert t.integrity_check() == "ok"


def test_get_by_prefix_and_errors(tmp_path):
    with Tracker(tmp_path) as t:
        a = _new(t)
        b = _new(t)
        t.conn.execute("UPDATE runs SET id='20260101-000000-aaaa01' WHERE id=?", (a.id,))
        t.conn.execute("UPDATE runs SET id='20260101-000000-bbbb02' WHERE id=?", (b.id,))
        assert t.get("20260101-000000-aaaa01").id == "20260101-000000-aaaa01"
        assert t.get("20260101-000000-a").id == "20260101-000000-aaaa01"
        assert t.get("20260101-000000-b").id == "20260101-000000-bbbb02"
        with pytest.raises(PaperkbError, match="ambiguous"):
            t.get("20260101-000000-")
        with pytest.raises(PaperkbError, match="no run"):
            t.get("2026%")  # LIKE wildcards are taken literally
        with pytest.raises(PaperkbError, match="no run 'nope'"):
            t.get("nope")


def test_filters(tmp_path):
    with Tracker(tmp_path) as t:
        a = _new(t, claims=["c1"])
        b = _new(t, experiment="test/raise", claims=["c2"])
        t.mark_running(b.id, None)
        t.finish(b.id, ERROR, error="Traceback ...")
        assert [r.id for r in t.runs(claim="c1")] == [a.id]
        assert [r.id for r in t.runs(experiment="test/raise")] == [b.id]
        assert [r.id for r in t.runs(status=ERROR)] == [b.id]
        assert len(t.runs()) == 2 and len(t.runs(limit=1)) == 1
        assert t.runs()[0].id == b.id  # newest first


def test_finish_rejects_non_final_status(tmp_path):
    with Tracker(tmp_path) as t:
        run = _new(t)
        with pytest.raises(ValueError):
            t.finish(run.id, RUNNING)


def test_reap_marks_runs_of_dead_or_silent_watchers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Tracker(tmp_path) as t:
        orphan = _new(t)
        t.mark_running(orphan.id, None)
        t.conn.execute("UPDATE runs SET pid=? WHERE id=?", (dead.pid, orphan.id))
        silent = _new(t)
        t.mark_running(silent.id, None)
        t.conn.execute("UPDATE runs SET host='elsewhere', heartbeat=? WHERE id=?", (time.time() - 3600, silent.id))
        beating = _new(t)
        t.mark_running(beating.id, None)
        t.conn.execute("UPDATE runs SET host='elsewhere' WHERE id=?", (beating.id,))
        alive = _new(t)
        t.mark_running(alive.id, None)
        t.conn.execute("UPDATE runs SET pid=? WHERE id=?", (os.getppid(), alive.id))
        done = _new(t)
        t.mark_running(done.id, None)
        t.finish(done.id, PASSED, verdict="supported")
        t.conn.execute("UPDATE runs SET pid=? WHERE id=?", (dead.pid, done.id))
        reaped = t.reap_stale()
        assert sorted(reaped) == sorted([orphan.id, silent.id])
        assert t.get(orphan.id).status == INTERRUPTED and "gone" in t.get(orphan.id).error
        assert "heartbeat" in t.get(silent.id).error
        assert t.get(alive.id).status == RUNNING and t.get(beating.id).status == RUNNING
        assert t.get(done.id).status == PASSED
        assert t.reap_stale() == []


def _writer(root: str, n: int, barrier) -> None:
    t = Tracker(root)
    run = t.create_run("test/ok", preset="smoke", params={})
    t.mark_running(run.id, None)
    barrier.wait()
    for i in range(n):
        t.add_metrics(run.id, [{"name": "loss", "value": float(i), "step": i}])
    t.finish(run.id, PASSED, verdict="supported")
    t.close()


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 150, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Tracker(tmp_path) as t:
        runs = t.runs()
        assert len(runs) == 2 and all(r.status == PASSED for r in runs)
        for r in runs:
            assert [m["value"] for m in t.metrics(r.id)] == [float(i) for i in range(150)]
        assert t.integrity_check() == "ok"


def _open_fresh_trackers(root: str, rounds: int, barrier, failures) -> None:
    for i in range(rounds):
        barrier.wait()  # every process opens the same new runs.db at the same moment
        try:
            Tracker(os.path.join(root, str(i))).close()
        except Exception as exc:
            failures.put(f"round {i}: {exc}")


def test_processes_creating_the_tracker_at_once_all_open_it(tmp_path):
    # the WAL switch of a new runs.db answered "database is locked" at once to the loser of
    # the race (~30% of pairs) instead of waiting on busy_timeout
    ctx = multiprocessing.get_context("spawn")
    barrier, failures = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_open_fresh_trackers, args=(str(tmp_path), 15, barrier, failures)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert failures.empty(), failures.get()
    for i in range(15):
        with Tracker(tmp_path / str(i)) as t:
            assert t.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert t.integrity_check() == "ok"


def test_last_metric_values_keeps_the_last_point_of_each_metric_and_rank():
    from repro.tracker import last_metric_values

    metrics = [
        {"name": "loss", "value": 3.0, "step": 0, "rank": 0},
        {"name": "loss", "value": 2.0, "step": 1, "rank": 0},
        {"name": "loss", "value": 2.5, "step": 1, "rank": 1},
    ]
    assert [(m["name"], m["rank"], m["value"], m["points"]) for m in last_metric_values(metrics)] == [
        ("loss", 0, 2.0, 2), ("loss", 1, 2.5, 1)
    ]
