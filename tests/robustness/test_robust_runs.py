"""A run whose disk filled is recorded as an error, not left "running" (issue 12, item 11)."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from kb.errors import PaperkbError
from repro.tracker import ERROR, RUNNING, Tracker


def _full(tracker: Tracker) -> None:
    """Make SQLite see a full disk from now on (no page may be added)."""
    pages = tracker.conn.execute("PRAGMA page_count").fetchone()[0]
    tracker.conn.execute(f"PRAGMA max_page_count={pages}")


def test_disk_full_during_a_run_is_recorded_as_error(tmp_path):
    with pytest.raises(PaperkbError) as err:
        with Tracker(tmp_path) as tracker:
            run = tracker.create_run("exp", preset="smoke", params={})
            tracker.mark_running(run.id, None)
            _full(tracker)
            tracker.add_metrics(run.id, [{"name": "loss", "value": float(i), "step": i} for i in range(20_000)])
    message = str(err.value)
    assert message.startswith("disk full while writing") and "runs.db" in message
    assert "Error" not in message and err.value.exit_code == 3  # the run code for "ended in error"; 1 would read "contradicted", 2 "bad usage"
    with Tracker(tmp_path) as tracker:
        final = tracker.get(run.id)
    assert final.status == ERROR and final.error.startswith("disk full while writing")


def test_a_file_that_filled_the_disk_is_named(tmp_path):
    with pytest.raises(PaperkbError, match="disk full while writing .*metrics.json"):
        with Tracker(tmp_path) as tracker:
            run = tracker.create_run("exp", preset="smoke", params={})
            tracker.mark_running(run.id, None)
            raise OSError(errno.ENOSPC, "No space left on device", str(tracker.run_dir(run.id) / "metrics.json"))
    with Tracker(tmp_path) as tracker:
        assert tracker.get(run.id).status == ERROR


def test_other_errors_pass_through_untouched(tmp_path):
    with pytest.raises(KeyError):
        with Tracker(tmp_path) as tracker:
            run = tracker.create_run("exp", preset="smoke", params={})
            tracker.mark_running(run.id, None)
            raise KeyError("x")
    with Tracker(tmp_path) as tracker:
        assert tracker.get(run.id).status == RUNNING  # reap_stale's business, not ours
    assert sqlite3.sqlite_version
