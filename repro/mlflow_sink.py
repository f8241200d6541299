"""Runs sent to an MLflow tracking server, besides the vault's own tracker.

The local tracker (``.paperkb/runs.db``) stays the record that claims are judged from;
MLflow is where a lab browses and compares runs. With ``MLFLOW_TRACKING_URI`` set, or in
``.paperkb/config.yaml``::

    tracking:
      mlflow: http://mlflow.lab.example:5000
      experiment: "{vault}/{experiment}"   # the default: one MLflow experiment per paperkb one

every run of ``paperkb run`` goes to MLflow as well: its MLflow run is created when it
starts, its metrics follow as they come (curves as series with their steps), and when it
ends its checks (a metric each, plus pass/fail), claim ids and their word, evidence kinds,
scale, control name, environment (as tags) and plots, logs and records (as artifacts)
complete it. ``paperkb runs export --to mlflow`` sends runs made before.

Exporting is idempotent: the paperkb run id is a tag, looked up before anything is
created; a run whose export was cut short (a partial MLflow run, without the
``paperkb.export = complete`` tag) is deleted and sent again whole.

A server that is down or refuses never costs a run: the run is recorded locally as
always, its export waits in the ``mlflow_exports`` table of the vault's ``runs.db`` (one
transaction per change, so concurrent commands and ``kill -9`` leave it consistent), and
the next ``paperkb runs`` or ``paperkb runs export`` sends it. A process exporting a run
claims it first, so two commands never send the same run twice.

The mlflow client (``pip install 'paperkb[mlflow]'``, the skinny client) is imported only
when a run is sent: nothing here slows down commands that do not export.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperkb.errors import MissingExtra, PaperkbError
from repro.processes import pid_alive
from repro.tracker import (
    ERROR,
    FAILED,
    INTERRUPTED,
    PASSED,
    SKIPPED,
    TIMEOUT,
    Run,
    Tracker,
    _transaction,
)

CONFIG_NAME = "config.yaml"
CONFIG_MAX_BYTES = 256 * 1024
DEFAULT_EXPERIMENT = "{vault}/{experiment}"
RUN_ID_TAG = "paperkb.run_id"
COMPLETE_TAG = "paperkb.export"  # "complete" once everything of the run has arrived
EXTRA = "pip install 'paperkb[mlflow]'"
HEALTH_TIMEOUT_S = 5.0
FLUSH_EVERY_S = 5.0  # live metrics are sent at most this often while a run runs
CLAIM_LEASE_S = 900.0  # a claim on an export older than this is taken over (its process hung)
MAX_ARTIFACT_BYTES = 512 * 2**20
MAX_TAG_CHARS = 5000
MAX_PARAM_CHARS = 500  # what older servers accept
# The mlflow client's defaults retry a dead server for minutes; a run must not wait on it.
_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # it writes run URLs to stdout otherwise
}
# Versions worth a tag of their own (every package is in the environment.json artifact).
_TAGGED_PACKAGES = ("torch", "transformers", "numpy", "triton", "safetensors", "tokenizers", "trl")
_MLFLOW_STATUS = {PASSED: "FINISHED", FAILED: "FINISHED", ERROR: "FAILED", TIMEOUT: "FAILED", INTERRUPTED: "KILLED"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mlflow_exports (
    run_id        TEXT PRIMARY KEY,        -- the paperkb run
    state         TEXT NOT NULL,           -- pending | done
    tracking_uri  TEXT,                    -- where it went (without user:password)
    experiment_id TEXT,
    mlflow_run_id TEXT,
    url           TEXT,                    -- the MLflow run's page, for http(s) servers
    error         TEXT,                    -- why the last attempt failed
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_by    INTEGER,                 -- pid of the process sending it now
    claimed_host  TEXT,
    claimed_at    REAL,
    updated       REAL NOT NULL
)
"""


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MlflowTarget:
    """Where runs go: the tracking URI, the experiment name template and where they were set."""

    uri: str
    experiment: str = DEFAULT_EXPERIMENT
    vault_name: str = "vault"
    source: str = "MLFLOW_TRACKING_URI"

    def experiment_name(self, experiment_id: str) -> str:
        # str.replace, not str.format: the template comes from a file paperkb does not trust
        return self.experiment.replace("{vault}", self.vault_name).replace("{experiment}", experiment_id)

    @property
    def public_uri(self) -> str:
        return public_uri(self.uri)


def public_uri(uri: str) -> str:
    """``uri`` without a ``user:password@`` part (never stored, never shown)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", uri)


def read_config(vault_root: Path) -> tuple[dict[str, Any], Path]:
    """``.paperkb/config.yaml`` of the vault as a mapping ({} when there is none), read with
    the bounded safe YAML loader of note properties; a broken file is one PaperkbError
    naming the file and line."""
    path = Path(vault_root) / ".paperkb" / CONFIG_NAME
    if not path.is_file():
        return {}, path
    try:
        if path.stat().st_size > CONFIG_MAX_BYTES:
            raise PaperkbError(f"{path}: larger than {CONFIG_MAX_BYTES // 1024} KiB; not read")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PaperkbError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise PaperkbError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    from kb.frontmatter import load_frontmatter

    props, _, issues = load_frontmatter(text, first_line=1)
    for line, level, message in issues:
        if level == "error":
            raise PaperkbError(f"{path}:{line}: {message.replace('frontmatter', 'configuration')}")
    return props, path


def mlflow_target(vault_root: Path | str) -> MlflowTarget | None:
    """The MLflow server runs go to: ``MLFLOW_TRACKING_URI``, else ``tracking: {mlflow: URI}``
    of ``.paperkb/config.yaml``; None when neither is set."""
    root = Path(vault_root)
    config, path = read_config(root)
    tracking = config.get("tracking")
    if tracking is None:
        tracking = {}
    if not isinstance(tracking, dict):
        raise PaperkbError(f"{path}: 'tracking' must be a mapping, e.g. tracking: {{mlflow: http://host:5000}}")
    uri_cfg, exp_cfg = tracking.get("mlflow"), tracking.get("experiment")
    for key, value in (("mlflow", uri_cfg), ("experiment", exp_cfg)):
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 2000):
            raise PaperkbError(f"{path}: tracking.{key} must be a non-empty text of at most 2000 characters")
    env_uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    uri = env_uri or (uri_cfg or "").strip()
    if not uri:
        return None
    source = "MLFLOW_TRACKING_URI" if env_uri else f"{path} (tracking.mlflow)"
    name = root.resolve().name or "vault"
    return MlflowTarget(uri=uri, experiment=(exp_cfg or DEFAULT_EXPERIMENT).strip(), vault_name=name, source=source)


def unreachable(target: MlflowTarget) -> str | None:
    """Why the server cannot be reached now (a short reason), or None. Only http(s) servers
    are asked (their ``/health`` page, with a short timeout): other URIs are local stores."""
    import urllib.error
    import urllib.request

    uri = target.public_uri
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_S) as response:
            response.read(256)
    except urllib.error.HTTPError as exc:
        return f"the server answered {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"cannot reach it ({reason})"
    return None


def _client(target: MlflowTarget) -> Any:
    for key, value in _CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingExtra(
            f"MLflow tracking is set ({target.source}) but the mlflow client is not installed; install it with: {EXTRA}"
        ) from None
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # its retries and notes would cut into paperkb's output
    return MlflowClient(tracking_uri=target.uri)


# --------------------------------------------------------------------------------------
# The export queue (a table of runs.db)
# --------------------------------------------------------------------------------------
class ExportQueue:
    """The runs waiting for MLflow and those sent, in the tracker's database."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.conn = tracker.conn
        self._ready = False

    def exists(self) -> bool:
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='mlflow_exports'").fetchone()
        return row is not None

    def _ensure(self) -> None:
        if not self._ready:
            if not self.exists():
                with _transaction(self.conn):
                    self.conn.execute(_SCHEMA)
            self._ready = True

    def enqueue(self, run_ids: Iterable[str], *, claim: bool = False) -> None:
        """Mark ``run_ids`` as waiting for MLflow. ``claim``: new runs this process sends
        itself; otherwise a run already listed keeps its state and its sender."""
        self._ensure()
        now = time.time()
        who = (os.getpid(), _host(), now) if claim else (None, None, None)
        on_conflict = (
            "DO UPDATE SET state='pending', updated=excluded.updated, claimed_by=excluded.claimed_by, "
            "claimed_host=excluded.claimed_host, claimed_at=excluded.claimed_at"
            if claim
            else "DO NOTHING"
        )
        with _transaction(self.conn):
            for run_id in run_ids:
                self.conn.execute(
                    "INSERT INTO mlflow_exports (run_id, state, updated, claimed_by, claimed_host, claimed_at) "
                    f"VALUES (?, 'pending', ?, ?, ?, ?) ON CONFLICT(run_id) {on_conflict}",
                    (run_id, now, *who),
                )

    def claim(self, run_id: str) -> bool:
        """Take ``run_id`` for this process; False when another live process is sending it."""
        self._ensure()
        now = time.time()
        with _transaction(self.conn):
            row = self.conn.execute(
                "SELECT claimed_by, claimed_host, claimed_at FROM mlflow_exports WHERE run_id=?", (run_id,)
            ).fetchone()
            if row is None:
                self.conn.execute(
                    "INSERT INTO mlflow_exports (run_id, state, updated, claimed_by, claimed_host, claimed_at) "
                    "VALUES (?, 'pending', ?, ?, ?, ?)",
                    (run_id, now, os.getpid(), _host(), now),
                )
                return True
            pid, host, at = row
            held = (
                pid is not None
                and pid != os.getpid()
                and (now - (at or 0)) < CLAIM_LEASE_S
                and (host != _host() or pid_alive(pid))
            )
            if held:
                return False
            self.conn.execute(
                "UPDATE mlflow_exports SET claimed_by=?, claimed_host=?, claimed_at=? WHERE run_id=?",
                (os.getpid(), _host(), now, run_id),
            )
            return True

    def failed(self, run_id: str, error: str) -> None:
        """The attempt failed: the run waits again (unclaimed) with the reason."""
        with _transaction(self.conn):
            self.conn.execute(
                "UPDATE mlflow_exports SET state='pending', error=?, attempts=attempts+1, claimed_by=NULL, "
                "claimed_host=NULL, claimed_at=NULL, updated=? WHERE run_id=?",
                (error[:2000], time.time(), run_id),
            )

    def done(self, run_id: str, sent: Exported, target: MlflowTarget) -> None:
        with _transaction(self.conn):
            self.conn.execute(
                "UPDATE mlflow_exports SET state='done', tracking_uri=?, experiment_id=?, mlflow_run_id=?, url=?, "
                "error=NULL, attempts=attempts+1, claimed_by=NULL, claimed_host=NULL, claimed_at=NULL, updated=? "
                "WHERE run_id=?",
                (target.public_uri, sent.experiment_id, sent.mlflow_run_id, sent.url, time.time(), run_id),
            )

    def pending(self) -> list[str]:
        if not self.exists():
            return []
        rows = self.conn.execute("SELECT run_id FROM mlflow_exports WHERE state='pending' ORDER BY run_id")
        return [r[0] for r in rows]

    def record(self, run_id: str) -> dict[str, Any] | None:
        if not self.exists():
            return None
        row = self.conn.execute(
            "SELECT state, tracking_uri, experiment_id, mlflow_run_id, url, error, attempts FROM mlflow_exports "
            "WHERE run_id=?",
            (run_id,),
        ).fetchone()
        return dict(row) if row is not None else None


def _host() -> str:
    import socket

    return socket.gethostname()


# --------------------------------------------------------------------------------------
# One run, as MLflow sees it
# --------------------------------------------------------------------------------------
@dataclass
class Exported:
    """What became of one run: ``exported`` (sent now), ``already`` (MLflow had it),
    ``queued`` (the server failed; it waits in the vault), ``busy`` (another process is
    sending it) or ``not finished``/``skipped`` (nothing to send yet, or ever)."""

    run_id: str
    state: str
    mlflow_run_id: str | None = None
    experiment_id: str | None = None
    url: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _key(text: str, limit: int = 250) -> str:
    """A name MLflow accepts for a metric, param or tag (letters, digits, ``_-. /``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_\-. /]+", "_", str(text))
    # MLflow refuses names that are not one normal path ("a//b", "./a", "a/../b")
    parts = [p.strip() for p in cleaned.split("/") if p.strip() not in ("", ".", "..")]
    return "/".join(parts)[:limit] or "_"


def _text(value: Any, limit: int = MAX_TAG_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(seconds: float | None, default: float) -> int:
    return int(1000 * (seconds if isinstance(seconds, (int, float)) else default))


def run_url(uri: str, experiment_id: str, mlflow_run_id: str) -> str | None:
    """The MLflow UI's page of a run, for an http(s) tracking server."""
    base = public_uri(uri).rstrip("/")
    if not base.startswith(("http://", "https://")):
        return None
    return f"{base}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"


def metric_points(run: Run, metrics: list[dict[str, Any]]) -> list[tuple[str, float, int, int]]:
    """``(key, value, timestamp_ms, step)`` of recorded metrics: a stepped metric becomes a
    series; a rank other than 0 gets its own key (``loss/rank1``)."""
    out = []
    for m in metrics:
        value = m.get("value")
        if value is None:
            continue
        key = _key(m.get("name") or "metric")
        if m.get("rank"):
            key = f"{key}/rank{int(m['rank'])}"
        step = m.get("step")
        out.append((key, float(value), _ms(m.get("time"), run.started or run.created), int(round(step or 0))))
    return out


def check_points(run: Run) -> list[tuple[str, float, int, int]]:
    """Each check as metrics: its value, its threshold (when a number) and pass/fail (1/0)."""
    at = _ms(run.ended, run.created)
    out = []
    for c in run.checks:
        name = "check/" + _key(c.get("name") or "check", 200)
        for suffix, value in (("", c.get("value")), ("/threshold", c.get("threshold"))):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append((name + suffix, float(value), at, 0))
        out.append((name + "/passed", 1.0 if c.get("passed") else 0.0, at, 0))
    return out


def _slurm_job(env: dict[str, Any], this_process: bool) -> str | None:
    slurm = env.get("slurm")
    job = (slurm.get("job_id") if isinstance(slurm, dict) else None) or env.get("slurm_job_id")
    if not job and this_process:
        job = os.environ.get("SLURM_JOB_ID")  # the run was made by this very process, inside that job
    return str(job) if job else None


def run_tags(run: Run, words: dict[str, str], *, this_process: bool = False) -> dict[str, str]:
    """The tags of a run's MLflow run: what it is, what it judged, where it ran.
    ``this_process``: the run was made by this process (live), so its Slurm job is this one's."""
    env = run.environment or {}
    git, torch = env.get("git") or {}, env.get("torch") or {}
    packages = env.get("packages") or {}
    evidence = sorted({str(c.get("evidence", "direct")) for c in run.checks})
    tags = {
        RUN_ID_TAG: run.id,
        "mlflow.runName": f"{run.experiment} [{run.preset}]" + (f" control {run.control}" if run.control else ""),
        "mlflow.source.name": "paperkb",
        "mlflow.source.type": "JOB",
        "paperkb.experiment": run.experiment,
        "paperkb.preset": run.preset,
        "paperkb.scale": run.scale or "",
        "paperkb.status": run.status,
        "paperkb.verdict": run.verdict or "",
        "paperkb.claims": ", ".join(run.claims),
        "paperkb.evidence": ", ".join(evidence),
        "paperkb.control": run.control or "",
        "paperkb.is_control": "true" if run.control else "false",
        "paperkb.overridden": ", ".join(sorted(run.overrides)),
        "paperkb.seed": str(run.seed),
        "paperkb.device": run.device or "",
        "paperkb.nproc": str(run.nproc),
        "paperkb.nnodes": str(run.nnodes),
        "paperkb.host": run.host or "",
        "paperkb.batch": run.batch or "",
        "paperkb.command": " ".join(run.command),
        "paperkb.version": str(packages.get("paperkb") or _paperkb_version()),
        "paperkb.python": str((env.get("python") or {}).get("version") or ""),
        "paperkb.git.commit": str(git.get("commit") or ""),
        "paperkb.git.branch": str(git.get("branch") or ""),
        "paperkb.git.dirty": str(bool(git.get("dirty"))).lower() if git.get("dirty") is not None else "",
        "paperkb.torch.cuda": str(torch.get("cuda") or ""),
        "paperkb.gpu": ", ".join(str(d.get("name")) for d in torch.get("devices") or [] if isinstance(d, dict)),
    }
    if git.get("commit"):
        tags["mlflow.source.git.commit"] = str(git["commit"])
    for name in _TAGGED_PACKAGES:
        if packages.get(name):
            tags[f"paperkb.package.{name}"] = str(packages[name])
    for name, value in run.overrides.items():
        tags[_key(f"paperkb.override.{name}")] = _text(value)
    for name, value in ((run.claim_spec or {}).get("params") or {}).items():
        tags[_key(f"paperkb.claim_param.{name}")] = _text(value)
    for cid, word in words.items():
        tags[_key(f"paperkb.claim.{cid}")] = word
    for c in run.checks:
        verdict = "passed" if c.get("passed") else "not met"
        scale = c.get("scale") or run.scale or ""
        tags[_key(f"paperkb.check.{c.get('name')}")] = _text(
            f"{c.get('value')} {c.get('op')} {c.get('threshold')}: {verdict} ({c.get('evidence', 'direct')}, {scale})"
        )
    job = _slurm_job(env, this_process)
    if job:
        tags["slurm.job_id"] = job
    note = [run.summary or ""]
    if run.error:
        note.append("```\n" + run.error.strip()[-3000:] + "\n```")
    tags["mlflow.note.content"] = _text("\n\n".join(filter(None, note)))
    return {k: _text(v) for k, v in tags.items() if v != ""}


def _paperkb_version() -> str:
    from paperkb import __version__

    return __version__


def run_params(run: Run) -> dict[str, str]:
    return {_key(k): _text(v, MAX_PARAM_CHARS) for k, v in run.params.items()}


def _artifact_folder(name: str, kind: str) -> str | None:
    """``plots/`` for the runner's plots and the pictures an experiment saves, ``logs/`` for logs."""
    if kind == "plot" or name.lower().endswith((".png", ".svg", ".pdf", ".jpg")):
        return "plots"
    return "logs" if kind == "log" else None


class MlflowExporter:
    """Sends runs of one vault to one MLflow server (the client is made on first use)."""

    def __init__(self, target: MlflowTarget, tracker: Tracker, vault_root: Path) -> None:
        self.target = target
        self.tracker = tracker
        self.vault_root = Path(vault_root)
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self._claims: list[Any] | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client(self.target)
        return self._client

    def experiment_id(self, paperkb_experiment: str) -> str:
        name = self.target.experiment_name(paperkb_experiment)
        if name in self._experiments:
            return self._experiments[name]
        client = self.client  # first: without the mlflow package this is the one-line MissingExtra
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                exp_id = self.client.create_experiment(name, tags={"paperkb.experiment": paperkb_experiment})
            except MlflowException:  # another process made it first
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
                exp_id = found.experiment_id
        elif found.lifecycle_stage != "active":
            raise PaperkbError(f"the MLflow experiment {name!r} is deleted; restore it in MLflow first")
        else:
            exp_id = found.experiment_id
        self._experiments[name] = str(exp_id)
        return str(exp_id)

    def find(self, experiment_id: str, run_id: str) -> list[Any]:
        """The active MLflow runs tagged with this paperkb run id."""
        safe = run_id.replace("\\", "\\\\").replace("'", "\\'")
        return list(self.client.search_runs([experiment_id], f"tags.`{RUN_ID_TAG}` = '{safe}'", max_results=50))

    def start(self, run: Run) -> tuple[str, str]:
        """Create the MLflow run of a run that starts now, with its params; (experiment id,
        MLflow run id). Its metrics follow through :meth:`log_points`, the rest at the end."""
        exp_id = self.experiment_id(run.experiment)
        for old in self.find(exp_id, run.id):  # a partial earlier attempt
            self.client.delete_run(old.info.run_id)
        tags = {k: v for k, v in run_tags(run, {}).items() if not k.startswith("paperkb.check.")}
        tags["paperkb.status"] = "running"
        created = self.client.create_run(exp_id, start_time=_ms(run.started, time.time()), tags=tags)
        mlflow_id = created.info.run_id
        self._log_batch(mlflow_id, params=run_params(run))
        return exp_id, mlflow_id

    def log_points(self, mlflow_run_id: str, points: list[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric

        for i in range(0, len(points), 1000):
            batch = [Metric(k, v, t, s) for k, v, t, s in points[i : i + 1000]]
            self.client.log_batch(mlflow_run_id, metrics=batch)

    def _log_batch(
        self, mlflow_run_id: str, *, params: dict[str, str] | None = None, tags: dict[str, str] | None = None
    ) -> None:
        from mlflow.entities import Param, RunTag

        p = [Param(k, v) for k, v in (params or {}).items()]
        t = [RunTag(k, v) for k, v in (tags or {}).items()]
        for i in range(0, max(len(p), len(t)), 100):
            self.client.log_batch(mlflow_run_id, params=p[i : i + 100], tags=t[i : i + 100])

    def claim_words(self, run: Run) -> dict[str, str]:
        """The word of each claim of ``run`` now (after the run): what ``paperkb status`` says."""
        if not run.claims:
            return {}
        from repro import status

        try:
            if self._claims is None:
                self._claims = status.vault_claims(self.vault_root)
            refs = [c for c in self._claims if c.id in run.claims]
            return {cid: str(st["status"]) for cid, st in status.claim_statuses(self.vault_root, refs).items()}
        except PaperkbError:
            return {}

    def export(self, run: Run, live: tuple[str, str, int] | None = None) -> Exported:
        """Send a finished run whole (idempotent: a complete MLflow run of it is kept as it
        is). ``live``: (experiment id, MLflow run id, metrics already sent) of the run
        made when it started; only the rest is sent then."""
        if live is None:
            exp_id = self.experiment_id(run.experiment)
            for found in self.find(exp_id, run.id):
                if found.data.tags.get(COMPLETE_TAG) == "complete":
                    mid = found.info.run_id
                    return Exported(run.id, "already", mid, exp_id, run_url(self.target.uri, exp_id, mid))
            exp_id, mid = self.start(run)
            sent = 0
        else:
            exp_id, mid, sent = live
        metrics = self.tracker.metrics(run.id)
        self.log_points(mid, metric_points(run, metrics[sent:]) + check_points(run))
        self._log_batch(mid, tags=run_tags(run, self.claim_words(run), this_process=live is not None))
        self._upload_artifacts(run, mid)
        self.client.set_tag(mid, COMPLETE_TAG, "complete")
        status = _MLFLOW_STATUS.get(run.status, "FINISHED")
        self.client.set_terminated(mid, status, end_time=_ms(run.ended, time.time()))
        for other in self.find(exp_id, run.id):
            # a create_run the client retried after a timeout may have made a second, empty run
            if other.info.run_id != mid and other.data.tags.get(COMPLETE_TAG) != "complete":
                self.client.delete_run(other.info.run_id)
        url = run_url(self.target.uri, exp_id, mid)
        return Exported(run.id, "exported", mid, exp_id, url)

    def _upload_artifacts(self, run: Run, mlflow_run_id: str) -> None:
        run_dir = self.tracker.run_dir(run.id)
        for a in self.tracker.artifacts(run.id):
            path = run_dir / a["name"]
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_ARTIFACT_BYTES:
                continue
            self.client.log_artifact(mlflow_run_id, str(path), _artifact_folder(a["name"], a["kind"]))
        with tempfile.TemporaryDirectory(prefix="paperkb-mlflow-") as tmp:
            env_file = Path(tmp) / "environment.json"
            env_file.write_text(json.dumps(run.environment, indent=2, default=str), encoding="utf-8")
            self.client.log_artifact(mlflow_run_id, str(env_file))


def write_link(tracker: Tracker, run_id: str, sent: Exported, target: MlflowTarget) -> None:
    """``mlflow.json`` in the run folder (what the static site reads): written atomically,
    never through a link, never over a file paperkb did not write."""
    run_dir = tracker.run_dir(run_id)
    dest = run_dir / "mlflow.json"
    if run_dir.is_symlink() or not run_dir.is_dir() or dest.is_symlink():
        return
    data = {
        "tracking_uri": target.public_uri,
        "experiment_id": sent.experiment_id,
        "run_id": sent.mlflow_run_id,
        "url": sent.url,
    }
    tmp = run_dir / f".mlflow.json.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, dest)
    except OSError:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# Sending runs: after the fact, and live
# --------------------------------------------------------------------------------------
def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def send(
    exporter: MlflowExporter,
    queue: ExportQueue,
    runs: Iterable[Run],
    *,
    progress: Callable[[str], None] | None = None,
) -> list[Exported]:
    """Send ``runs`` (each claimed first). When the server fails, the run and those after
    it stay queued, each with the reason."""
    out: list[Exported] = []
    down: str | None = unreachable(exporter.target)
    for run in runs:
        if progress:
            progress(run.id)
        if run.status == SKIPPED:
            out.append(Exported(run.id, "skipped", error=f"it never ran (needs {run.needs})"))
            continue
        if not run.finished:
            queue.enqueue([run.id])
            out.append(Exported(run.id, "not finished", error=f"it is {run.status}; sent once it ends"))
            continue
        if not queue.claim(run.id):
            out.append(Exported(run.id, "busy", error="another paperkb process is sending it"))
            continue
        if down is None:
            try:
                sent = exporter.export(run)
            except MissingExtra:
                queue.failed(run.id, "the mlflow client is not installed")
                raise
            except Exception as exc:  # a refusal or a server that fell over: the run waits
                down = _short(exc)
            else:
                queue.done(run.id, sent, exporter.target)
                write_link(exporter.tracker, run.id, sent, exporter.target)
                out.append(sent)
                continue
        queue.failed(run.id, down)
        out.append(Exported(run.id, "queued", error=down))
    return out


def export_runs(
    tracker: Tracker,
    vault_root: Path,
    run_ids: list[str] | None,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[Exported]:
    """``paperkb runs export --to mlflow``: send ``run_ids`` (None: every run that ran,
    and those queued), oldest first."""
    target = mlflow_target(vault_root)
    if target is None:
        raise PaperkbError(
            "no MLflow tracking server is set: set MLFLOW_TRACKING_URI or tracking: {mlflow: URI} "
            f"in {Path(vault_root) / '.paperkb' / CONFIG_NAME}",
            exit_code=2,
        )
    if run_ids is None:
        runs = [r for r in tracker.runs() if r.status != SKIPPED]
    else:
        runs = [tracker.get(r) for r in run_ids]
    runs.sort(key=lambda r: (r.created, r.id))
    return send(MlflowExporter(target, tracker, vault_root), ExportQueue(tracker), runs, progress=progress)


def retry_queued(tracker: Tracker, vault_root: Path, warn: Callable[[str], None]) -> list[Exported]:
    """Send the runs whose export waits (what ``paperkb runs`` does first); one warning
    line when the server still fails. Quiet and quick when nothing waits."""
    queue = ExportQueue(tracker)
    waiting = queue.pending()
    if not waiting:
        return []
    try:
        target = mlflow_target(vault_root)
    except PaperkbError as exc:  # a broken settings file must not stop the listing
        warn(f"{len(waiting)} runs wait for MLflow: {exc}")
        return []
    if target is None:
        return []
    runs = []
    for run_id in waiting:
        try:
            run = tracker.get(run_id)
        except PaperkbError:
            continue
        if run.finished:
            runs.append(run)
    try:
        results = send(MlflowExporter(target, tracker, vault_root), queue, runs)
    except MissingExtra as exc:
        warn(f"{len(runs)} runs wait for MLflow: {exc}")
        return []
    _warn_queued(results, target, warn)
    return results


def _warn_queued(results: list[Exported], target: MlflowTarget, warn: Callable[[str], None]) -> None:
    queued = [r for r in results if r.state == "queued"]
    if queued:
        n = len(queued)
        warn(
            f"MLflow at {target.public_uri} failed ({queued[0].error}); {n} run{'s' if n != 1 else ''} "
            "queued in the vault, sent by the next `paperkb runs` or `paperkb runs export --to mlflow`"
        )


@dataclass
class _Live:
    experiment_id: str
    mlflow_run_id: str
    sent: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    last_flush: float = 0.0


class MlflowSink:
    """A ``repro.runner.Monitor`` sending each run to MLflow as it happens: its MLflow run
    is made when it starts, metrics follow every ``FLUSH_EVERY_S``, the rest when it ends.
    Any failure (server down, refusing, no client) queues the run and says so once."""

    def __init__(
        self,
        target: MlflowTarget,
        tracker: Tracker,
        vault_root: Path,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.exporter = MlflowExporter(target, tracker, vault_root)
        self.queue = ExportQueue(tracker)
        self.tracker = tracker
        self.warn = warn
        self.clock = clock
        self.down: str | None = None
        self.live: dict[str, _Live] = {}
        self.warned = False

    def _fail(self, run: Run, exc: BaseException | str) -> None:
        reason = exc if isinstance(exc, str) else _short(exc)
        self.live.pop(run.id, None)
        if self.down is None:
            self.down = reason
        if not self.warned:
            self.warned = True
            if isinstance(exc, MissingExtra):
                self.warn(f"{exc}; runs are recorded here and queued for MLflow")
            else:
                self.warn(
                    f"MLflow at {self.target.public_uri} failed ({reason}); the run is recorded here and its export "
                    "queued in the vault, sent by the next `paperkb runs` or `paperkb runs export --to mlflow`"
                )

    def queued(self, runs: list[Run]) -> None:
        self.queue.enqueue([r.id for r in runs], claim=True)
        self.down = unreachable(self.target)

    def started(self, run: Run) -> None:
        if self.down is not None:
            return self._fail(run, self.down)
        try:
            exp_id, mid = self.exporter.start(run)
        except Exception as exc:
            return self._fail(run, exc)
        self.live[run.id] = _Live(exp_id, mid, last_flush=self.clock())

    def progress(self, run: Run, done: float, total: float, message: str) -> None:
        live = self.live.get(run.id)
        if live is not None and live.buffer and self.clock() - live.last_flush >= FLUSH_EVERY_S:
            self._flush(run, live)

    def metric(self, run: Run, metric: dict[str, Any]) -> None:
        live = self.live.get(run.id)
        if live is None:
            return
        live.buffer.append(metric)
        if self.clock() - live.last_flush >= FLUSH_EVERY_S:
            self._flush(run, live)

    def _flush(self, run: Run, live: _Live) -> None:
        points, live.buffer = live.buffer, []
        live.last_flush = self.clock()
        try:
            self.exporter.log_points(live.mlflow_run_id, metric_points(run, points))
        except Exception as exc:
            self._fail(run, exc)
            return
        live.sent += len(points)

    def finished(self, run: Run) -> None:
        live = self.live.pop(run.id, None)
        if live is None or not run.finished:
            self.queue.failed(run.id, self.down or "not sent while it ran")
            return
        try:
            # the tracker holds every metric in the order they came: send those after `sent`
            sent = self.exporter.export(run, (live.experiment_id, live.mlflow_run_id, live.sent))
        except Exception as exc:
            self._fail(run, exc)
            self.queue.failed(run.id, self.down or _short(exc))
            return
        self.queue.done(run.id, sent, self.target)
        write_link(self.tracker, run.id, sent, self.target)


def sink_for(vault_root: Path, tracker: Tracker, warn: Callable[[str], None]) -> MlflowSink | None:
    """The live MLflow monitor of ``paperkb run`` when MLflow is set for this vault."""
    target = mlflow_target(vault_root)
    return MlflowSink(target, tracker, vault_root, warn) if target is not None else None


def export_record(tracker: Tracker, run_id: str) -> dict[str, Any] | None:
    """Where a run went in MLflow (``state``, ``url``, ...), for ``paperkb runs show``."""
    return ExportQueue(tracker).record(run_id)
