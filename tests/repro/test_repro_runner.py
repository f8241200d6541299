"""The run launcher: targets, refusals before anything runs, child processes and their failures."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from repro_testkit import paperkb, pid_alive, rows, wait_for

from kb.errors import NoteNotFound, PaperkbError, UsageError
from repro.runner import RunOptions, Target, execute, exit_code, plan, resolve_targets
from repro.status import ClaimRef
from repro.tracker import ERROR, FAILED, INTERRUPTED, PASSED, TIMEOUT, Tracker


class _NoCuda:
    cuda = {"available": False, "count": 0, "memory_gb": []}


class _SmallGpu:
    cuda = {"available": True, "count": 1, "memory_gb": [16.0]}


def _claims():
    return [
        ClaimRef("c-ok", "ok holds", ["test/ok"], "papers/A.md", "A", 5),
        ClaimRef("c-both", "both hold", ["test/ok", "test/raise"], "papers/A.md", "A", 9),
        ClaimRef("c-unknown", "nobody measures this", ["test/missing"], "papers/B.md", "B", 3),
    ]


class _Note:
    def __init__(self, path):
        self.path = path


def _lookup(name):
    notes = {"A": _Note("papers/A.md"), "B": _Note("papers/B.md")}
    if name not in notes:
        # the message words its hint unlike the runner expects: suggestions come from the field
        raise NoteNotFound(f"no note {name!r}", suggestions=[n for n in notes if n.lower() == name.lower()])
    return notes[name]


# ---- targets ---------------------------------------------------------------------------
def test_targets_from_experiment_claim_note_and_all(repro_env):
    claims = _claims()
    by_exp = resolve_targets(["test/ok"], claims=claims)
    assert [(t.experiment, t.claims) for t in by_exp] == [("test/ok", ["c-ok", "c-both"])]
    by_claim = resolve_targets(["c-both"], claims=claims)
    assert [(t.experiment, t.claims) for t in by_claim] == [("test/ok", ["c-both"]), ("test/raise", ["c-both"])]
    warnings = []
    by_note = resolve_targets(["A"], claims=claims, notes_lookup=_lookup, warn=warnings.append)
    assert [(t.experiment, t.claims) for t in by_note] == [("test/ok", ["c-ok", "c-both"]),
                                                           ("test/raise", ["c-both"])]
    everything = resolve_targets([], all_claims=True, claims=claims, warn=warnings.append)
    assert [t.experiment for t in everything] == ["test/ok", "test/raise"]
    assert any("test/missing" in w for w in warnings)


def test_bad_targets_are_refused(repro_env):
    claims = _claims()
    with pytest.raises(PaperkbError, match="unknown experiment 'test/missing'"):
        resolve_targets(["c-unknown"], claims=claims)
    with pytest.raises(PaperkbError, match="not an experiment id, a claim id or a note"):
        resolve_targets(["nothing-like-this"], claims=claims, notes_lookup=_lookup)
    with pytest.raises(PaperkbError, match="no claim of 'papers/B.md' names a registered experiment"):
        resolve_targets(["B"], claims=claims, notes_lookup=_lookup)


def test_unknown_or_missing_targets_are_usage_errors_with_suggestions(repro_env):
    claims = _claims()
    with pytest.raises(UsageError, match="name what to run") as bare:
        resolve_targets([], claims=claims)
    assert bare.value.exit_code == 2
    with pytest.raises(UsageError) as unknown:
        resolve_targets(["a"], claims=claims, notes_lookup=_lookup)
    assert unknown.value.exit_code == 2
    assert "A" in unknown.value.suggestions and "the note A" in str(unknown.value)
    with pytest.raises(UsageError) as close:
        resolve_targets(["c-okk"], claims=claims, notes_lookup=_lookup)
    assert close.value.suggestions[0] == "c-ok"


# ---- plan: refusals before anything runs ----------------------------------------------
def _plan(exp="test/ok", machine=_NoCuda(), **kw):
    return plan([Target(exp)], RunOptions(**kw), machine=machine)


def test_plan_resolves_params_and_presets(repro_env):
    [p] = _plan(params=["steps=3"], seed=4, timeout_s=9)
    assert p.params == {"steps": 3, "target": 1.0} and p.overrides == {"steps": 3}
    assert (p.device, p.seed, p.timeout_s, p.nproc) == ("cpu", 4, 9, 1)
    [full] = _plan(preset="full")
    assert full.params["steps"] == 8
    [dist] = _plan("test/allreduce")
    assert dist.nproc == 2  # the preset asks for two processes


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"params": ["steps"]}, "--param expects NAME=VALUE"),
        ({"params": ["nope=1"]}, "--param nope: no experiment of this run has that parameter"),
        ({"params": ["steps=many"]}, "parameter 'steps' expects int, got 'many'"),
        ({"device": "cuda"}, "--device cuda was given and none is available"),
        ({"device": "tpu"}, "--device must be auto, cpu or cuda"),
        ({"preset": "huge"}, "--preset must be one of smoke, full"),
        ({"nproc": 0}, "--nproc must be at least 1"),
        ({"nnodes": 2}, "--nnodes > 1 needs --rdzv-endpoint"),
        ({"timeout_s": -1}, "--timeout must be a positive number of seconds"),
        ({"timeout_s": float("nan")}, "--timeout must be a positive number of seconds"),
    ],
)
def test_plan_refuses_bad_options(repro_env, kw, message):
    with pytest.raises(PaperkbError, match=message.replace("(", r"\(").replace("'", "'")) as refusal:
        _plan(**kw)
    # a bad command line exits 2; a machine lacking a GPU is no usage error
    assert refusal.value.exit_code == (1 if kw == {"device": "cuda"} else 2)


def test_log_monitor_prints_starts_finishes_and_sparse_progress():
    import io
    from types import SimpleNamespace

    from repro.runner import LogMonitor

    now = [0.0]
    out = io.StringIO()
    log = LogMonitor(out, every_s=10, clock=lambda: now[0])
    run = SimpleNamespace(id="r1", experiment="test/ok", preset="smoke", control=None, status="passed",
                          duration_s=12.5)
    log.started(run)
    for t in range(1, 26):  # 25 s of progress events, one a second
        now[0] = float(t)
        log.progress(run, t, 25, "training")
    log.finished(run)
    lines = out.getvalue().splitlines()
    assert lines[0] == "started  test/ok [smoke]  run r1"
    assert lines[1:-1] == ["progress test/ok [smoke]  10/25  training", "progress test/ok [smoke]  20/25  training"]
    assert lines[-1] == "finished test/ok [smoke]  run r1  passed (12.5s)"


def test_full_preset_needing_a_gpu_is_refused(repro_env):
    with pytest.raises(PaperkbError, match=r"test/needs-gpu: preset 'full' needs a CUDA GPU and none is available"):
        _plan("test/needs-gpu", preset="full")
    with pytest.raises(PaperkbError, match="needs a CUDA GPU but --device cpu was given"):
        _plan("test/needs-gpu", preset="full", device="cpu")
    with pytest.raises(PaperkbError, match="needs 40 GB of GPU memory; the GPU has 16.0 GB"):
        _plan("test/needs-gpu", preset="full", machine=_SmallGpu())
    with pytest.raises(PaperkbError, match="--nproc 2 needs 2 GPUs; this machine has 1"):
        _plan("test/ok", device="cuda", nproc=2, machine=_SmallGpu())
    [ok] = _plan("test/needs-gpu", preset="smoke")
    assert ok.device == "cpu"


def test_missing_triton_is_refused(repro_env, monkeypatch):
    monkeypatch.setattr("repro.environment.triton_available", lambda: False)
    with pytest.raises(PaperkbError, match=r"test/needs-triton: preset 'full' needs the triton package"):
        _plan("test/needs-triton", preset="full")
    assert _plan("test/needs-triton", preset="smoke")[0].experiment == "test/needs-triton"
    monkeypatch.setattr("repro.environment.triton_available", lambda: True)
    assert _plan("test/needs-triton", preset="full")[0].preset == "full"


def test_without_triton_kernel_checks_are_skipped_not_errors(monkeypatch):
    # with `pip install -e '.[repro]'` (no triton) split-KV decoding and the control that
    # sabotages the Triton kernel used to start and end in error; they are skipped, naming triton
    from repro.runner import plan_runs

    monkeypatch.setattr("repro.environment.triton_available", lambda: False)
    planned, skipped = plan_runs([Target("flash-attention/exact")], RunOptions(controls=True), _NoCuda())
    assert [s.control for s in skipped] == ["triton-causal-off"] and skipped[0].needs == "the triton package"
    assert "control triton-causal-off needs the triton package" in skipped[0].reason
    assert [p.control for p in planned] == ["tiled-no-rescale"]
    planned, skipped = plan_runs([Target("flash-attention/split-kv-decoding")], RunOptions(), _NoCuda())
    assert not planned and skipped[0].needs == "the triton package"
    monkeypatch.setattr("repro.environment.triton_available", lambda: True)
    planned, skipped = plan_runs([Target("flash-attention/exact")], RunOptions(controls=True), _NoCuda())
    assert not skipped and {p.control for p in planned} == {"tiled-no-rescale", "triton-causal-off"}


# ---- execution ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["prefork", "process"])
def test_batch_records_pass_error_fail_and_keeps_going(repro_env, vault, monkeypatch, launcher):
    # prefork: the five CPU runs are forked from one server that imported torch (repro.prefork);
    # process: each run is a fresh `python -m repro.worker`. Both must record the same things.
    monkeypatch.setenv("PAPERKB_PREFORK", "1" if launcher == "prefork" else "0")
    monkeypatch.setenv("PAPERKB_PREFORK_PRELOAD", "numpy")  # the mechanics, without torch's 6 s of imports
    targets = [Target("test/ok", ["c-ok"]), Target("test/raise"), Target("test/no-check"), Target("test/random")]
    planned = plan(targets, RunOptions(seed=7), machine=_NoCuda())
    planned.append(plan([Target("test/ok")], RunOptions(params=["target=0.01"]), machine=_NoCuda())[0])
    with Tracker(vault) as tracker:
        runs = execute(planned, tracker, argv=["paperkb", "run", "test"])
        ok, raised, nocheck, drawn, failed = runs
        assert [r.status for r in runs] == [PASSED, ERROR, ERROR, PASSED, FAILED]
        assert exit_code(runs) == 3 and exit_code([ok, failed]) == 1 and exit_code([ok]) == 0
        # a pass: verdict, checks, metrics, seed, artifacts, environment
        assert ok.verdict == "supported" and ok.claims == ["c-ok"] and ok.summary == "final loss 0.125"
        assert ok.checks[0]["name"] == "final_loss" and ok.checks[0]["passed"]
        metrics = tracker.metrics(ok.id)
        assert [m["step"] for m in metrics if m["name"] == "loss"] == [0, 1, 2, 3, 4]
        assert tracker.final_metrics(ok.id)["seed"] == 7
        names = {a["name"]: a["kind"] for a in tracker.artifacts(ok.id)}
        assert names["plot-loss.png"] == "plot" and "metrics.json" in names and "stdout.log" in names
        run_dir = tracker.run_dir(ok.id)
        assert (run_dir / "plot-loss.png").read_bytes()[:4] == b"\x89PNG"
        saved = json.loads((run_dir / "metrics.json").read_text())
        assert saved["verdict"] == "supported" and len(saved["metrics"]) == 6
        env = ok.environment
        assert env["command"] == ["paperkb", "run", "test"]
        assert env["python"]["version"] and env["packages"].get("torch")
        assert env["launcher"] == launcher
        assert env["torch"] == {"imported": False}  # test/ok never imports torch (nor did the server here)
        assert env["machine"]["cpu_model"] and env["machine"]["ram_bytes"] > 0 and env["machine"]["host"]
        assert "commit" in env["git"] and "dirty" in env["git"]
        if env["git"]["dirty"]:
            assert (run_dir / "git.diff").stat().st_size > 0
        # the seed reaches random, numpy and torch (imported by the experiment after the worker started)
        import random

        import numpy
        import torch

        random.seed(7)
        numpy.random.seed(7)
        torch.manual_seed(7)
        expected = {"python_draw": random.random(), "numpy_draw": float(numpy.random.rand()),
                    "torch_draw": float(torch.rand(1).item())}
        assert tracker.final_metrics(drawn.id) == pytest.approx(expected)
        assert drawn.environment["torch"]["version"] == torch.__version__
        # an exception: error with the traceback kept
        assert "RuntimeError: boom from test/raise" in raised.error and "Traceback" in raised.error
        assert tracker.final_metrics(raised.id) == {"before": 1.0}
        assert "stated no check" in nocheck.error
        # thresholds not met: failed (contradicted), the failing check recorded
        assert failed.verdict == "contradicted" and not failed.checks[0]["passed"]
        assert tracker.integrity_check() == "ok"


@pytest.mark.slow
def test_timeout_ends_the_whole_process_tree(repro_env, vault):
    [p] = plan([Target("test/spawn-and-hang")], RunOptions(timeout_s=5), machine=_NoCuda())
    with Tracker(vault) as tracker:
        t0 = time.monotonic()
        [run] = execute([p], tracker)
        assert time.monotonic() - t0 < 40
        assert run.status == TIMEOUT and "timed out after 5 s" in run.error
        pid_file = tracker.run_dir(run.id) / "grandchild.pid"
    assert not pid_alive(run.child_pid)
    assert pid_file.exists(), "the experiment did not reach its grandchild within the timeout"
    grandchild = int(pid_file.read_text())
    wait_for(lambda: not pid_alive(grandchild), timeout=10)


@pytest.mark.slow
def test_forked_runs_time_out_and_leave_nothing_behind(repro_env, vault, monkeypatch):
    """Runs forked from the prefork server are ended as a tree on timeout, like plain ones, and
    the server itself is gone when the batch is done."""
    import psutil

    monkeypatch.setenv("PAPERKB_PREFORK", "1")
    monkeypatch.setenv("PAPERKB_PREFORK_PRELOAD", "numpy")
    planned = plan([Target("test/spawn-and-hang"), Target("test/ok")], RunOptions(timeout_s=5), machine=_NoCuda())
    with Tracker(vault) as tracker:
        hang, ok = execute(planned, tracker, jobs=2)
        assert hang.status == TIMEOUT and "timed out after 5 s" in hang.error
        assert ok.status == PASSED and ok.environment["launcher"] == "prefork"
        assert hang.environment["launcher"] == "prefork"
        pid_file = tracker.run_dir(hang.id) / "grandchild.pid"
    assert not pid_alive(hang.child_pid)
    wait_for(lambda: not pid_alive(int(pid_file.read_text())), timeout=10)
    servers = [p for p in psutil.Process().children(recursive=True) if "repro.prefork" in " ".join(p.cmdline())]
    assert servers == []


def _start_sleep_run(vault, env, *extra):
    proc = paperkb(vault, "run", "test/sleep", *extra, env=env)
    run = wait_for(lambda: (vault / ".paperkb" / "runs.db").exists() and [
        r for r in rows(vault, "SELECT r.* FROM runs r JOIN metrics m ON m.run_id = r.id "
                               "WHERE r.experiment='test/sleep' AND r.status='running' AND m.name='started'")
    ], timeout=90)[0]
    return proc, run


@pytest.mark.slow
def test_kill_9_of_the_experiment_is_recorded_interrupted(repro_env, vault):
    first = paperkb(vault, "run", "test/ok", env=repro_env)
    assert first.wait(90) == 0, first.stderr.read()
    proc, run = _start_sleep_run(vault, repro_env)
    os.kill(run["child_pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    [rec] = rows(vault, "SELECT * FROM runs WHERE id=?", (run["id"],))
    assert rec["status"] == INTERRUPTED and "SIGKILL" in rec["error"]
    statuses = [r["status"] for r in rows(vault, "SELECT status FROM runs ORDER BY created")]
    assert statuses == [PASSED, INTERRUPTED]
    assert rows(vault, "PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    with Tracker(vault) as t:
        assert len(t.metrics(t.runs(status=PASSED)[0].id)) == 6


@pytest.mark.slow
def test_kill_9_of_paperkb_ends_the_child_and_is_reaped(repro_env, vault):
    proc, run = _start_sleep_run(vault, repro_env)
    proc.kill()
    proc.wait(10)
    wait_for(lambda: not pid_alive(run["child_pid"]), timeout=15)  # the worker's watchdog
    listing = paperkb(vault, "runs", "--format", "json", env=repro_env)
    out, err = listing.communicate(timeout=60)
    assert listing.returncode == 0, err
    [rec] = json.loads(out)
    assert rec["status"] == INTERRUPTED
    assert "marked interrupted" in err
    assert rows(vault, "PRAGMA integrity_check")[0]["integrity_check"] == "ok"


@pytest.mark.slow
def test_two_paperkb_runs_at_once_record_everything(repro_env, vault):
    procs = [paperkb(vault, "run", "test/ok", "--param", "steps=120", "--seed", str(s), env=repro_env)
             for s in (1, 2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (out, err)
    runs = rows(vault, "SELECT * FROM runs ORDER BY seed")
    assert [(r["status"], r["seed"]) for r in runs] == [(PASSED, 1), (PASSED, 2)]
    for r in runs:
        n = rows(vault, "SELECT count(*) AS n FROM metrics WHERE run_id=? AND name='loss'", (r["id"],))[0]["n"]
        assert n == 120
    assert rows(vault, "PRAGMA integrity_check")[0]["integrity_check"] == "ok"


@pytest.mark.slow
def test_two_processes_through_torchrun_report_through_rank_0(repro_env, vault):
    [p] = plan([Target("test/allreduce")], RunOptions(device="cpu"), machine=_NoCuda())
    assert p.nproc == 2
    with Tracker(vault) as tracker:
        [run] = execute([p], tracker)
        assert run.status == PASSED, run.error
        assert "torch.distributed.run" in " ".join(run.environment["worker_command"])
        ms = tracker.metrics(run.id)
    assert sorted((m["rank"], m["value"]) for m in ms if m["name"] == "rank_value") == [(0, 1.0), (1, 2.0)]
    assert {m["value"] for m in ms if m["name"] == "sum"} == {3.0}
    assert run.environment["world_size"] == 2
    assert run.environment["torch"]["version"] and "cuda_available" in run.environment["torch"]


@pytest.mark.slow
def test_ctrl_c_ends_the_child_and_marks_the_rest_interrupted(repro_env, vault):
    proc, run = _start_sleep_run(vault, repro_env, "test/ok")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    recs = rows(vault, "SELECT experiment, status, error FROM runs ORDER BY created, rowid")
    assert [(r["experiment"], r["status"]) for r in recs] == [("test/sleep", INTERRUPTED), ("test/ok", INTERRUPTED)]
    assert "Ctrl-C" in recs[0]["error"] and "before it started" in recs[1]["error"]
    wait_for(lambda: not pid_alive(run["child_pid"]), timeout=10)


def test_worker_command_single_torchrun_and_multi_node(tmp_path):
    from repro.runner import PlannedRun, worker_command

    base = dict(experiment="e/x", claims=[], preset="smoke", params={}, overrides={}, device="cpu", seed=0,
                timeout_s=None, rdzv_endpoint=None)
    spec = tmp_path / "spec.json"
    one = worker_command(spec, PlannedRun(nproc=1, nnodes=1, **base), "r")
    assert one[1:] == ["-m", "repro.worker", str(spec)]
    two = worker_command(spec, PlannedRun(nproc=2, nnodes=1, **base), "r")
    assert two[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in two and "--standalone" in two
    assert two[-3:] == ["-m", "repro.worker", str(spec)]
    multi = worker_command(spec, PlannedRun(nproc=4, nnodes=2, **{**base, "rdzv_endpoint": "h0:29500"}), "r")
    assert "--nnodes=2" in multi and "--rdzv-endpoint=h0:29500" in multi and "--rdzv-backend=c10d" in multi
    assert "--rdzv-id=paperkb-e/x" in multi and "--standalone" not in multi
