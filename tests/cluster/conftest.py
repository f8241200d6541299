"""A real one-node Slurm for the cluster tests, started once per test session.

``start_cluster.sh`` installs slurm-wlm and munge (and slurmdbd with MariaDB, for sacct)
when they are missing (root and apt needed), starts munged, MariaDB, slurmdbd, slurmctld
and slurmd under a temporary folder on ports of their own, and stops exactly those daemons
at the end. Where Slurm cannot be installed the
tests that need it are skipped with the reason; the unit tests of the sbatch options run
everywhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRIPT = HERE / "start_cluster.sh"
EXPERIMENT_MODULES = "paperkb_test_experiments,cluster_test_experiments"


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports free now (all held open while chosen, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def slurm_conf(tmp_path_factory) -> Path:
    """Start the cluster (once); its slurm.conf. Skips when Slurm cannot be installed."""
    folder = tmp_path_factory.mktemp("slurm")
    names = ("PAPERKB_SLURMCTLD_PORT", "PAPERKB_SLURMD_PORT", "PAPERKB_SLURMDBD_PORT", "PAPERKB_MARIADB_PORT")
    ports = {name: str(port) for name, port in zip(names, _free_ports(len(names)))}
    env = dict(os.environ, **ports)
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=600, env=env
    )
    if done.returncode != 0:
        if "could not install" in done.stderr or "not root to install" in done.stderr:
            pytest.skip(f"no Slurm here: {done.stderr.strip().splitlines()[-1]}")
        logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in (folder / "log").glob("*") if p.is_file())
        pytest.fail(f"the test cluster did not start:\n{done.stderr}\n{logs}")
    print(f"\n[slurm] cluster up in {time.monotonic() - t0:.1f} s: {done.stderr.strip()}", file=sys.stderr)
    try:
        yield folder / "slurm.conf"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], timeout=60)


@pytest.fixture
def slurm_env(slurm_conf, monkeypatch) -> dict[str, str]:
    """The environment of a paperkb talking to the test cluster, with the test experiments
    registered (the jobs inherit it: sbatch exports the submitting environment)."""
    from repro.worker import EXTRA_MODULES_ENV, load_experiments

    monkeypatch.setenv("SLURM_CONF", str(slurm_conf))
    monkeypatch.setenv(EXTRA_MODULES_ENV, EXPERIMENT_MODULES)
    path = [str(HERE), str(ROOT / "tests" / "repro"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, path)))
    monkeypatch.delenv("PAPERKB_VAULT", raising=False)
    sys.path[:0] = [str(HERE), str(ROOT / "tests" / "repro")]
    try:
        load_experiments()
    finally:
        del sys.path[:2]
    return os.environ.copy()
