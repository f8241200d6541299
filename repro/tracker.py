"""The run tracker: every run of an experiment, its metrics, artifacts and environment.

Storage is an embedded SQLite database at ``<vault>/.paperkb/runs.db`` in WAL mode, so
readers never block the writer and two ``paperkb run`` processes can record into the same
vault at once (each write waits up to ``BUSY_TIMEOUT_MS`` for the other). Every state
change of a run (queued, running, a batch of metrics, finished) is one transaction: a
``kill -9`` at any moment leaves every committed run intact.

Files of a run live in ``<vault>/.paperkb/runs/<id>/``: ``metrics.json``, ``stdout.log``,
``stderr.log``, ``events.jsonl`` (what the child process reported), ``git.diff`` and the
PNG plots.

A run whose ``paperkb`` process died while it was running (power loss, ``kill -9``) is
found by :meth:`Tracker.reap_stale` — its process is gone, or its heartbeat is older than
``STALE_AFTER_S`` — and marked ``interrupted``. Every repro command calls it on start.

This module is torch-free and cheap to import: listing commands use it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError
from repro.processes import pid_alive as _pid_alive

QUEUED, RUNNING = "queued", "running"
PASSED, FAILED, ERROR, INTERRUPTED, TIMEOUT = "passed", "failed", "error", "interrupted", "timeout"
# Not run: the preset needs what this machine lacks; ``needs`` says what (e.g. "a CUDA GPU").
SKIPPED = "skipped"
# Ended on purpose before it finished (``paperkb runs cancel``: a cluster job cancelled with scancel).
CANCELLED = "cancelled"
STATUSES = (QUEUED, RUNNING, PASSED, FAILED, ERROR, INTERRUPTED, TIMEOUT, SKIPPED, CANCELLED)
FINISHED = frozenset({PASSED, FAILED, ERROR, INTERRUPTED, TIMEOUT, SKIPPED, CANCELLED})

BUSY_TIMEOUT_MS = 60_000
HEARTBEAT_EVERY_S = 2.0
STALE_AFTER_S = 60.0
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    experiment  TEXT NOT NULL,
    claims      TEXT NOT NULL DEFAULT '[]',  -- JSON list of claim ids the run was launched for
    params      TEXT NOT NULL DEFAULT '{}',  -- JSON: every parameter value the run used
    overrides   TEXT NOT NULL DEFAULT '{}',  -- JSON: the ones given with --param
    preset      TEXT NOT NULL,
    seed        INTEGER NOT NULL DEFAULT 0,
    device      TEXT,
    nproc       INTEGER NOT NULL DEFAULT 1,
    nnodes      INTEGER NOT NULL DEFAULT 1,
    timeout_s   REAL,
    status      TEXT NOT NULL,
    verdict     TEXT,                        -- supported | contradicted | NULL
    checks      TEXT NOT NULL DEFAULT '[]',  -- JSON: the thresholds and whether each passed
    summary     TEXT,
    error       TEXT,                        -- traceback or reason for error/timeout/interrupted
    environment TEXT NOT NULL DEFAULT '{}',  -- JSON: see repro.environment
    command     TEXT,                        -- JSON list: the paperkb command line
    host        TEXT,
    pid         INTEGER,                     -- the paperkb process watching the run
    child_pid   INTEGER,                     -- the experiment's process (group leader)
    batch       TEXT,                        -- runs started by one `paperkb run` share it
    created     REAL NOT NULL,
    started     REAL,
    ended       REAL,
    heartbeat   REAL,
    control     TEXT,                        -- the negative control run (NULL: the real code)
    scale       TEXT,                        -- smoke | full | paper (see repro.registry.SCALES)
    claim_spec  TEXT NOT NULL DEFAULT '{}',  -- JSON {"params", "expect"}: a claim's own params:: / expect::
    needs       TEXT,                        -- for a skipped run: what the machine lacks
    seed_set    TEXT NOT NULL DEFAULT '{}'   -- JSON: the declared seed set the run belongs to (see below)
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment, created);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name   TEXT NOT NULL,
    value  REAL,
    step   REAL,
    time   REAL,
    rank   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name   TEXT NOT NULL,
    kind   TEXT NOT NULL DEFAULT 'file',
    size   INTEGER,
    PRIMARY KEY (run_id, name)
);
"""

_JSON_COLUMNS = ("claims", "params", "overrides", "checks", "environment", "command", "claim_spec", "seed_set")
# Columns added after schema 1, with their declarations (an older runs.db gains them on open).
_ADDED_COLUMNS = {
    "control": "TEXT",
    "scale": "TEXT",
    "claim_spec": "TEXT NOT NULL DEFAULT '{}'",
    "needs": "TEXT",
    "seed_set": "TEXT NOT NULL DEFAULT '{}'",
}
# ``seed_set`` of a run: ``{"group", "seeds", "need", "rule"}`` when it is one of the runs of
# an experiment's declared seeds, planned together (they decide a claim together, see
# repro.status); ``{"explicit": true}`` when made with ``--seed N`` (recorded, never decides);
# ``{}`` for a run recorded before seed sets existed.


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string (what JSON output shows)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """Sortable by start time and unique across processes: ``20261126-151230-3fa9c1``."""
    import secrets  # here, not at the top: `paperkb status` and `claims` read runs, never make one

    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _hostname() -> str:
    import socket  # only where a run is recorded: reading runs (status, claims) skips it

    return socket.gethostname()


# The fields of :meth:`Run.brief`, in the order listings give them.
BRIEF_FIELDS = (
    "id",
    "experiment",
    "claims",
    "preset",
    "scale",
    "control",
    "params",
    "overrides",
    "claim_spec",
    "seed",
    "seed_set",
    "device",
    "nproc",
    "status",
    "verdict",
    "needs",
    "summary",
    "created",
    "started",
    "ended",
    "duration_s",
)


@dataclass
class Run:
    id: str
    experiment: str
    preset: str
    status: str
    claims: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str | None = None
    nproc: int = 1
    nnodes: int = 1
    timeout_s: float | None = None
    verdict: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    summary: str | None = None
    error: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    host: str | None = None
    pid: int | None = None
    child_pid: int | None = None
    batch: str | None = None
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    heartbeat: float | None = None
    control: str | None = None
    scale: str | None = None
    claim_spec: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None
    seed_set: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else time.time()
        return max(0.0, end - self.started)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for key in ("created", "started", "ended", "heartbeat"):
            d[key] = iso(d[key])
        d["duration_s"] = None if self.duration_s is None else round(self.duration_s, 3)
        return d

    def brief(self) -> dict[str, Any]:
        """What a listing of runs gives each (``runs --format json``, ``run --format json``):
        :data:`BRIEF_FIELDS` and the Slurm job id, without the environment and command."""
        d = self.to_dict()
        job_id = ((d.get("environment") or {}).get("slurm") or {}).get("job_id")
        return {k: d.get(k) for k in BRIEF_FIELDS} | {"slurm_job_id": job_id}


class Tracker:
    """The runs of one vault. ``Tracker(root)`` creates ``.paperkb/runs.db`` if needed;
    use :meth:`open_existing` for read-only commands that must not create anything."""

    def __init__(self, vault_root: Path | str) -> None:
        self.root = Path(vault_root)
        self.home = self.root / ".paperkb"
        self.db_path = self.home / "runs.db"
        self.runs_dir = self.home / "runs"
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self.conn = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise PaperkbError(f"cannot open the run tracker at {self.db_path}: {exc}") from None

    @classmethod
    def open_existing(cls, vault_root: Path | str) -> Tracker | None:
        """The tracker if ``runs.db`` exists, else ``None`` (nothing is created)."""
        if not (Path(vault_root) / ".paperkb" / "runs.db").is_file():
            return None
        return cls(vault_root)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per state change.
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = _enter_wal(conn)
        if mode != "wal":  # e.g. a network file system without shared memory
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "runs", "metrics", "artifacts"} <= have:
            with _transaction(conn):
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        missing = [c for c in _ADDED_COLUMNS if c not in cols]
        if missing:
            with _transaction(conn):
                cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}  # another process may have won
                for c in missing:
                    if c not in cols:
                        conn.execute(f"ALTER TABLE runs ADD COLUMN {c} {_ADDED_COLUMNS[c]}")
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        return conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if isinstance(exc, (OSError, sqlite3.Error)) and _disk_full(exc):
                where = getattr(exc, "filename", None) or self.db_path
                reason = f"disk full while writing {where}"
                self._fail_unfinished(reason)
                raise PaperkbError(
                    reason + "; free some space and run again", exit_code=3
                ) from None  # a run ended in error
        finally:
            self.close()

    def _fail_unfinished(self, reason: str) -> None:
        """Record ``reason`` on this process's runs that never finished (best effort: the
        disk is full; a checkpoint may give back the WAL's space for this small write)."""
        sql = "UPDATE runs SET status=?, error=?, ended=? WHERE pid=? AND status IN (?, ?)"
        for attempt in range(2):
            try:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                with _transaction(self.conn):
                    self.conn.execute(sql, (ERROR, reason, time.time(), os.getpid(), QUEUED, RUNNING))
                return
            except sqlite3.Error:
                if attempt == 0:
                    try:
                        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error:
                        pass

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    # ---- state changes (one transaction each) ------------------------------------
    def create_run(
        self,
        experiment: str,
        *,
        preset: str,
        params: dict[str, Any],
        overrides: dict[str, Any] | None = None,
        claims: Iterable[str] = (),
        seed: int = 0,
        device: str | None = None,
        nproc: int = 1,
        nnodes: int = 1,
        timeout_s: float | None = None,
        environment: dict[str, Any] | None = None,
        command: list[str] | None = None,
        batch: str | None = None,
        control: str | None = None,
        scale: str | None = None,
        claim_spec: dict[str, Any] | None = None,
        seed_set: dict[str, Any] | None = None,
    ) -> Run:
        run = Run(
            id=new_run_id(),
            experiment=experiment,
            preset=preset,
            status=QUEUED,
            claims=list(claims),
            params=dict(params),
            overrides=dict(overrides or {}),
            seed=seed,
            device=device,
            nproc=nproc,
            nnodes=nnodes,
            timeout_s=timeout_s,
            environment=dict(environment or {}),
            command=list(command or []),
            host=_hostname(),
            pid=os.getpid(),
            batch=batch,
            created=time.time(),
            control=control,
            scale=scale,
            claim_spec=dict(claim_spec or {}),
            seed_set=dict(seed_set or {}),
        )
        row = {k: v for k, v in run.__dict__.items()}
        for key in _JSON_COLUMNS:
            row[key] = _dumps(row[key])
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with _transaction(self.conn):
            self.conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", row)
        self.run_dir(run.id).mkdir(parents=True, exist_ok=True)
        return run

    def record_skipped(
        self,
        experiment: str,
        *,
        preset: str,
        needs: str,
        reason: str,
        claims: Iterable[str] = (),
        scale: str | None = None,
        claim_spec: dict[str, Any] | None = None,
        control: str | None = None,
        batch: str | None = None,
        seed_set: dict[str, Any] | None = None,
    ) -> Run:
        """A run that did not start because the machine lacks ``needs`` (e.g. "a CUDA GPU")."""
        run = self.create_run(
            experiment,
            preset=preset,
            params={},
            claims=claims,
            scale=scale,
            claim_spec=claim_spec,
            control=control,
            batch=batch,
            seed_set=seed_set,
        )
        now = time.time()
        with _transaction(self.conn):
            self.conn.execute(
                "UPDATE runs SET status=?, needs=?, error=?, ended=? WHERE id=?", (SKIPPED, needs, reason, now, run.id)
            )
        return self.get(run.id)

    def mark_running(self, run_id: str, child_pid: int | None) -> None:
        now = time.time()
        with _transaction(self.conn):
            self.conn.execute(
                "UPDATE runs SET status=?, started=?, heartbeat=?, child_pid=?, pid=?, host=? WHERE id=?",
                (RUNNING, now, now, child_pid, os.getpid(), _hostname(), run_id),
            )

    def beat(self, run_id: str) -> None:
        with _transaction(self.conn):
            self.conn.execute("UPDATE runs SET heartbeat=? WHERE id=? AND status=?", (time.time(), run_id, RUNNING))

    def add_metrics(self, run_id: str, metrics: Iterable[dict[str, Any]]) -> int:
        """Record metrics (dicts with name, value, step, time, rank) and beat, in one transaction."""
        rows = [
            (
                run_id,
                str(m["name"]),
                _num(m.get("value")),
                _num(m.get("step")),
                _num(m.get("time")),
                int(m.get("rank") or 0),
            )
            for m in metrics
        ]
        with _transaction(self.conn):
            if rows:
                self.conn.executemany(
                    "INSERT INTO metrics (run_id, name, value, step, time, rank) VALUES (?, ?, ?, ?, ?, ?)", rows
                )
            self.conn.execute("UPDATE runs SET heartbeat=? WHERE id=? AND status=?", (time.time(), run_id, RUNNING))
        return len(rows)

    def add_artifact(self, run_id: str, name: str, kind: str = "file") -> None:
        path = self.run_dir(run_id) / name
        size = path.stat().st_size if path.is_file() else None
        with _transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO artifacts (run_id, name, kind, size) VALUES (?, ?, ?, ?)",
                (run_id, name, kind, size),
            )

    def update_environment(self, run_id: str, extra: dict[str, Any]) -> None:
        """Merge ``extra`` (e.g. what the child found about torch and the GPU) into the environment."""
        with _transaction(self.conn):
            row = self.conn.execute("SELECT environment FROM runs WHERE id=?", (run_id,)).fetchone()
            env = json.loads(row[0]) if row else {}
            env.update(extra)
            self.conn.execute("UPDATE runs SET environment=? WHERE id=?", (_dumps(env), run_id))

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        verdict: str | None = None,
        checks: list[dict[str, Any]] | None = None,
        summary: str | None = None,
        error: str | None = None,
    ) -> None:
        if status not in FINISHED:
            raise ValueError(f"not a final status: {status}")
        with _transaction(self.conn):
            self.conn.execute(
                "UPDATE runs SET status=?, verdict=?, checks=?, summary=?, error=?, ended=?, heartbeat=? WHERE id=?",
                (status, verdict, _dumps(checks or []), summary, error, time.time(), time.time(), run_id),
            )

    def reap_stale(self, stale_after_s: float = STALE_AFTER_S) -> list[str]:
        """Mark ``interrupted`` every running/queued run whose watcher is gone.

        On this host a run is orphaned when its paperkb process no longer exists; a run
        watched from another host (a vault on a shared disk) when its heartbeat is older
        than ``stale_after_s``. Returns the ids marked. If the watcher was only paused and
        comes back, its own ``finish`` overwrites the mark with the real outcome.
        """
        host = _hostname()
        now = time.time()
        # A run submitted to Slurm (repro.slurm) lives without a watcher: Slurm's own state decides it.
        rows = self.conn.execute(
            "SELECT id, host, pid, heartbeat, created, status FROM runs WHERE status IN (?, ?)"
            " AND json_extract(environment, '$.slurm.job_id') IS NULL",
            (RUNNING, QUEUED),
        ).fetchall()
        reaped = []
        for r in rows:
            last = r["heartbeat"] if r["heartbeat"] is not None else r["created"]
            if r["host"] == host:
                if r["pid"] is None or r["pid"] == os.getpid() or _pid_alive(r["pid"]):
                    continue
                reason = f"the paperkb process {r['pid']} watching this run is gone"
            elif now - last > stale_after_s:
                reason = f"no heartbeat from {r['host']} for {now - last:.0f} s"
            else:
                continue
            with _transaction(self.conn):
                cur = self.conn.execute(
                    "UPDATE runs SET status=?, error=?, ended=? WHERE id=? AND status=?",
                    (INTERRUPTED, f"interrupted: {reason}", now, r["id"], r["status"]),
                )
            if cur.rowcount:
                reaped.append(r["id"])
        return reaped

    # ---- reading -----------------------------------------------------------------
    def get(self, run_id: str) -> Run:
        """A run by id or by an unambiguous prefix of its id."""
        row = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None and run_id:
            like = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self.conn.execute(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 6", (like,)
            ).fetchall()
            if len(rows) > 1:
                shown = ", ".join(r["id"] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
                raise PaperkbError(f"run id {run_id!r} is ambiguous: {shown} (give more of it)")
            row = rows[0] if rows else None
        if row is None:
            raise PaperkbError(f"no run {run_id!r} (see `paperkb runs`)")
        return _run_of(row)

    def runs(
        self,
        *,
        claim: str | None = None,
        experiment: str | None = None,
        status: str | None = None,
        batch: str | None = None,
        limit: int | None = None,
        light: bool = False,
    ) -> list[Run]:
        """Runs, newest first, optionally only those of a claim / experiment / status / batch.
        ``light`` leaves out the environment and the command (for status tables)."""
        where, args = [], []
        if claim is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(runs.claims) WHERE json_each.value = ?)")
            args.append(claim)
        if experiment is not None:
            where.append("experiment = ?")
            args.append(experiment)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if batch is not None:
            where.append("batch = ?")
            args.append(batch)
        if light:
            cols = [
                r[1] for r in self.conn.execute("PRAGMA table_info(runs)") if r[1] not in ("environment", "command")
            ]
            sql = f"SELECT {', '.join(cols)} FROM runs"
        else:
            sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_run_of(r) for r in self.conn.execute(sql, args)]

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT name, value, step, time, rank FROM metrics WHERE run_id=? ORDER BY rowid", (run_id,)
        )
        return [dict(r) for r in rows]

    def final_metrics(self, run_id: str) -> dict[str, float | None]:
        """The last value of each metric (rank 0 first), for tables and comparisons."""
        out: dict[str, float | None] = {}
        for m in self.metrics(run_id):
            if m["rank"] == 0 or m["name"] not in out:
                out[m["name"]] = m["value"]
        return out

    def compare(self, a: Run, b: Run) -> list[dict[str, Any]]:
        """Rows ``{section, key, a, b, same}`` putting two runs side by side: the run's
        own fields, parameters, final metrics, checks, environment and the packages that differ."""
        return compare_runs(a, b, self.final_metrics(a.id), self.final_metrics(b.id))

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT name, kind, size FROM artifacts WHERE run_id=? ORDER BY name", (run_id,))
        return [dict(r) for r in rows]

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])


# ---- helpers ------------------------------------------------------------------------
class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (ROLLBACK on error): takes the write lock up
    front so two processes queue on busy_timeout instead of failing on upgrade."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # SQLite already rolled back after e.g. a full disk
            self.conn.execute("ROLLBACK")


def _enter_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL and return the journal mode now in force. Two processes creating
    ``runs.db`` at once both ask for the switch, which needs the file to themselves, and
    SQLite answers "database is locked" at once instead of waiting on busy_timeout (one run
    in three of ``test_two_processes_writing_at_once_lose_nothing`` failed so): so wait here,
    within the same timeout. A file already in WAL answers without a lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.002
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (5, 6) or time.monotonic() > deadline:
                raise  # not SQLITE_BUSY / SQLITE_LOCKED, or waited long enough
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _disk_full(exc: BaseException) -> bool:
    import errno

    return getattr(exc, "errno", None) == errno.ENOSPC or getattr(exc, "sqlite_errorcode", 0) & 0xFF == 13


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=True)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _run_of(row: sqlite3.Row) -> Run:
    d = dict(row)
    for key in _JSON_COLUMNS:
        if key in d or key in ("environment", "command"):
            d[key] = json.loads(d[key]) if d.get(key) else ([] if key in ("claims", "checks", "command") else {})
    return Run(**d)


def last_metric_values(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last value of each metric (per rank), with ``points``: how many were recorded."""
    finals: dict[tuple[str, int], dict[str, Any]] = {}
    counts: dict[tuple[str, int], int] = {}
    for m in metrics:
        key = (m["name"], m["rank"])
        finals[key] = m
        counts[key] = counts.get(key, 0) + 1
    return [{**m, "points": counts[key]} for key, m in finals.items()]


def source_summary(src: dict[str, Any]) -> str:
    """``rope-example 0.1.0 (folder), git 1a2b3c4d (dirty)``: a third-party experiment's code."""
    name = f"{src.get('package') or src.get('module')} {src.get('version') or ''}".strip()
    kind = (src.get("install") or {}).get("kind")
    git = src.get("git") or {}
    commit = f", git {str(git['commit'])[:12]}{' (dirty)' if git.get('dirty') else ''}" if git.get("commit") else ""
    return f"{name}{f' ({kind})' if kind else ''}{commit}"


def environment_facts(env: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded environment (see repro.environment) as flat values: what
    ``runs compare`` puts side by side and :func:`environment_summary` words."""
    git, machine, torch = env.get("git") or {}, env.get("machine") or {}, env.get("torch") or {}
    return {
        "git commit": git.get("commit"),
        "git dirty": git.get("dirty"),
        "python": (env.get("python") or {}).get("version"),
        "torch": torch.get("version"),
        "cuda": torch.get("cuda"),
        "cudnn": torch.get("cudnn"),
        "devices": [d.get("name") for d in torch.get("devices", [])],
        "cpu": machine.get("cpu_model"),
        "ram_bytes": machine.get("ram_bytes"),
        "host": machine.get("host"),
    }


def compare_runs(
    a: Run, b: Run, metrics_a: dict[str, float | None], metrics_b: dict[str, float | None]
) -> list[dict[str, Any]]:
    """Rows ``{section, key, a, b, same}`` putting runs ``a`` and ``b`` side by side, given
    each one's final metrics (:meth:`Tracker.compare` reads them)."""
    rows: list[dict[str, Any]] = []

    def add(section: str, key: str, x: Any, y: Any) -> None:
        rows.append({"section": section, "key": key, "a": x, "b": y, "same": x == y})

    for key in ("experiment", "preset", "status", "verdict", "seed", "device", "nproc", "claims"):
        add("run", key, getattr(a, key), getattr(b, key))
    add("run", "duration_s", a.duration_s and round(a.duration_s, 2), b.duration_s and round(b.duration_s, 2))
    for key in sorted(set(a.params) | set(b.params)):
        add("params", key, a.params.get(key), b.params.get(key))
    for key in sorted(set(metrics_a) | set(metrics_b)):
        add("metrics", key, metrics_a.get(key), metrics_b.get(key))
    checks_a = {c["name"]: c for c in a.checks}
    checks_b = {c["name"]: c for c in b.checks}
    for key in sorted(set(checks_a) | set(checks_b)):
        fa, fb = checks_a.get(key), checks_b.get(key)
        add("checks", key, fa and ("pass" if fa["passed"] else "fail"), fb and ("pass" if fb["passed"] else "fail"))
    facts_a, facts_b = environment_facts(a.environment), environment_facts(b.environment)
    for key in facts_a:
        add("environment", key, facts_a[key], facts_b[key])
    pa, pb = a.environment.get("packages") or {}, b.environment.get("packages") or {}
    for key in sorted(set(pa) | set(pb), key=str.lower):
        if pa.get(key) != pb.get(key):
            add("packages", key, pa.get(key), pb.get(key))
    return rows


def environment_summary(env: dict[str, Any]) -> list[tuple[str, Any]]:
    """The few facts of a run's recorded environment worth a glance (``runs show``)."""
    facts = environment_facts(env)
    machine, torch = env.get("machine") or {}, env.get("torch") or {}
    devs = ", ".join(f"{x['name']} ({x['memory_bytes'] / 2**30:.0f} GiB)" for x in torch.get("devices", [])) or "cpu"
    ram = facts["ram_bytes"]
    rows: list[tuple[str, Any]] = [
        ("git commit", f"{facts['git commit'] or '-'}{' (dirty)' if facts['git dirty'] else ''}"),
        ("python", facts["python"]),
        ("torch", f"{torch.get('version', '-')} cuda {facts['cuda'] or '-'} cudnn {facts['cudnn'] or '-'}"),
        ("devices", devs),
        ("cpu", f"{machine.get('cpu_model', '-')} x{machine.get('cpu_count', '-')}"),
        ("ram", f"{ram / 2**30:.1f} GiB" if ram else "-"),
        ("host", facts["host"]),
        ("packages", f"{len(env.get('packages') or {})} recorded (--format json lists them)"),
    ]
    source = env.get("experiment_source")
    return rows + ([("experiment code", source_summary(source))] if source else []) + _slurm_summary(env.get("slurm"))


def _slurm_summary(slurm: Any) -> list[tuple[str, Any]]:
    """A cluster run's job (``repro.slurm``): cluster, job id, nodes, state, attempts."""
    if not isinstance(slurm, dict) or not slurm.get("job_id"):
        return []
    attempts = len(slurm.get("attempts") or []) or 1
    where = f" on {slurm['nodes']}" if slurm.get("nodes") else ""
    return [
        (
            "slurm",
            f"job {slurm['job_id']} ({slurm.get('cluster') or '-'}){where}, {slurm.get('state', '-')}, "
            f"{attempts} attempt{'s' if attempts != 1 else ''}",
        )
    ]
