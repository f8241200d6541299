"""Runs on a Slurm cluster: ``paperkb run TARGET --on slurm``, through submitit.

The submitting side (this module) plans runs exactly as a local ``paperkb run`` does,
records each one ``queued`` in the tracker, writes its ``spec.json`` into its run folder
(which must be on a filesystem the compute nodes share) and submits it with submitit:
one Slurm job per run, or one job array for runs that ask for the same resources,
throttled by ``--max-parallel``. The compute side (``repro.slurm_job``) runs the usual
worker there and writes only into the run folder.

Only this side writes the tracker's SQLite file. :func:`refresh` asks Slurm (squeue,
then ``scontrol show job``, then sacct for jobs the controller has forgotten) where each
submitted run stands and ingests the run folder of every job that ended, with Slurm's
reason when it did not end well. ``paperkb run --on slurm`` calls it until its runs end;
``--detach`` returns after submitting, and every ``paperkb runs`` calls it, so the result
of a run whose submitting process is gone is picked up later. A run submitted to Slurm
is never reaped as orphaned (its watcher may leave on purpose); it ends when Slurm says so.

Resources come, in this order, from the command line (``--partition --gpus --nodes
--time``), the chosen profile of ``.paperkb/launch.yaml`` and the preset's requirements
(see :func:`job_parameters`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError, UsageError
from repro import registry
from repro.tracker import CANCELLED, ERROR, FINISHED, INTERRUPTED, QUEUED, RUNNING, TIMEOUT, Run, Tracker

LAUNCH_FILE = "launch.yaml"
MAX_LAUNCH_BYTES = 64_000
SLURM_TIMEOUT_S = 30.0  # for one squeue / scontrol / sacct / scancel call
DEFAULT_TIME_MIN = 60  # a job's time limit when neither profile, preset nor --time gives one
TIME_MARGIN = 1.25  # over the preset's own timeout: start-up, queue for the node's disk, import torch
SIGNAL_DELAY_S = 90  # submitit: SIGUSR2 this long before the time limit, to checkpoint and requeue
MAX_REQUEUES = 3  # time limits a run may hit before it ends `timeout`
FORGOTTEN_GRACE_S = 60.0  # a job Slurm does not know yet (or any more) and that left no result

# Slurm job states (squeue/scontrol/sacct), and what a run records for each final one.
WAITING_STATES = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "RESIZING", "SUSPENDED"}
ACTIVE_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "STOPPED"}
# A job cancelled outside paperkb (scancel by hand or by an administrator, a signal sent to
# it) was interrupted: `cancelled` is what `paperkb runs cancel` records itself.
_ENDED_AS = {
    "CANCELLED": INTERRUPTED,
    "TIMEOUT": TIMEOUT,
    "NODE_FAIL": INTERRUPTED,
    "PREEMPTED": INTERRUPTED,
    "BOOT_FAIL": INTERRUPTED,
    "REVOKED": INTERRUPTED,
    "FAILED": ERROR,
    "OUT_OF_MEMORY": ERROR,
    "DEADLINE": TIMEOUT,
    "SPECIAL_EXIT": ERROR,
}


# --------------------------------------------------------------------------------------
# Profiles: .paperkb/launch.yaml
# --------------------------------------------------------------------------------------
@dataclass
class LaunchProfile:
    """A named set of sbatch settings (one entry of ``profiles:`` in ``.paperkb/launch.yaml``)."""

    name: str = "default"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time: str | None = None  # minutes, or Slurm's [D-]HH:MM:SS
    nodes: int | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # e.g. 64GB
    max_parallel: int | None = None
    python: str | None = None  # the Python of the environment to use on the compute nodes
    setup: list[str] = field(default_factory=list)  # shell lines run before the job (module load ...)
    sbatch: dict[str, Any] = field(default_factory=dict)  # any other sbatch option, without the dashes


_PROFILE_TYPES: dict[str, type] = {
    "partition": str,
    "account": str,
    "qos": str,
    "constraint": str,
    "time": str,
    "nodes": int,
    "gpus_per_node": int,
    "cpus_per_task": int,
    "mem": str,
    "max_parallel": int,
    "python": str,
    "setup": list,
    "sbatch": dict,
}
_SBATCH_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


@dataclass
class LaunchOptions:
    """What the command line says about where and how to run (``--on slurm`` and friends);
    ``None`` leaves the choice to the profile, then to the preset."""

    profile: str | None = None
    partition: str | None = None
    gpus: int | None = None  # per node
    nodes: int | None = None
    time: str | None = None
    max_parallel: int | None = None
    detach: bool = False


def launch_file(vault_root: Path | str) -> Path:
    return Path(vault_root) / ".paperkb" / LAUNCH_FILE


def load_profiles(vault_root: Path | str) -> dict[str, LaunchProfile]:
    """The profiles of ``.paperkb/launch.yaml`` (none: ``{}``), with ``default`` the one
    the file names under ``default:`` (or the first). Raises PaperkbError naming the file
    and line of anything malformed.

    The file holds shell lines (``setup:``) and a Python path that run on the cluster, so
    it is read only when it belongs to the user running paperkb and no one else may write
    to it (as ssh treats its configuration).
    """
    path = launch_file(vault_root)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return {}
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise PaperkbError(f"{path}: not a regular file; launch profiles are read only from a plain file")
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PaperkbError(
            f"{path}: must belong to you and be writable by you alone (it holds commands run on the cluster); "
            f"chmod go-w {path}"
        )
    if st.st_size > MAX_LAUNCH_BYTES:
        raise PaperkbError(f"{path}: {st.st_size} bytes; a launch file is at most {MAX_LAUNCH_BYTES}")
    text = path.read_text(encoding="utf-8", errors="replace")
    return parse_profiles(text, str(path))


def parse_profiles(text: str, where: str = LAUNCH_FILE) -> dict[str, LaunchProfile]:
    """Profiles from the text of a launch file (see :func:`load_profiles`)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise PaperkbError(f"{where}:{line}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PaperkbError(f"{where}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    lines = _key_lines(root)
    if not isinstance(data, dict):
        raise PaperkbError(f"{where}:1: expected a mapping with `profiles:` (and `default:`)")
    for key in data:
        if key not in ("profiles", "default"):
            raise PaperkbError(f"{where}:{lines.get((str(key),), 1)}: unknown key {key!r} (expected profiles, default)")
    raw = data.get("profiles") or {}
    if not isinstance(raw, dict):
        raise PaperkbError(f"{where}:{lines.get(('profiles',), 1)}: `profiles:` must map names to settings")
    profiles: dict[str, LaunchProfile] = {}
    for name, settings in raw.items():
        name = str(name)
        at = lines.get(("profiles", name), 1)
        if not isinstance(settings, dict):
            raise PaperkbError(f"{where}:{at}: profile {name!r} must be a mapping of settings")
        values: dict[str, Any] = {}
        for key, value in settings.items():
            key_at = lines.get(("profiles", name, str(key)), at)
            want = _PROFILE_TYPES.get(str(key))
            if want is None:
                raise PaperkbError(
                    f"{where}:{key_at}: profile {name!r}: unknown setting {key!r} "
                    f"(known: {', '.join(sorted(_PROFILE_TYPES))})"
                )
            values[str(key)] = _checked(value, want, f"{where}:{key_at}: profile {name!r}: {key}")
        profiles[name] = LaunchProfile(name=name, **values)
    default = data.get("default")
    if default is not None:
        if str(default) not in profiles:
            raise PaperkbError(
                f"{where}:{lines.get(('default',), 1)}: default profile {default!r} is not one of the profiles"
            )
        profiles["default"] = profiles[str(default)]
    elif profiles and "default" not in profiles:
        profiles["default"] = next(iter(profiles.values()))
    return profiles


def _checked(value: Any, want: type, what: str) -> Any:
    if want is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PaperkbError(f"{what} must be a whole number >= 0; got {value!r}")
        return value
    if want is str:
        if isinstance(value, (dict, list)) or value is None:
            raise PaperkbError(f"{what} must be a single value; got {value!r}")
        return str(value)
    if want is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, (str, int, float)) for x in value):
            raise PaperkbError(f"{what} must be a list of shell lines")
        return [str(x) for x in value]
    if not isinstance(value, dict):
        raise PaperkbError(f"{what} must map sbatch option names to values")
    out: dict[str, Any] = {}
    for k, v in value.items():
        k = str(k).lstrip("-").replace("_", "-")
        if not _SBATCH_NAME.match(k):
            raise PaperkbError(f"{what}: {k!r} is not an sbatch option name")
        if isinstance(v, (dict, list)) or v is None:
            raise PaperkbError(f"{what}: {k} must be a single value")
        out[k] = v if isinstance(v, bool) else str(v)
    return out


def _key_lines(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """The line (1-based) of each key of a composed YAML document, by its path."""
    import yaml

    out: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode) and len(prefix) < 3:
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                path = (*prefix, str(key.value))
                out[path] = key.start_mark.line + 1
                out.update(_key_lines(value, path))
    return out


def choose_profile(profiles: dict[str, LaunchProfile], name: str | None, where: str = LAUNCH_FILE) -> LaunchProfile:
    """The profile named ``name`` (``--profile``), else the file's default, else an empty one."""
    if name is None:
        return profiles.get("default") or LaunchProfile()
    if name not in profiles:
        known = ", ".join(sorted(p for p in profiles if p != "default")) or f"none; write {where}"
        raise UsageError(f"--profile {name!r}: no such launch profile (known: {known})")
    return profiles[name]


# --------------------------------------------------------------------------------------
# Resources: preset requirements + profile + command line -> submitit parameters
# --------------------------------------------------------------------------------------
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def time_minutes(text: str) -> int:
    """Minutes of a Slurm time limit: ``90`` (minutes), ``1:30:00``, ``2-12:00:00``,
    ``45m``, ``3h``, ``2d``. Raises UsageError for anything else."""
    t = str(text).strip().lower()
    unit = {"m": 1, "h": 60, "d": 1440}
    if t[-1:] in unit and t[:-1].isdigit():
        minutes = int(t[:-1]) * unit[t[-1]]
    else:
        m = _TIME.match(t)
        if not m:
            raise UsageError(
                f"time limit {text!r}: give minutes, HH:MM:SS or D-HH:MM:SS (e.g. 90, 1:30:00, 2-00:00:00)"
            )
        days, a, b, c = (int(x) if x else None for x in m.groups())
        if b is None and days is None:  # "90": minutes, as sbatch reads it
            minutes = a or 0
        elif c is None and days is None:  # "MM:SS"
            minutes = (a or 0) + math.ceil((b or 0) / 60)
        elif days is not None and b is None:  # "D-HH"
            minutes = days * 1440 + (a or 0) * 60
        else:  # [D-]HH:MM[:SS]
            minutes = (days or 0) * 1440 + (a or 0) * 60 + (b or 0) + math.ceil((c or 0) / 60)
    if minutes < 1:
        raise UsageError(f"time limit {text!r}: must be at least one minute (Slurm counts in minutes)")
    return minutes


def job_parameters(
    run: Any, profile: LaunchProfile, options: LaunchOptions, *, preset_timeout_s: float | None = None
) -> dict[str, Any]:
    """submitit's Slurm parameters for one planned run (``repro.runner.PlannedRun``).

    GPUs: ``--gpus``, else the profile's, else one per process when the run is on CUDA.
    Tasks: one per process (srun starts them; torch.distributed's variables come from Slurm).
    Time: ``--time``, else the profile's, else the preset's timeout with a margin, else an hour.
    Memory: the profile's, else the preset's requirement (``memory_gb``) when it states one.
    """
    nodes = options.nodes or profile.nodes or max(1, int(getattr(run, "nnodes", 1) or 1))
    nproc = max(1, int(getattr(run, "nproc", 1) or 1))
    on_gpu = str(getattr(run, "device", "cpu")).startswith("cuda")
    gpus = options.gpus if options.gpus is not None else profile.gpus_per_node
    if gpus is None:
        gpus = nproc if on_gpu else 0
    if options.time is not None:
        minutes = time_minutes(options.time)
    elif profile.time is not None:
        minutes = time_minutes(profile.time)
    elif preset_timeout_s:
        minutes = max(1, math.ceil(preset_timeout_s * TIME_MARGIN / 60))
    else:
        minutes = DEFAULT_TIME_MIN
    params: dict[str, Any] = {
        "job_name": f"paperkb-{run.experiment}".replace("/", "-")[:64],
        "time": minutes,
        "nodes": nodes,
        "ntasks_per_node": nproc,
        "signal_delay_s": SIGNAL_DELAY_S if minutes > 3 else 30,
        "stderr_to_stdout": False,
    }
    if gpus:
        params["gpus_per_node"] = gpus
    for key in ("partition", "account", "qos", "constraint", "cpus_per_task", "mem"):
        value = getattr(profile, key)
        if value is not None:
            params[key] = value
    if options.partition is not None:
        params["partition"] = options.partition
    if "mem" not in params:
        need = getattr(getattr(run, "requires", None), "memory_gb", None) or getattr(run, "memory_gb", None)
        if need:
            params["mem"] = f"{math.ceil(float(need))}GB"
    if profile.sbatch:
        params["additional_parameters"] = {k.replace("-", "_"): v for k, v in profile.sbatch.items()}
    params["setup"] = [*_source_path_lines(), *profile.setup]
    return params


def _source_path_lines() -> list[str]:
    """Make this checkout's ``repro`` importable on the compute nodes (the run folder and
    the source must both be on the shared filesystem)."""
    import shlex

    from repro.environment import SOURCE_ROOT

    return [f"export PYTHONPATH={shlex.quote(str(SOURCE_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"]


def check_options(options: LaunchOptions) -> None:
    """Refuse a malformed ``--on slurm`` option before anything is recorded."""
    if options.gpus is not None and options.gpus < 0:
        raise UsageError(f"--gpus must be 0 or more; got {options.gpus}")
    if options.nodes is not None and options.nodes < 1:
        raise UsageError(f"--nodes must be at least 1; got {options.nodes}")
    if options.max_parallel is not None and options.max_parallel < 1:
        raise UsageError(f"--max-parallel must be at least 1; got {options.max_parallel}")
    if options.time is not None:
        time_minutes(options.time)


class ClusterMachine:
    """What ``repro.runner.plan_runs`` checks against for a cluster run: the GPUs the job
    asks for (``--gpus`` or the profile's), not those of the submitting machine."""

    def __init__(self, gpus: int | None) -> None:
        count = gpus or 0
        self.cuda = {"available": count > 0, "count": count, "memory_gb": [float("inf")] * count}


# --------------------------------------------------------------------------------------
# Slurm's view of jobs
# --------------------------------------------------------------------------------------
@dataclass
class JobInfo:
    job_id: str
    state: str
    reason: str = ""
    nodes: str = ""
    exit_code: str = ""
    restarts: int = 0
    submit_time: str = ""
    start_time: str = ""
    end_time: str = ""


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def _call(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=SLURM_TIMEOUT_S, stdin=subprocess.DEVNULL, errors="replace"
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def job_states(job_ids: list[str]) -> dict[str, JobInfo] | None:
    """Where Slurm says each job stands, by job id (``123`` or ``123_4`` for an array task).
    A job Slurm no longer knows at all is left out. None when the controller does not
    answer (slurmctld down or restarting): nothing can be said about any job then."""
    wanted = set(job_ids)
    found: dict[str, JobInfo] = {}
    if not wanted:
        return found
    out = _call(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r|%N|%V|%S|%e"])
    if out is None:
        return None
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 7 and parts[0] in wanted:
            jid, st, reason, nodes, sub, start, end = parts
            found[jid] = JobInfo(jid, st, _none(reason), nodes, "", 0, sub, start, end)
    for jid in wanted:
        info = found.get(jid)
        if info is None or info.state not in WAITING_STATES | ACTIVE_STATES:
            detail = _scontrol(jid) or (None if info else _sacct(jid))
            if detail is not None:
                found[jid] = detail
    return found


def _none(text: str) -> str:
    return "" if text in ("None", "(null)", "n/a") else text


def _scontrol(job_id: str) -> JobInfo | None:
    out = _call(["scontrol", "show", "job", "-o", job_id])
    if not out:
        return None
    for line in out.splitlines():
        fields_: dict[str, str] = {m.group(1): m.group(2) for m in re.finditer(r"(\w+)=(\S*)", line)}
        jid = fields_.get("JobId", "")
        if fields_.get("ArrayTaskId"):
            jid = f"{fields_.get('ArrayJobId')}_{fields_['ArrayTaskId']}"
        if jid != job_id:
            continue
        return JobInfo(
            job_id,
            fields_.get("JobState", "UNKNOWN"),
            _none(fields_.get("Reason", "")),
            _none(fields_.get("NodeList", "")),
            fields_.get("ExitCode", ""),
            int(fields_.get("Restarts", "0") or 0),
            fields_.get("SubmitTime", ""),
            fields_.get("StartTime", ""),
            fields_.get("EndTime", ""),
        )
    return None


def _sacct(job_id: str) -> JobInfo | None:
    """The accounting record (needs slurmdbd); None where accounting is off."""
    out = _call(
        ["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,Reason,NodeList,ExitCode,Submit,Start,End"]
    )
    for line in (out or "").splitlines():
        parts = line.split("|")
        if len(parts) == 8 and parts[0] == job_id:
            state = parts[1].split()[0] if parts[1] else "UNKNOWN"  # "CANCELLED by 0"
            return JobInfo(job_id, state, _none(parts[2]), _none(parts[3]), parts[4], 0, *parts[5:8])
    return None


def slurm_of(run: Run) -> dict[str, Any]:
    """The ``slurm`` part of a run's environment ({} for a local run)."""
    value = (run.environment or {}).get("slurm")
    return value if isinstance(value, dict) else {}


def _set_slurm(tracker: Tracker, run_id: str, **changes: Any) -> None:
    current = slurm_of(tracker.get(run_id))
    tracker.update_environment(run_id, {"slurm": {**current, **changes}})


# --------------------------------------------------------------------------------------
# Submit
# --------------------------------------------------------------------------------------
def submit(
    planned: list[Any],
    tracker: Tracker,
    profile: LaunchProfile,
    options: LaunchOptions,
    *,
    argv: list[str] | None = None,
) -> list[Run]:
    """Record ``planned`` as queued runs and submit them; return the runs (each with its
    Slurm job id under ``environment["slurm"]``). Runs that ask for the same resources go
    into one job array, at most ``--max-parallel`` (or the profile's) of them at once.
    A refusal by sbatch marks the runs ``error`` and raises one line."""
    try:
        import submitit

        from repro.slurm_job import ClusterJob
    except ImportError:
        raise PaperkbError("--on slurm needs submitit: pip install 'paperkb[cluster]'") from None
    from repro.runner import _prepare_run_dir, record_planned

    if not slurm_available():
        raise PaperkbError("--on slurm: sbatch and squeue are not on PATH (is this a Slurm login node?)")
    runs, diff = record_planned(planned, tracker, argv)
    groups: dict[str, list[tuple[Any, Run, dict[str, Any]]]] = {}
    for p, run in zip(planned, runs):
        preset = registry.get(p.experiment).presets[p.preset]
        params = job_parameters(p, profile, options, preset_timeout_s=p.timeout_s or preset.timeout_s)
        spec_path, _ = _prepare_run_dir(p, run, tracker, diff, tracker.run_dir(run.id))
        key = json.dumps({k: v for k, v in params.items() if k != "job_name"}, sort_keys=True)
        groups.setdefault(key, []).append((spec_path, run, params))
    parallel = options.max_parallel or profile.max_parallel
    folder = tracker.home / "slurm" / "%j"
    for members in groups.values():
        params = dict(members[0][2])
        if len(members) > 1:
            params["job_name"] = "paperkb-array"
        if parallel:
            params["array_parallelism"] = parallel
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_REQUEUES, python=profile.python)
        executor.update_parameters(**params)
        said = io.StringIO()  # submitit copies sbatch's stderr there; a refusal is said once, below
        try:
            with contextlib.redirect_stderr(said):
                if len(members) == 1:
                    jobs = [executor.submit(ClusterJob(str(members[0][0])))]
                else:
                    with executor.batch():
                        pending = [executor.submit(ClusterJob(str(spec))) for spec, _, _ in members]
                    jobs = pending
        except Exception as exc:  # sbatch's refusal (bad partition, account, time limit ...)
            why = _sbatch_refusal(exc, said.getvalue())
            for _, run, _ in members:
                tracker.finish(run.id, ERROR, error=f"sbatch refused the job: {why}")
            raise PaperkbError(f"sbatch refused the job: {why}") from None
        for job, (_, run, p) in zip(jobs, members):
            shown = {k: v for k, v in p.items() if k != "setup"}
            slurm: dict[str, Any] = {
                "job_id": str(job.job_id),
                "cluster": _cluster_name(),
                "profile": profile.name,
                "resources": shown,
                "array_parallelism": parallel,
                "folder": str(job.paths.folder),
                "submitted": time.time(),
                "state": "PENDING",
                "attempts": [],
            }
            tracker.update_environment(run.id, {"slurm": slurm})
    return [tracker.get(r.id) for r in runs]


def _sbatch_refusal(exc: BaseException, said: str = "") -> str:
    """sbatch's own words (``invalid partition specified: gpu``), else the exception's."""
    lines = [ln.strip() for ln in (said + "\n" + str(exc)).splitlines() if ln.strip()]
    errors: list[str] = []
    for ln in lines:
        if "error" in ln.lower():
            ln = ln.removeprefix("sbatch: error: ").removeprefix("sbatch: error:")
            if ln not in errors:
                errors.append(ln)
    return "; ".join(errors or lines[-1:] or [type(exc).__name__])[:300]


_CLUSTER: list[str | None] = []


def _cluster_name() -> str | None:
    if not _CLUSTER:
        out = _call(["scontrol", "show", "config"]) or ""
        m = re.search(r"^ClusterName\s*=\s*(\S+)", out, re.M)
        _CLUSTER.append(m.group(1) if m else None)
    return _CLUSTER[0]


# --------------------------------------------------------------------------------------
# Refresh: Slurm's states into the tracker; ingest what ended
# --------------------------------------------------------------------------------------
class Watcher:
    """Callbacks while runs are followed (``repro.runner.Monitor`` has them all)."""

    def started(self, run: Run) -> None: ...

    def progress(self, run: Run, done: float, total: float, message: str) -> None: ...

    def metric(self, run: Run, metric: dict[str, Any]) -> None: ...

    def finished(self, run: Run) -> None: ...


def submitted_runs(tracker: Tracker, run_ids: list[str] | None = None) -> list[Run]:
    """The queued and running runs that were submitted to Slurm (of ``run_ids``, if given)."""
    runs = [r for s in (QUEUED, RUNNING) for r in tracker.runs(status=s) if slurm_of(r).get("job_id")]
    if run_ids is not None:
        keep = set(run_ids)
        runs = [r for r in runs if r.id in keep]
    return runs


def refresh(
    tracker: Tracker, run_ids: list[str] | None = None, watcher: Any | None = None, *, now: float | None = None
) -> list[Run]:
    """Bring the submitted runs (all, or ``run_ids``) up to date with Slurm; ingest each
    one whose job ended. Returns the runs that ended now. Without Slurm's commands (not a
    cluster machine) nothing changes."""
    runs = submitted_runs(tracker, run_ids)
    if not runs or not slurm_available():
        return []
    watcher = watcher or Watcher()
    infos = job_states([slurm_of(r)["job_id"] for r in runs])
    if infos is None:  # the controller does not answer: ask again later, decide nothing now
        return []
    ended = []
    now = time.time() if now is None else now
    for run in runs:
        slurm = slurm_of(run)
        info = infos.get(slurm["job_id"])
        if info is None:
            if _has_result(tracker, run):
                info = JobInfo(slurm["job_id"], "COMPLETED")
            elif now - float(slurm.get("submitted") or now) > FORGOTTEN_GRACE_S:
                info = JobInfo(slurm["job_id"], "UNKNOWN", "Slurm no longer knows this job and it left no result")
            else:
                continue
        if info.state in WAITING_STATES:
            if (info.state, info.reason) != (slurm.get("state"), slurm.get("reason")):
                _set_slurm(tracker, run.id, state=info.state, reason=info.reason, restarts=info.restarts)
            continue
        if info.state in ACTIVE_STATES:
            if run.status == QUEUED:
                tracker.mark_running(run.id, None)
                _set_slurm(tracker, run.id, state=info.state, reason="", nodes=info.nodes, start_time=info.start_time)
                watcher.started(tracker.get(run.id))
            elif slurm.get("state") != info.state:
                _set_slurm(tracker, run.id, state=info.state, reason="", nodes=info.nodes)
            continue
        ended.append(ingest(tracker, run, info))
        watcher.finished(ended[-1])
    return ended


def _has_result(tracker: Tracker, run: Run) -> bool:
    from repro.runner import _EventReader

    return any(ev.get("type") == "result" for ev in _EventReader(tracker.run_dir(run.id) / "events.jsonl").read())


def ingest(tracker: Tracker, run: Run, info: JobInfo, *, status: str | None = None, reason: str | None = None) -> Run:
    """Record a run whose job ended: its metrics, artifacts and result from the run folder,
    its status from the worker's result and Slurm's final state, each attempt.

    Once only: a ``run --on slurm`` that waits and a ``paperkb runs`` in another shell may
    both see the job end; a lock on the run folder lets the first record it and the other
    find it recorded."""
    import fcntl

    run_dir = tracker.run_dir(run.id)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".ingest.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = tracker.get(run.id)
        if current.finished:
            return current
        return _ingest(tracker, current, info, status, reason)


def _ingest(tracker: Tracker, run: Run, info: JobInfo, status: str | None, reason: str | None) -> Run:
    from repro.runner import Monitor, _consume, _EventReader, _finish, _Outcome

    run_dir = tracker.run_dir(run.id)
    events = _EventReader(run_dir / "events.jsonl").read()
    attempts = [
        {"attempt": ev.get("attempt"), "time": ev.get("time"), "host": ev.get("host"), **(ev.get("slurm") or {})}
        for ev in events
        if ev.get("type") == "attempt"
    ]
    outcome = _Outcome()
    _consume(events, run, tracker, Monitor(), outcome)
    if status is None:
        status, reason = _status_of(info, outcome, run_dir)
    if run.status == QUEUED:
        tracker.mark_running(run.id, None)  # started (the record wants a start) and ended now
    last = attempts[-1] if attempts else {}
    _set_slurm(
        tracker,
        run.id,
        state=info.state,
        reason=info.reason,
        exit_code=info.exit_code,
        nodes=info.nodes or last.get("nodes"),
        start_time=info.start_time,
        end_time=info.end_time,
        attempts=attempts,
        restarts=max(info.restarts, len(attempts) - 1, 0),
    )
    if last.get("cluster"):
        _set_slurm(tracker, run.id, cluster=last["cluster"])
    _finish(tracker.get(run.id), tracker, status, reason, outcome, run_dir)
    return tracker.get(run.id)


def _status_of(info: JobInfo, outcome: Any, run_dir: Path) -> tuple[str, str | None]:
    from repro.runner import _judge

    where = f" on {info.nodes}" if info.nodes else ""
    said = f"Slurm: job {info.job_id} {info.state}{where}" + (f" ({info.reason})" if info.reason else "")
    if outcome.result is not None and not outcome.error:
        return _judge(0, outcome, run_dir)  # the worker finished: its verdict stands
    if info.state == "COMPLETED":
        return _judge(_exit_status(info.exit_code), outcome, run_dir)
    status = _ENDED_AS.get(info.state)
    if status is None:
        status = ERROR
    signal_no = _exit_signal(info.exit_code)
    if info.state == "FAILED" and signal_no:  # a signal, not the experiment, ended it
        status = INTERRUPTED
        said += f", killed by signal {signal_no}"
    detail = outcome.error or ""
    if not detail and status in (ERROR, INTERRUPTED):
        from repro.runner import _stderr_tail

        detail = _stderr_tail(run_dir, 1500)
    return status, said + ("\n" + detail if detail else "")


def _exit_status(code: str) -> int:
    try:
        return int(code.split(":")[0])
    except ValueError:
        return 0


def _exit_signal(code: str) -> int:
    try:
        return int(code.split(":")[1])
    except (IndexError, ValueError):
        return 0


# --------------------------------------------------------------------------------------
# Follow (run --on slurm without --detach) and cancel
# --------------------------------------------------------------------------------------
def follow(
    tracker: Tracker,
    runs: list[Run],
    watcher: Any | None = None,
    *,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Run]:
    """Wait for ``runs`` to end, showing progress and metrics as the run folders grow;
    return their final records. Ctrl-C stops following (the jobs keep running; a later
    ``paperkb runs`` picks up their results)."""
    from repro.runner import _EventReader

    watcher = watcher or Watcher()
    readers = {r.id: _EventReader(tracker.run_dir(r.id) / "events.jsonl") for r in runs}
    left = {r.id for r in runs if not r.finished}
    while left:
        for run in refresh(tracker, sorted(left), watcher):
            left.discard(run.id)
        for run_id in sorted(left):
            run = tracker.get(run_id)
            if run.finished:  # ended elsewhere (runs cancel from another shell)
                left.discard(run_id)
                watcher.finished(run)
                continue
            for ev in readers[run_id].read():
                if ev.get("type") == "progress":
                    watcher.progress(
                        run, float(ev.get("done") or 0), float(ev.get("total") or 0), str(ev.get("message") or "")
                    )
                elif ev.get("type") == "metric" and ev.get("name") is not None:
                    watcher.metric(run, {k: ev.get(k) for k in ("name", "value", "step", "time", "rank")})
        if left:
            sleep(poll_s)
    return [tracker.get(r.id) for r in runs]


def cancel(tracker: Tracker, run_ids: list[str]) -> list[Run]:
    """Cancel submitted runs with scancel and record them ``cancelled`` (with what their
    run folder holds so far). A local run, or one that already ended, is refused."""
    targets = [tracker.get(rid) for rid in run_ids]
    for run in targets:
        if not slurm_of(run).get("job_id"):
            raise PaperkbError(f"run {run.id} did not run on Slurm; stop a local run with Ctrl-C in its terminal")
        if run.status in FINISHED:
            raise PaperkbError(f"run {run.id} already ended ({run.status}); nothing to cancel")
    out = []
    for run in targets:
        job_id = slurm_of(run)["job_id"]
        try:
            done = subprocess.run(
                ["scancel", job_id], capture_output=True, text=True, timeout=SLURM_TIMEOUT_S, errors="replace"
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PaperkbError(f"scancel {job_id}: {exc}") from None
        if done.returncode != 0:
            raise PaperkbError(f"scancel {job_id}: {(done.stderr or done.stdout).strip() or 'failed'}")
        info = _scontrol(job_id) or JobInfo(job_id, "CANCELLED")
        out.append(
            ingest(
                tracker,
                run,
                info,
                status=CANCELLED,
                reason=f"cancelled with `paperkb runs cancel` (scancel {job_id}) while {run.status}",
            )
        )
    return out


def describe(run: Run) -> str:
    """``slurm 123 on node7`` / ``slurm 123 pending (Resources)`` for tables; '' for a local run."""
    s = slurm_of(run)
    if not s.get("job_id"):
        return ""
    text = f"slurm {s['job_id']}"
    if run.status == QUEUED and s.get("reason"):
        text += f" pending ({s['reason']})"
    elif s.get("nodes"):
        text += f" on {s['nodes']}"
    if run.started is not None and s.get("submitted"):
        text += f", queued {max(0.0, run.started - float(s['submitted'])):.0f}s"
    restarts = int(s.get("restarts") or 0)
    if restarts:
        text += f", {restarts + 1} attempts"
    return text
