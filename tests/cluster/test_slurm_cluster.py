"""`paperkb run --on slurm` against a real one-node Slurm (see conftest.py): smoke run,
job array with --max-parallel, two-process torch.distributed job, --detach then `runs`,
cancel while queued and while running, a job killed on its node, and a preempted job
that requeues and resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

NOTE = """---
title: A Paper
---
# Claims

> [!claim] The loss falls under one.
> experiment:: test/ok

^paper-loss

> [!claim] Data-parallel training follows the one-process loss curve.
> experiment:: test/ddp-loss

^paper-sum

> [!claim] This one raises.
> experiment:: test/raise

^paper-raise
"""

# one worker runs them all (CI: pytest -n 2 --dist loadgroup), on one cluster
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


def paperkb(vault: Path, *args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.app", "--vault", str(vault), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def runs_json(vault: Path, env: dict) -> list[dict]:
    done = paperkb(vault, "runs", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(what, predicate, limit_s: float = 90.0, every_s: float = 0.5):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"gave up waiting for {what} after {limit_s:g} s")


def tracker_run(vault: Path, run_id: str):
    from repro.tracker import Tracker

    with Tracker(vault) as tracker:
        return tracker.get(run_id), tracker.metrics(run_id)


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout
    return set(out.split())


@pytest.fixture
def vault(tmp_path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    (root / "Paper.md").write_text(NOTE)
    return root


def test_smoke_run_passes_with_its_job_id_and_the_local_word(slurm_env, vault, tmp_path):
    done = paperkb(vault, "run", "paper-loss", "--on", "slurm", "--preset", "smoke", env=slurm_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted" in done.stdout and "passed" in done.stdout
    (run,) = runs_json(vault, slurm_env)
    assert run["status"] == "passed" and run["verdict"] == "supported"
    assert run["slurm_job_id"] and run["slurm_job_id"].isdigit()
    record, metrics = tracker_run(vault, run["id"])
    slurm = record.environment["slurm"]
    assert slurm["cluster"] == "paperkb-test" and slurm["state"] == "COMPLETED" and slurm["nodes"]
    assert [a["attempt"] for a in slurm["attempts"]] == [1] and slurm["attempts"][0]["job_id"] == run["slurm_job_id"]
    assert [m["value"] for m in metrics if m["name"] == "loss"] == [2.0, 1.0, 0.5, 0.25, 0.125]
    assert (vault / ".paperkb" / "runs" / run["id"] / "metrics.json").is_file()
    if "accounting_storage/slurmdbd" in Path(os.environ["SLURM_CONF"]).read_text():
        # the accounting record (what refresh reads for jobs the controller has forgotten)
        from repro.slurm import _sacct

        record = wait_for("sacct to know the job", lambda: _sacct(run["slurm_job_id"]), 30)
        assert record.state == "COMPLETED" and record.exit_code == "0:0" and record.nodes == slurm["nodes"]
    # the claim's word is the word of a local run of the same claim
    local = tmp_path / "local"
    local.mkdir()
    (local / "Paper.md").write_text(NOTE)
    assert paperkb(local, "run", "paper-loss", env=slurm_env).returncode == 0
    words = []
    for v in (vault, local):
        claims = json.loads(paperkb(v, "claims", "--format", "json", env=slurm_env).stdout)
        words.append({c["id"]: c["status"] for c in claims}["paper-loss"])
    assert words[0] == words[1] == "supported at small scale"


def test_all_claims_as_one_throttled_array_with_two_processes_job(slurm_env, vault):
    done = paperkb(
        vault, "run", "--all", "--on", "slurm", "--max-parallel", "2", "--format", "json", env=slurm_env, timeout=180
    )
    assert done.returncode == 3, done.stderr  # test/raise ends in error
    runs = {r["experiment"]: r for r in json.loads(done.stdout)}
    assert {e: r["status"] for e, r in runs.items()} == {
        "test/ok": "passed",
        "test/ddp-loss": "passed",
        "test/raise": "error",
    }
    # the two one-process runs ask for the same resources: one array, throttled to 2 at once
    ok, boom = runs["test/ok"]["slurm"]["job_id"], runs["test/raise"]["slurm"]["job_id"]
    assert ok.split("_")[0] == boom.split("_")[0] and {ok.split("_")[1], boom.split("_")[1]} == {"0", "1"}
    assert runs["test/ok"]["slurm"]["array_parallelism"] == 2
    shown = subprocess.run(["scontrol", "show", "job", ok], capture_output=True, text=True).stdout
    assert "ArrayTaskThrottle=2" in shown
    # the two-process run: two srun tasks, torch.distributed's variables from Slurm, gloo; its
    # loss curve is the one of a single process (run here, locally)
    dist = runs["test/ddp-loss"]
    assert dist["slurm"]["resources"]["ntasks_per_node"] == 2 and "2 processes" in dist["summary"]
    _, metrics = tracker_run(vault, dist["id"])
    two = [m["value"] for m in metrics if m["name"] == "loss" and m["rank"] == 0]
    assert [m["value"] for m in metrics if m["name"] == "loss" and m["rank"] == 1] == pytest.approx(two, abs=1e-6)
    local = paperkb(vault, "run", "test/ddp-loss", "--nproc", "1", "--format", "json", env=slurm_env)
    assert local.returncode == 0, local.stderr
    (one,) = json.loads(local.stdout)
    assert "1 processes" in one["summary"]
    _, metrics = tracker_run(vault, one["id"])
    assert len(two) == 6 and [m["value"] for m in metrics if m["name"] == "loss"] == pytest.approx(two, rel=1e-5)
    assert "boom from test/raise" in (runs["test/raise"]["error"] or "")


def test_detach_then_runs_picks_up_the_result(slurm_env, vault):
    t0 = time.monotonic()
    done = paperkb(vault, "run", "test/ok", "--on", "slurm", "--detach", env=slurm_env)
    assert done.returncode == 0, done.stderr
    assert "submitted" in done.stdout and time.monotonic() - t0 < 60  # it did not wait for the job
    (run,) = runs_json(vault, slurm_env)
    assert run["status"] in ("queued", "running") and run["slurm_job_id"]
    # the submitting process is gone; a later `paperkb runs` asks Slurm and ingests the folder
    final = wait_for("the run to pass", lambda: [r for r in runs_json(vault, slurm_env) if r["status"] == "passed"])
    assert final[0]["id"] == run["id"] and final[0]["metrics"]["loss"] == 0.125
    table = paperkb(vault, "runs", env=slurm_env).stdout
    assert f"slurm {run['slurm_job_id']} on" in table


def test_cancel_a_queued_and_a_running_job(slurm_env, vault):
    launch = vault / ".paperkb" / "launch.yaml"
    launch.parent.mkdir(parents=True, exist_ok=True)
    launch.write_text("default: wide\nprofiles:\n  wide:\n    cpus_per_task: 2\n    time: 10\n")
    first = paperkb(vault, "run", "test/sleep", "--on", "slurm", "--detach", "--param", "seconds=120", env=slurm_env)
    assert first.returncode == 0, first.stderr
    (running,) = runs_json(vault, slurm_env)
    pid_file = vault / ".paperkb" / "runs" / running["id"] / "pid.txt"
    wait_for("the first job to start its experiment", pid_file.is_file)
    second = paperkb(vault, "run", "test/sleep", "--on", "slurm", "--detach", "--param", "seconds=120", env=slurm_env)
    assert second.returncode == 0, second.stderr
    queued = next(r for r in runs_json(vault, slurm_env) if r["id"] != running["id"])
    assert queued["status"] == "queued"
    table = wait_for(
        "the reason", lambda: "pending (Resources)" in (t := paperkb(vault, "runs", env=slurm_env).stdout) and t
    )
    assert "running" in table

    for run in (queued, running):
        done = paperkb(vault, "runs", "cancel", run["id"][:17], env=slurm_env)
        assert done.returncode == 0, done.stderr
        assert f"cancelled   {run['id']}" in done.stdout
    statuses = {r["id"]: r["status"] for r in runs_json(vault, slurm_env)}
    assert statuses == {running["id"]: "cancelled", queued["id"]: "cancelled"}
    record, metrics = tracker_run(vault, running["id"])
    assert "while running" in record.error and [m["name"] for m in metrics] == ["started"]
    assert "while queued" in tracker_run(vault, queued["id"])[0].error
    pid = int(pid_file.read_text())
    wait_for("the experiment process to end", lambda: not Path(f"/proc/{pid}").exists(), 30)
    wait_for(
        "Slurm to drop both jobs", lambda: not squeue_ids() & {running["slurm_job_id"], queued["slurm_job_id"]}, 30
    )
    again = paperkb(vault, "runs", "cancel", running["id"], env=slurm_env)
    assert again.returncode == 1 and "already ended (cancelled)" in again.stderr


def test_a_job_killed_on_its_node_ends_interrupted(slurm_env, vault):
    done = paperkb(vault, "run", "test/sleep", "--on", "slurm", "--detach", "--param", "seconds=120", env=slurm_env)
    assert done.returncode == 0, done.stderr
    (run,) = runs_json(vault, slurm_env)
    wait_for("the experiment to start", (vault / ".paperkb" / "runs" / run["id"] / "pid.txt").is_file)
    subprocess.run(["scancel", "--signal=KILL", "--full", run["slurm_job_id"]], check=True, timeout=30)
    final = wait_for("the run to end", lambda: [r for r in runs_json(vault, slurm_env) if r["status"] != "running"])
    assert final[0]["status"] == "interrupted"
    record, _ = tracker_run(vault, run["id"])
    assert f"Slurm: job {run['slurm_job_id']} CANCELLED" in record.error


def test_a_preempted_job_requeues_and_resumes_from_its_checkpoint(slurm_env, vault):
    done = paperkb(vault, "run", "test/resumable", "--on", "slurm", "--detach", env=slurm_env)
    assert done.returncode == 0, done.stderr
    (run,) = runs_json(vault, slurm_env)
    ckpt = vault / ".paperkb" / "runs" / run["id"] / "checkpoint.json"
    wait_for("three steps", lambda: ckpt.is_file() and json.loads(ckpt.read_text())["step"] >= 3)
    # what Slurm sends before a time limit or a preemption (submitit asks for --signal=USR2@...)
    subprocess.run(["scancel", "--signal=USR2", run["slurm_job_id"]], check=True, timeout=30)
    final = wait_for(
        "the requeued run to pass", lambda: [r for r in runs_json(vault, slurm_env) if r["status"] == "passed"], 150
    )
    record, metrics = tracker_run(vault, final[0]["id"])
    attempts = record.environment["slurm"]["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2] and attempts[0]["job_id"] == attempts[1]["job_id"]
    resumed = [m["value"] for m in metrics if m["name"] == "resumed_from"]
    assert resumed[0] == 0 and resumed[1] >= 3
    steps = [m["step"] for m in metrics if m["name"] == "loss"]
    assert sorted(set(steps)) == list(range(1, 13)) and steps[-1] == 12  # the curve went on, not from zero
    assert len(steps) <= 13  # at most the one step logged before its checkpoint was written
    assert "2 attempts" in paperkb(vault, "runs", env=slurm_env).stdout
    assert os.path.getsize(vault / ".paperkb" / "runs" / final[0]["id"] / "metrics.json") > 0


def test_a_job_sbatch_refuses_is_one_line_and_recorded(slurm_env, vault):
    done = paperkb(vault, "run", "test/ok", "--on", "slurm", "--partition", "nosuch", env=slurm_env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: sbatch refused the job:") and "partition" in line.lower()
    (run,) = runs_json(vault, slurm_env)
    assert run["status"] == "error" and run["slurm_job_id"] is None
