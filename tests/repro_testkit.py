"""Plain helpers of the reproduction-framework tests: start ``paperkb`` as a child process,
read ``runs.db``, wait for a condition, make registry entries. The fixtures they go with
(``repro_env``, ``vault``) live in tests/conftest.py and tests/repro/conftest.py."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_EXPERIMENTS_DIR = ROOT / "tests" / "repro"  # paperkb_test_experiments.py, loaded by the children too
TEST_MODULE = "paperkb_test_experiments"


def _default_sigint() -> None:
    # A suite started in the background (`pytest &`) hands its children an ignored
    # SIGINT, and Python then never raises KeyboardInterrupt: give paperkb the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def paperkb(vault: Path, *args: str, env=None, **kw) -> subprocess.Popen:
    """Start ``paperkb --vault VAULT ARGS`` as a separate process (Ctrl-C handled as a
    user's terminal would, even when the test suite itself ignores it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli.app", "--vault", str(vault), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kw,
    )


def rows(vault: Path, sql: str, args=()) -> list[dict]:
    conn = sqlite3.connect(vault / ".paperkb" / "runs.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # paperkb is still creating the database
            return []
        raise
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def metric_rows(vault: Path, run_id: str) -> list[dict]:
    return rows(vault, "SELECT * FROM metrics WHERE run_id=? ORDER BY rowid", (run_id,))


def load_json(text: str):
    return json.loads(text)


def fake_experiments(claims, stochastic=()) -> dict:
    """Registry entries for the made-up experiment ids ``claims`` name (tests of the status
    roll-up record runs of experiments that exist nowhere): deterministic unless listed in
    ``stochastic``, recording any metric."""
    from repro import registry

    def fn(ctx):  # never run: the tests record the runs themselves
        raise AssertionError("not run")

    out = {}
    for c in claims:
        for e in c.experiments:
            out[e] = registry.Experiment(
                e,
                "made up",
                fn,
                presets={"smoke": registry.Preset(), "full": registry.Preset()},
                controls=(registry.Control("sabotage", "broken"),),
                stochastic=e in stochastic,
                metrics=(registry.Metric("{any}"),),
            )
    return out
