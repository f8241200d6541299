"""Questions the commands ask of the recorded runs (``paperkb runs``): which runs bear on a
claim, whether a filter names anything that exists, and the few words that set a run
apart in a listing. Torch-free, like :mod:`repro.tracker`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from paperkb.errors import PaperkbError
from repro.tracker import Run, Tracker


def runs_matching(
    tracker: Tracker,
    *,
    claim: str | None = None,
    experiment: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    claims: Iterable[Any] = (),
) -> list[Run]:
    """Runs newest first, filtered like ``paperkb runs``. A run bears on ``claim`` when it
    was launched for it, or when it is a run of an experiment that claim names (``claims``:
    the vault's ``repro.status.ClaimRef`` s, read only when ``claim`` is given)."""
    runs = tracker.runs(claim=claim, experiment=experiment, status=status)
    if claim is not None:
        named = {e for c in claims if c.id == claim for e in c.experiments}
        for exp_id in sorted(named):
            if experiment is None or exp_id == experiment:
                runs += tracker.runs(experiment=exp_id, status=status)
        unique = {r.id: r for r in runs}
        runs = sorted(unique.values(), key=lambda r: (r.created, r.id), reverse=True)
    return runs[:limit] if limit is not None else runs


def check_run_filters(claim: str | None, experiment: str | None, claims: Iterable[Any]) -> None:
    """A usage error (exit status 2) when ``--experiment`` names no registered experiment
    or ``--claim`` no claim of the vault (``claims``), with the closest names: asked when
    no run matched, so that a typo is told apart from "no runs yet"."""
    if experiment is not None:
        from repro.worker import load_experiments

        known = list(load_experiments())
        if experiment not in known:
            hint = _did_you_mean(experiment, known, "paperkb experiments")
            raise PaperkbError(f"--experiment {experiment!r} is not a registered experiment{hint}", exit_code=2)
    if claim is not None:
        known = [c.id for c in claims]
        if claim not in known:
            hint = _did_you_mean(claim, known, "paperkb claims")
            raise PaperkbError(f"--claim {claim!r} is not a claim of this vault{hint}", exit_code=2)


def _did_you_mean(name: str, known: list[str], listing: str) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else f" (see: {listing})"


def run_remarks(run: Run) -> list[str]:
    """What sets ``run`` apart from a plain run of its experiment: its negative control,
    --param overrides, its claim's own params::, what the machine lacked, its Slurm job,
    and whether its seed decides anything."""
    from repro.slurm import describe as slurm_describe

    remarks = []
    if run.control:
        remarks.append(f"control {run.control}")
    if run.overrides:
        remarks.append(", ".join(f"{k}={v}" for k, v in run.overrides.items()))
    if (run.claim_spec or {}).get("params"):
        remarks.append("claim params: " + ", ".join(f"{k}={v}" for k, v in run.claim_spec["params"].items()))
    if run.needs:
        remarks.append(f"needs {run.needs}")
    if on_slurm := slurm_describe(run):
        remarks.append(on_slurm)
    if (run.seed_set or {}).get("explicit"):
        remarks.append(f"--seed {run.seed}: decides nothing")
    elif len((run.seed_set or {}).get("seeds") or []) > 1:
        remarks.append(f"seed {run.seed} of {','.join(map(str, run.seed_set['seeds']))}")
    return remarks
