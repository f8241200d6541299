"""Runs sent to a real MLflow tracking server (repro.mlflow_sink), checked through MLflow's own client.

One ``mlflow server`` per module (SQLite backend store, proxied local artifact root, a free
port on 127.0.0.1, one worker), stopped by its process group afterwards. "Stopped mid-way"
is a SIGSTOP of that group while a run runs (requests then time out, as with a hung
server), and SIGCONT brings it back; a refused connection is a port nobody listens on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from repro_testkit import paperkb, rows, wait_for
from typer.testing import CliRunner

from cli.app import app
from repro.status import ClaimRef

pytest.importorskip("mlflow.server", reason="the tests start a real `mlflow server` (pip install 'paperkb[test]')")

# one xdist worker for the whole module: one server start (~15-20 s of CPU), not one per worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow")]

START_TIMEOUT_S = 300.0  # a cold start (database migrations, imports) on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(uri + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(uri, process)`` of an mlflow server started for this module."""
    home = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(home / "server.log", "wb")
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination", str(home / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(uri):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (home / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"mlflow server did not come up (exit {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield uri, proc
    finally:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.killpg(proc.pid, sig)  # its own session: the server and its workers, nothing else
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(server[0])


@pytest.fixture
def cli(repro_env, vault, monkeypatch, server):
    """paperkb in this process on ``vault`` (named ``lab``), MLflow set through the environment."""
    (vault / "A.md").write_text("# A\n\nA note with claims.\n")
    claims = [
        ClaimRef("c-ok", "the loss falls under 1", ["test/ok"], "A.md", "A", 5),
        ClaimRef("c-wait", "the cue is seen", ["test/wait-for-file"], "A.md", "A", 9),
    ]
    monkeypatch.setattr("repro.status.vault_claims", lambda root, **filters: claims)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server[0])
    # paperkb's defaults, set here so that they are restored after the test (a loaded CI machine
    # may take seconds to answer)
    for key, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, ["--vault", str(vault), *args], catch_exceptions=True)

    return invoke


@pytest.fixture
def vault(tmp_path) -> Path:
    """A vault named like a lab's (its name begins every MLflow experiment name)."""
    root = tmp_path / f"lab{tmp_path.name[-6:]}"
    root.mkdir()
    return root


def _mlflow_runs(client, vault: Path, experiment: str, run_id: str | None = None):
    exp = client.get_experiment_by_name(f"{vault.name}/{experiment}")
    if exp is None:
        return []
    where = f"tags.`paperkb.run_id` = '{run_id}'" if run_id else ""
    return client.search_runs([exp.experiment_id], where)


def _local_runs(vault: Path) -> list[dict]:
    return rows(vault, "SELECT id, status, control FROM runs ORDER BY created")


def test_a_run_arrives_with_params_series_checks_tags_and_artifacts(cli, vault, client):
    result = cli("run", "c-ok", "--param", "steps=4")
    assert result.exit_code == 0, result.output  # 0.25 <= 1 (the override is recorded, decides nothing)
    result = cli("run", "c-ok")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    first, second = _local_runs(vault)
    [mr] = _mlflow_runs(client, vault, "test/ok", second["id"])
    assert mr.info.status == "FINISHED"
    assert mr.data.params == {"steps": "5", "target": "1.0"}
    history = client.get_metric_history(mr.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 1.0), (2, 0.5), (3, 0.25), (4, 0.125)]
    assert mr.data.metrics["check/final_loss"] == 0.125
    assert mr.data.metrics["check/final_loss/threshold"] == 1.0
    assert mr.data.metrics["check/final_loss/passed"] == 1.0
    tags = mr.data.tags
    assert tags["paperkb.claims"] == "c-ok"
    assert tags["paperkb.claim.c-ok"] == "supported at small scale"
    assert tags["paperkb.evidence"] == "direct" and tags["paperkb.scale"] == "smoke"
    assert tags["paperkb.is_control"] == "false" and "paperkb.control" not in tags
    assert tags["paperkb.status"] == "passed" and tags["paperkb.verdict"] == "supported"
    assert tags["paperkb.seed"] == "0" and tags["paperkb.device"] == "cpu"
    assert tags["paperkb.version"] and tags["paperkb.package.torch"]
    assert tags["paperkb.git.dirty"] in ("true", "false")
    assert tags["paperkb.export"] == "complete"
    assert "slurm.job_id" not in tags or os.environ.get("SLURM_JOB_ID")
    top = {a.path for a in client.list_artifacts(mr.info.run_id)}
    assert {"metrics.json", "environment.json", "plots", "logs"} <= top
    assert {a.path for a in client.list_artifacts(mr.info.run_id, "plots")} == {"plots/plot-loss.png"}
    assert "logs/stdout.log" in {a.path for a in client.list_artifacts(mr.info.run_id, "logs")}

    # the override is marked
    [mo] = _mlflow_runs(client, vault, "test/ok", first["id"])
    assert mo.data.params["steps"] == "4"
    assert mo.data.tags["paperkb.overridden"] == "steps" and mo.data.tags["paperkb.override.steps"] == "4"

    # runs show and the run folder give the MLflow page
    shown = json.loads(cli("runs", "show", second["id"], "--format", "json").output)
    url = shown["mlflow"]["url"]
    assert shown["mlflow"]["state"] == "done" and url.endswith(f"/runs/{mr.info.run_id}")
    assert url.startswith(client.tracking_uri + "/#/experiments/")
    link = json.loads((vault / ".paperkb" / "runs" / second["id"] / "mlflow.json").read_text())
    assert link["url"] == url
    assert "mlflow" in cli("runs", "show", second["id"]).output


def test_a_control_run_is_tagged_as_one(cli, vault, client):
    result = cli("run", "test/ok", "--control", "break")
    assert result.exit_code == 0, result.output  # the control ended contradicted, as it must
    [local] = _local_runs(vault)
    [mr] = _mlflow_runs(client, vault, "test/ok", local["id"])
    assert mr.data.tags["paperkb.control"] == "break" and mr.data.tags["paperkb.is_control"] == "true"
    assert mr.data.tags["paperkb.status"] == "failed" and mr.data.metrics["check/final_loss/passed"] == 0.0
    assert "control break" in mr.data.tags["mlflow.runName"]


def test_export_twice_gives_one_mlflow_run_per_paperkb_run(cli, vault, client, monkeypatch, server):
    from mlflow.exceptions import MlflowException

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert cli("run", "test/ok").exit_code == 0
    assert cli("run", "test/raise").exit_code == 3
    ok, crashed = _local_runs(vault)
    assert _mlflow_runs(client, vault, "test/ok") == []
    # an export cut short earlier: a partial MLflow run of `ok` without the complete tag
    try:
        exp_id = client.create_experiment(f"{vault.name}/test/ok")
    except MlflowException:  # the client's retry of a request that timed out on a loaded machine
        exp_id = client.get_experiment_by_name(f"{vault.name}/test/ok").experiment_id
    partial = client.create_run(exp_id, tags={"paperkb.run_id": ok["id"]}).info.run_id

    refused = cli("runs", "export", "--to", "mlflow", "--all")
    assert refused.exit_code == 2 and "MLFLOW_TRACKING_URI" in refused.output
    (vault / ".paperkb" / "config.yaml").write_text(f"tracking:\n  mlflow: {server[0]}\n")
    first = cli("runs", "export", "--to", "mlflow", "--all", "--format", "json")
    assert first.exit_code == 0, first.output
    assert sorted(r["state"] for r in json.loads(first.stdout)) == ["exported", "exported"]
    second = cli("runs", "export", "--to", "mlflow", "--all", "--format", "json")
    assert second.exit_code == 0, second.output
    assert sorted(r["state"] for r in json.loads(second.stdout)) == ["already", "already"]
    assert cli("runs", "export", "--to", "mlflow", ok["id"]).exit_code == 0

    [mo] = _mlflow_runs(client, vault, "test/ok", ok["id"])
    assert mo.info.run_id != partial and client.get_run(partial).info.lifecycle_stage == "deleted"
    [mc] = _mlflow_runs(client, vault, "test/raise", crashed["id"])
    assert mc.info.status == "FAILED" and "boom from test/raise" in mc.data.tags["mlflow.note.content"]
    assert len(_mlflow_runs(client, vault, "test/ok")) == 1 and len(_mlflow_runs(client, vault, "test/raise")) == 1
    assert cli("runs", "export", "--to", "wandb", "--all").exit_code == 2


def test_a_refused_connection_queues_the_export_until_runs(cli, vault, client, monkeypatch, server):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")  # nobody listens there
    result = cli("run", "c-ok")
    assert result.exit_code == 0, result.output
    [local] = _local_runs(vault)
    assert local["status"] == "passed"
    warnings = [ln for ln in result.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "queued" in warnings[0], result.output
    shown = json.loads(cli("runs", "show", local["id"], "--format", "json").output)
    assert shown["mlflow"]["state"] == "pending" and shown["mlflow"]["error"]
    listed = cli("runs")  # the server is still away: the run stays queued, one line says so
    assert listed.exit_code == 0 and "queued" in listed.output and local["id"] in listed.output

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server[0])
    listed = cli("runs")
    assert listed.exit_code == 0 and f"sent run {local['id']} to MLflow" in listed.output
    [mr] = _mlflow_runs(client, vault, "test/ok", local["id"])
    assert mr.data.tags["paperkb.export"] == "complete"
    assert json.loads(cli("runs", "show", local["id"], "-f", "json").output)["mlflow"]["state"] == "done"


def test_a_server_stopped_mid_run_costs_nothing_and_the_export_lands_later(cli, vault, client, server, tmp_path):
    uri, proc = server
    cue = tmp_path / "cue"
    # the stopped server's requests give up after 10 s, without a second try
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    run = paperkb(vault, "run", "test/wait-for-file", "--param", f"path={cue}", env=env)
    try:
        wait_for(lambda: (vault / ".paperkb" / "runs.db").is_file(), timeout=120)
        local = wait_for(lambda: (r := _local_runs(vault)) and r[0], timeout=120)
        [mr] = wait_for(lambda: _mlflow_runs(client, vault, "test/wait-for-file", local["id"]), timeout=180)
        # the curve arrives while the run still runs (flushed every few seconds)
        wait_for(lambda: len(client.get_metric_history(mr.info.run_id, "loss")) == 3, timeout=120)
        os.killpg(proc.pid, signal.SIGSTOP)  # the server stops answering while the run runs
        try:
            cue.write_text("go")
            out, err = run.communicate(timeout=120)
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err
    [local] = _local_runs(vault)
    assert local["status"] == "passed"
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "MLflow" in warnings[0] and "queued" in warnings[0], err
    assert rows(vault, "SELECT state FROM mlflow_exports WHERE run_id=?", (local["id"],)) == [{"state": "pending"}]

    wait_for(lambda: _healthy(uri), timeout=60)
    listed = cli("runs")
    assert listed.exit_code == 0 and f"sent run {local['id']} to MLflow" in listed.output, listed.output
    [mr] = _mlflow_runs(client, vault, "test/wait-for-file", local["id"])
    assert mr.data.tags["paperkb.export"] == "complete" and mr.info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(mr.info.run_id, "loss")] == [1.0, 0.5, 1 / 3]
    assert mr.data.metrics["check/cue_seen/passed"] == 1.0
