"""The submitting side without a cluster: launch profiles, sbatch options built from presets,
profiles and the command line, and how Slurm's final states become run statuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paperkb.errors import PaperkbError, UsageError
from repro import slurm
from repro.runner import PlannedRun, RunOptions, Target, _Outcome, plan_runs
from repro.tracker import ERROR, INTERRUPTED, PASSED, QUEUED, TIMEOUT, Tracker, environment_summary

LAUNCH = """\
default: gpu
profiles:
  cpu:
    partition: debug
    time: "00:30:00"
  gpu:
    partition: gpu
    account: lab
    qos: high
    constraint: a100
    gpus_per_node: 8
    cpus_per_task: 10
    mem: 480GB
    time: 3-12:00:00
    max_parallel: 4
    python: /shared/envs/paperkb/bin/python
    setup:
      - module load cuda/12.4
    sbatch:
      exclude: node13
      --mail-type: END
"""


def planned(**kw) -> PlannedRun:
    base = dict(
        experiment="transformer/train",
        claims=[],
        preset="full",
        params={},
        overrides={},
        device="cpu",
        seed=0,
        nproc=1,
        nnodes=1,
        rdzv_endpoint=None,
        timeout_s=None,
    )
    return PlannedRun(**{**base, **kw})


def test_profiles_parse_with_their_default():
    profiles = slurm.parse_profiles(LAUNCH)
    gpu = profiles["gpu"]
    assert profiles["default"] is gpu and profiles["cpu"].partition == "debug"
    assert (gpu.account, gpu.qos, gpu.constraint, gpu.gpus_per_node, gpu.mem) == ("lab", "high", "a100", 8, "480GB")
    assert gpu.setup == ["module load cuda/12.4"] and gpu.sbatch == {"exclude": "node13", "mail-type": "END"}
    assert (
        slurm.parse_profiles("") == {}
        and slurm.parse_profiles("profiles:\n  a: {partition: x}\n")["default"].name == "a"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("profiles:\n  gpu:\n    partiton: gpu\n", "launch.yaml:3: profile 'gpu': unknown setting 'partiton'"),
        (
            "profiles:\n  gpu:\n    gpus_per_node: many\n",
            "launch.yaml:3: profile 'gpu': gpus_per_node must be a whole number",
        ),
        ("profiles:\n  gpu:\n    nodes: -1\n", "launch.yaml:3: profile 'gpu': nodes must be a whole number >= 0"),
        ("profiles:\n  gpu: [a, b]\n", "launch.yaml:2: profile 'gpu' must be a mapping"),
        ("profiles:\n  gpu:\n    sbatch: {'x; rm': 1}\n", "is not an sbatch option name"),
        ("default: tpu\nprofiles:\n  gpu: {}\n", "launch.yaml:1: default profile 'tpu' is not one of the profiles"),
        ("profiles:\n  gpu: {partition: [a\n", "launch.yaml:3: not valid YAML"),
        ("clusters: {}\n", "launch.yaml:1: unknown key 'clusters'"),
        ("- a\n- b\n", "launch.yaml:1: expected a mapping"),
    ],
)
def test_a_malformed_launch_file_is_one_line_with_its_line(text, message):
    with pytest.raises(PaperkbError) as err:
        slurm.parse_profiles(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_launch_file_others_may_write_or_a_link_is_refused(tmp_path):
    home = tmp_path / ".paperkb"
    home.mkdir()
    path = home / "launch.yaml"
    path.write_text(LAUNCH)
    os.chmod(path, 0o664)
    with pytest.raises(PaperkbError, match="writable by you alone"):
        slurm.load_profiles(tmp_path)
    os.chmod(path, 0o644)
    assert slurm.load_profiles(tmp_path)["default"].name == "gpu"
    path.rename(home / "real.yaml")
    path.symlink_to(home / "real.yaml")
    with pytest.raises(PaperkbError, match="not a regular file"):
        slurm.load_profiles(tmp_path)
    assert slurm.load_profiles(tmp_path / "nowhere") == {}


def test_choose_profile():
    profiles = slurm.parse_profiles(LAUNCH)
    assert slurm.choose_profile(profiles, None).name == "gpu"
    assert slurm.choose_profile(profiles, "cpu").name == "cpu"
    assert slurm.choose_profile({}, None) == slurm.LaunchProfile()
    with pytest.raises(UsageError, match="--profile 'tpu': no such launch profile \\(known: cpu, gpu\\)"):
        slurm.choose_profile(profiles, "tpu")


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("90", 90),
        ("1:30:00", 90),
        ("2-00:00:00", 2880),
        ("2-12", 3600),
        ("45m", 45),
        ("3h", 180),
        ("2d", 2880),
        ("10:30", 11),
        ("0:00:30", 1),
    ],
)
def test_time_limits_in_slurm_forms(text, minutes):
    assert slurm.time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "soon", "1:2:3:4", "0", "-5", "3w"])
def test_a_bad_time_limit_is_a_usage_error(text):
    with pytest.raises(UsageError):
        slurm.time_minutes(text)


def test_parameters_come_from_command_line_then_profile_then_preset():
    gpu = slurm.parse_profiles(LAUNCH)["gpu"]
    run = planned(device="cuda", nproc=8, nnodes=2)
    params = slurm.job_parameters(run, gpu, slurm.LaunchOptions(), preset_timeout_s=600)
    assert params["partition"] == "gpu" and params["account"] == "lab" and params["qos"] == "high"
    assert params["constraint"] == "a100" and params["mem"] == "480GB" and params["cpus_per_task"] == 10
    assert (params["nodes"], params["ntasks_per_node"], params["gpus_per_node"]) == (2, 8, 8)
    assert params["time"] == 3 * 1440 + 12 * 60  # the profile's, not the preset's
    assert params["additional_parameters"] == {"exclude": "node13", "mail_type": "END"}
    assert params["setup"][0].startswith("export PYTHONPATH=") and params["setup"][1:] == ["module load cuda/12.4"]
    assert params["job_name"] == "paperkb-transformer-train"
    cli = slurm.LaunchOptions(partition="short", gpus=2, nodes=1, time="2:00:00")
    params = slurm.job_parameters(run, gpu, cli, preset_timeout_s=600)
    assert (params["partition"], params["gpus_per_node"], params["nodes"], params["time"]) == ("short", 2, 1, 120)


def test_without_a_profile_the_preset_decides():
    empty = slurm.LaunchProfile()
    cpu = slurm.job_parameters(planned(), empty, slurm.LaunchOptions(), preset_timeout_s=600)
    assert "gpus_per_node" not in cpu and "partition" not in cpu and "mem" not in cpu
    assert cpu["time"] == 13 and cpu["ntasks_per_node"] == 1 and cpu["nodes"] == 1  # 600 s and a margin
    assert slurm.job_parameters(planned(), empty, slurm.LaunchOptions())["time"] == slurm.DEFAULT_TIME_MIN
    cuda = slurm.job_parameters(planned(device="cuda", nproc=4), empty, slurm.LaunchOptions())
    assert cuda["gpus_per_node"] == 4 and cuda["ntasks_per_node"] == 4  # one GPU per process

    class Requires:
        memory_gb = 30.5

    class WithMemory:
        experiment, nproc, nnodes, device, requires = "x", 1, 1, "cpu", Requires()

    assert slurm.job_parameters(WithMemory(), empty, slurm.LaunchOptions())["mem"] == "31GB"


def test_planning_for_the_cluster_counts_the_gpus_asked_for():
    target = [Target("transformer/param-count")]
    (run,), skipped = plan_runs(target, RunOptions(preset="smoke"), machine=slurm.ClusterMachine(None))
    assert run.device == "cpu" and not skipped
    (run,), _ = plan_runs(target, RunOptions(preset="smoke", device="cuda"), machine=slurm.ClusterMachine(2))
    assert run.device == "cuda"
    _, skipped = plan_runs(target, RunOptions(preset="smoke", device="cuda"), machine=slurm.ClusterMachine(0))
    assert skipped and skipped[0].needs == "a CUDA GPU"


def test_check_options():
    slurm.check_options(slurm.LaunchOptions(gpus=0, nodes=2, max_parallel=3, time="1:00:00"))
    for bad in (dict(gpus=-1), dict(nodes=0), dict(max_parallel=0), dict(time="later")):
        with pytest.raises(UsageError):
            slurm.check_options(slurm.LaunchOptions(**bad))


@pytest.mark.parametrize(
    "state, exit_code, status, words",
    [
        ("NODE_FAIL", "0:0", INTERRUPTED, "NODE_FAIL on node7 (NodeDown)"),
        ("TIMEOUT", "0:15", TIMEOUT, "TIMEOUT"),
        ("PREEMPTED", "0:15", INTERRUPTED, "PREEMPTED"),
        ("CANCELLED", "0:15", INTERRUPTED, "CANCELLED"),
        ("FAILED", "0:9", INTERRUPTED, "killed by signal 9"),
        ("FAILED", "1:0", ERROR, "FAILED"),
        ("OUT_OF_MEMORY", "0:125", ERROR, "OUT_OF_MEMORY"),
        ("BOOT_FAIL", "0:0", INTERRUPTED, "BOOT_FAIL"),
    ],
)
def test_slurm_final_states_become_statuses_with_the_reason(tmp_path, state, exit_code, status, words):
    info = slurm.JobInfo("42", state, "NodeDown" if state == "NODE_FAIL" else "", "node7", exit_code)
    got, reason = slurm._status_of(info, _Outcome(), tmp_path)
    assert got == status and reason.startswith("Slurm: job 42 ") and words in reason


def test_a_finished_result_outranks_the_job_state(tmp_path):
    outcome = _Outcome(result={"verdict": "supported", "checks": []})
    assert slurm._status_of(slurm.JobInfo("7", "CANCELLED"), outcome, tmp_path) == (PASSED, None)
    got, reason = slurm._status_of(slurm.JobInfo("7", "COMPLETED", exit_code="0:0"), _Outcome(), tmp_path)
    assert got == ERROR and "without a result" in reason


def test_a_submitted_run_is_not_reaped_and_a_local_one_cannot_be_cancelled(tmp_path):
    with Tracker(tmp_path) as tracker:
        queued = tracker.create_run("x", preset="smoke", params={})
        tracker.update_environment(queued.id, {"slurm": {"job_id": "17"}})
        local = tracker.create_run("x", preset="smoke", params={})
        tracker.conn.execute("UPDATE runs SET pid=999999999")  # the submitting process is gone
        assert tracker.reap_stale() == [local.id]
        assert tracker.get(queued.id).status == QUEUED
        assert slurm.describe(tracker.get(queued.id)) == "slurm 17"
        tracker.update_environment(queued.id, {"slurm": {"job_id": "17", "cluster": "c", "nodes": "n1", "state": "X"}})
        assert ("slurm", "job 17 (c) on n1, X, 1 attempt") in environment_summary(tracker.get(queued.id).environment)
        assert not [k for k, _ in environment_summary(tracker.get(local.id).environment) if k == "slurm"]
        with pytest.raises(PaperkbError, match="did not run on Slurm"):
            slurm.cancel(tracker, [local.id])


def test_cli_refuses_bad_launch_options_before_anything_runs(tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    (tmp_path / "A.md").write_text("# A\n")
    runner = CliRunner()
    for args, words in (
        (["--on", "mars"], "--on must be local or slurm"),
        (["--on", "slurm", "--time", "soon"], "time limit 'soon'"),
        (["--on", "slurm", "--max-parallel", "0"], "--max-parallel must be at least 1"),
    ):
        result = runner.invoke(app, ["--vault", str(tmp_path), "run", "transformer/param-count", *args])
        assert result.exit_code == 2 and words in result.output, result.output
    assert not (Path(tmp_path) / ".paperkb" / "runs.db").exists()


def test_a_finished_job_is_ingested_once(tmp_path):
    import json

    with Tracker(tmp_path) as tracker:
        run = tracker.create_run("x", preset="smoke", params={})
        tracker.update_environment(run.id, {"slurm": {"job_id": "5", "submitted": 0}})
        events = [
            {"type": "attempt", "attempt": 1, "slurm": {"job_id": "5", "cluster": "c", "nodes": "n1"}},
            {"type": "metric", "name": "loss", "value": 0.5, "step": 1},
            {"type": "result", "result": {"verdict": "supported", "checks": [], "summary": "ok"}},
        ]
        (tracker.run_dir(run.id) / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        info = slurm.JobInfo("5", "COMPLETED", nodes="n1", exit_code="0:0")
        first = slurm.ingest(tracker, tracker.get(run.id), info)
        again = slurm.ingest(tracker, tracker.get(run.id), info)  # e.g. `paperkb runs` in another shell
        assert first.status == again.status == PASSED and first.summary == "ok"
        assert [m["value"] for m in tracker.metrics(run.id)] == [0.5]
        env = tracker.get(run.id).environment["slurm"]
        assert env["cluster"] == "c" and env["attempts"][0]["nodes"] == "n1" and env["state"] == "COMPLETED"


@pytest.mark.skipif(not slurm.slurm_available(), reason="Slurm's commands are not installed")
def test_when_squeue_fails_nothing_is_decided(tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"  # squeue refuses it at once, as it fails when slurmctld is down
    conf.write_text("ClusterName=gone\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with Tracker(tmp_path / "vault") as tracker:
        run = tracker.create_run("x", preset="smoke", params={})
        tracker.update_environment(run.id, {"slurm": {"job_id": "99", "submitted": 0}})  # long ago
        assert slurm.job_states(["99"]) is None
        assert slurm.refresh(tracker) == []
        assert tracker.get(run.id).status == QUEUED  # not "forgotten": Slurm could not be asked
