"""MLflow settings, tags and the missing-client message (repro.mlflow_sink), without a server.

The real server's tests are in test_mlflow_sink.py.
"""

from __future__ import annotations

import sys
import time

import pytest
from typer.testing import CliRunner

from cli.app import app
from paperkb.errors import PaperkbError
from repro import mlflow_sink
from repro.tracker import Run


def _config(vault, text: str) -> None:
    (vault / ".paperkb").mkdir(exist_ok=True)
    (vault / ".paperkb" / "config.yaml").write_text(text, encoding="utf-8")


def test_target_from_the_environment_or_the_vault_config(vault, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_sink.mlflow_target(vault) is None
    _config(
        vault,
        "other: 1\ntracking:\n  mlflow: http://alice:secret@mlflow.lab:5000\n  experiment: 'reading-group/{experiment}'\n",
    )
    target = mlflow_sink.mlflow_target(vault)
    assert target.uri == "http://alice:secret@mlflow.lab:5000" and "config.yaml" in target.source
    assert target.public_uri == "http://mlflow.lab:5000"  # never stored nor shown with its password
    assert target.experiment_name("flash-attention/exact") == "reading-group/flash-attention/exact"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    target = mlflow_sink.mlflow_target(vault)
    assert target.uri == "http://127.0.0.1:5000" and target.source == "MLFLOW_TRACKING_URI"
    _config(vault, "tracking: {mlflow: http://x:5000}\n")
    default = mlflow_sink.mlflow_target(vault)
    assert default.experiment_name("test/ok") == f"{vault.name}/test/ok"
    # a template is replaced, never formatted: no attribute lookups from a file paperkb does not trust
    _config(vault, "tracking: {mlflow: http://x:5000, experiment: '{experiment.__class__}/{0}'}\n")
    assert mlflow_sink.mlflow_target(vault).experiment_name("e") == "{experiment.__class__}/{0}"


@pytest.mark.parametrize(
    "text, message",
    [
        ("tracking:\n  mlflow: [unclosed\n", "config.yaml:3"),
        ("tracking: just-a-uri\n", "'tracking' must be a mapping"),
        ("tracking:\n  mlflow: 5\n", "tracking.mlflow must be a non-empty text"),
        ("tracking:\n  experiment: ''\n  mlflow: http://x\n", "tracking.experiment"),
        ("- a list\n", "config.yaml"),
    ],
)
def test_a_broken_config_is_one_line_naming_the_file(vault, monkeypatch, text, message):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _config(vault, text)
    with pytest.raises(PaperkbError) as err:
        mlflow_sink.mlflow_target(vault)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_config_that_is_not_utf8_or_too_large(vault):
    (vault / ".paperkb").mkdir()
    (vault / ".paperkb" / "config.yaml").write_bytes(b"tracking:\n  mlflow: \xff\xfe\n")
    with pytest.raises(PaperkbError, match="not UTF-8"):
        mlflow_sink.read_config(vault)
    (vault / ".paperkb" / "config.yaml").write_text("a: " + "x" * (mlflow_sink.CONFIG_MAX_BYTES + 1))
    with pytest.raises(PaperkbError, match="larger than"):
        mlflow_sink.read_config(vault)


def _run(**kw) -> Run:
    base = dict(
        id="20261207-120000-abcdef",
        experiment="flash-attention/exact",
        preset="smoke",
        status="passed",
        claims=["fa-exact"],
        params={"seq_len": 128, "dtype": "float32"},
        overrides={"seq_len": 128},
        verdict="supported",
        checks=[
            {
                "name": "max abs error",
                "value": 1e-6,
                "op": "<=",
                "threshold": 1e-4,
                "passed": True,
                "evidence": "direct",
            },
            {
                "name": "torch sdpa",
                "value": 2e-7,
                "op": "<=",
                "threshold": "1e-4",
                "passed": True,
                "evidence": "reference",
            },
        ],
        environment={
            "git": {"commit": "a" * 40, "branch": "main", "dirty": False},
            "packages": {"paperkb": "0.1.0", "torch": "2.13.0"},
            "torch": {"cuda": "12.4", "devices": [{"name": "NVIDIA H100"}]},
            "slurm": {"job_id": "4242"},
        },
        command=["paperkb", "run", "fa-exact"],
        created=time.time() - 10,
        started=time.time() - 9,
        ended=time.time(),
        scale="smoke",
        seed=3,
    )
    base.update(kw)
    return Run(**base)


def test_tags_params_and_check_metrics_of_a_run():
    run = _run()
    tags = mlflow_sink.run_tags(run, {"fa-exact": "supported at small scale"})
    assert tags["paperkb.claim.fa-exact"] == "supported at small scale" and tags["paperkb.claims"] == "fa-exact"
    assert tags["paperkb.evidence"] == "direct, reference" and tags["paperkb.scale"] == "smoke"
    assert tags["mlflow.source.git.commit"] == "a" * 40 and tags["paperkb.git.dirty"] == "false"
    assert tags["slurm.job_id"] == "4242" and tags["paperkb.gpu"] == "NVIDIA H100" and tags["paperkb.seed"] == "3"
    assert tags["paperkb.overridden"] == "seq_len" and tags["paperkb.override.seq_len"] == "128"
    assert tags["paperkb.check.max abs error"].endswith("passed (direct, smoke)")
    assert tags["paperkb.is_control"] == "false" and "paperkb.control" not in tags
    assert mlflow_sink.run_params(run) == {"seq_len": "128", "dtype": "float32"}
    points = {k: v for k, v, _, _ in mlflow_sink.check_points(run)}
    assert points == {
        "check/max abs error": 1e-6,
        "check/max abs error/threshold": 1e-4,
        "check/max abs error/passed": 1.0,
        "check/torch sdpa": 2e-7,  # a threshold given as text is no metric
        "check/torch sdpa/passed": 1.0,
    }
    control = mlflow_sink.run_tags(_run(control="no-rescale", status="failed"), {})
    assert control["paperkb.control"] == "no-rescale" and control["paperkb.is_control"] == "true"
    series = mlflow_sink.metric_points(
        run,
        [
            {"name": "loss", "value": 2.0, "step": 0, "time": 100.0, "rank": 0},
            {"name": "loss", "value": 1.0, "step": 1, "time": 101.0, "rank": 0},
            {"name": "loss", "value": 1.5, "step": 1, "time": 101.0, "rank": 1},
            {"name": "odd name!", "value": None, "step": None, "time": None, "rank": 0},
        ],
    )
    assert series == [("loss", 2.0, 100000, 0), ("loss", 1.0, 101000, 1), ("loss/rank1", 1.5, 101000, 1)]


def test_run_urls_only_for_web_servers():
    assert mlflow_sink.run_url("http://u:p@host:5000/", "3", "abc") == "http://host:5000/#/experiments/3/runs/abc"
    assert mlflow_sink.run_url("sqlite:///tmp/m.db", "3", "abc") is None


@pytest.fixture
def cli(repro_env, vault, monkeypatch):
    (vault / "A.md").write_text("# A\n")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["--vault", str(vault), *args], catch_exceptions=True)


def test_without_the_client_the_run_is_kept_and_one_line_names_the_extra(cli, vault, monkeypatch):
    """A reachable-looking URI (a local store, not asked for its health) and no mlflow package."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{vault / 'nowhere.db'}")
    for name in ["mlflow", *(n for n in sys.modules if n.startswith("mlflow."))]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it fails as if it were not installed
    result = cli("run", "test/ok")
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "pip install 'paperkb[mlflow]'" in warnings[0], result.output
    export = cli("runs", "export", "--to", "mlflow", "--all")
    assert export.exit_code == 1 and "paperkb[mlflow]" in export.output
    assert "Traceback" not in export.output
    listed = cli("runs")
    assert listed.exit_code == 0 and "paperkb[mlflow]" in listed.output


def test_export_needs_runs_or_all(cli):
    assert cli("runs", "export", "--to", "mlflow").exit_code == 2
    assert cli("runs", "export", "--to", "mlflow", "--all", "x").exit_code == 2


def test_the_site_links_a_run_page_to_its_mlflow_run(vault, tmp_path):
    """The run page reads ``mlflow.json`` from the run folder; only a web address becomes a link."""
    (vault / "A.md").write_text("# A\n")
    runs = vault / ".paperkb" / "runs"
    url = "http://127.0.0.1:5000/#/experiments/1/runs/abc&x"
    for rid, link in (("20261207-120000-aaaaaa", url), ("20261207-120000-bbbbbb", "javascript:alert(1)")):
        (runs / rid).mkdir(parents=True)
        (runs / rid / "metrics.json").write_text('{"experiment": "test/ok", "status": "passed"}')
        (runs / rid / "mlflow.json").write_text(f'{{"url": "{link}"}}')
    out = tmp_path / "site"
    result = CliRunner().invoke(app, ["--vault", str(vault), "export", "site", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    linked = (out / "runs" / "20261207-120000-aaaaaa.html").read_text()
    assert 'href="http://127.0.0.1:5000/#/experiments/1/runs/abc&amp;x"' in linked
    hostile = (out / "runs" / "20261207-120000-bbbbbb.html").read_text()
    assert "javascript:" not in hostile and "In MLflow" not in hostile


def test_the_slurm_job_of_a_live_run_comes_from_its_process(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    run = _run(environment={})
    assert mlflow_sink.run_tags(run, {}, this_process=True)["slurm.job_id"] == "777"
    assert "slurm.job_id" not in mlflow_sink.run_tags(run, {})  # exported later: only what was recorded


def test_the_queue_lets_one_live_process_send_a_run(vault):
    import os
    import subprocess

    from repro.tracker import Tracker

    with Tracker(vault) as tracker:
        queue = mlflow_sink.ExportQueue(tracker)
        assert queue.pending() == [] and queue.record("r1") is None  # no table yet: nothing created
        queue.enqueue(["r1", "r2"], claim=True)
        assert queue.pending() == ["r1", "r2"] and queue.claim("r1")  # this process holds it
        gone = subprocess.Popen(["true"])
        gone.wait()
        for pid, free in ((os.getppid(), False), (gone.pid, True)):  # a live process holds it; a dead one not
            tracker.conn.execute("UPDATE mlflow_exports SET claimed_by=? WHERE run_id='r2'", (pid,))
            queue.enqueue(["r2"])  # listing a run again never takes it from its sender
            assert queue.claim("r2") is free
        queue.failed("r1", "server down")
        assert queue.record("r1")["error"] == "server down" and queue.record("r1")["attempts"] == 1
        target = mlflow_sink.MlflowTarget("http://u:p@h:1")
        queue.done(
            "r1", mlflow_sink.Exported("r1", "exported", "m1", "3", "http://h:1/#/experiments/3/runs/m1"), target
        )
        assert queue.pending() == ["r2"] and queue.record("r1")["tracking_uri"] == "http://h:1"
