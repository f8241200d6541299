"""Claim status: what the latest runs say about each claim of the vault.

The words follow ACM's reproducibility badges:

* ``unverified`` — no conclusive run yet (or one of the claim's experiments has none);
* ``reproduced`` — the latest run of every experiment passed at the ``full`` preset with
  no ``--param`` override (the setting the paper's claim is about);
* ``supported at small scale`` — every latest run passed, at least one only at ``smoke``
  (or with overridden parameters);
* ``contradicted`` — the latest run of some experiment failed its stated thresholds;
* ``error`` — the latest run of some experiment crashed or timed out.

"Latest run" means the newest run of that experiment whose status is passed, failed,
error or timeout; an ``interrupted`` run (Ctrl-C, kill -9) says nothing about the claim
and is skipped. Precedence when a claim names several experiments: contradicted, error,
unverified, supported at small scale, reproduced.

This module is torch-free: the query engine and ``paperkb status`` import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from repro.tracker import ERROR, FAILED, PASSED, TIMEOUT, Run, Tracker, iso

UNVERIFIED = "unverified"
REPRODUCED = "reproduced"
SMALL_SCALE = "supported at small scale"
CONTRADICTED = "contradicted"
STATUS_ERROR = "error"
CLAIM_STATUSES = (UNVERIFIED, REPRODUCED, SMALL_SCALE, CONTRADICTED, STATUS_ERROR)

_CONCLUSIVE = (PASSED, FAILED, ERROR, TIMEOUT)


@dataclass
class ClaimRef:
    """A claim and the note it sits in (plain data, JSON-friendly)."""

    id: str
    statement: str
    experiments: list[str]
    note: str  # vault path of the note
    title: str  # the note's title (or file name)
    line: int = 0
    citekey: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def claims_of_notes(notes: Iterable[Any]) -> list[ClaimRef]:
    """ClaimRefs of ``kb.model.Note`` objects, in note order."""
    out: list[ClaimRef] = []
    for note in notes:
        for c in getattr(note, "claims", None) or []:
            out.append(
                ClaimRef(
                    id=c.id,
                    statement=c.statement,
                    experiments=list(c.experiments),
                    note=note.path,
                    title=note.title or note.name,
                    line=c.line,
                    citekey=note.citekey,
                )
            )
    return out


def vault_notes(vault_root: Path | str) -> list[Any]:
    """Every note of the vault through ``kb.vault.Vault``."""
    from kb.vault import Vault

    return list(Vault(Path(vault_root)).notes())


def vault_claims(vault_root: Path | str) -> list[ClaimRef]:
    return claims_of_notes(vault_notes(vault_root))


def latest_conclusive(runs: Iterable[Run]) -> dict[str, Run]:
    """experiment id -> its newest run with a conclusive status (``runs`` newest first)."""
    latest: dict[str, Run] = {}
    for run in runs:
        if run.status in _CONCLUSIVE and run.experiment not in latest:
            latest[run.experiment] = run
    return latest


def _run_word(run: Run | None) -> str:
    if run is None:
        return UNVERIFIED
    if run.status == FAILED:
        return CONTRADICTED
    if run.status in (ERROR, TIMEOUT):
        return STATUS_ERROR
    if run.preset == "full" and not run.overrides:
        return REPRODUCED
    return SMALL_SCALE


_PRECEDENCE = (CONTRADICTED, STATUS_ERROR, UNVERIFIED, SMALL_SCALE, REPRODUCED)


def roll_up(claim: ClaimRef, latest: dict[str, Run]) -> dict[str, Any]:
    """The status of one claim from the latest conclusive run of each of its experiments."""
    per_exp = {e: latest.get(e) for e in claim.experiments}
    words = {e: _run_word(r) for e, r in per_exp.items()}
    status = UNVERIFIED
    if words:
        status = min(words.values(), key=_PRECEDENCE.index)
    deciding: Run | None = None
    for e, w in words.items():
        r = per_exp[e]
        if w == status and r is not None and (deciding is None or (r.ended or 0) > (deciding.ended or 0)):
            deciding = r
    return {
        "status": status,
        "run_id": deciding.id if deciding else None,
        "preset": deciding.preset if deciding else None,
        "verdict": deciding.verdict if deciding else None,
        "ended": iso(deciding.ended) if deciding else None,
        "experiments": {
            e: ({"run_id": r.id, "status": r.status, "preset": r.preset, "claim_status": words[e]} if r else None)
            for e, r in per_exp.items()
        },
    }


def claim_statuses(vault_root: Path | str, claims: Iterable[ClaimRef] | None = None) -> dict[str, dict]:
    """claim id -> ``{"status", "run_id", "preset", "verdict", "ended", "experiments"}``.

    Returns ``{}`` when the vault has no ``.paperkb/runs.db`` (every claim is then
    unverified), and creates nothing. ``claims`` defaults to every claim of the vault.
    """
    tracker = Tracker.open_existing(vault_root)
    if tracker is None:
        return {}
    try:
        claim_list = list(claims) if claims is not None else vault_claims(vault_root)
        latest = latest_conclusive(tracker.runs())
    finally:
        tracker.close()
    return {c.id: roll_up(c, latest) for c in claim_list}


def status_table(vault_root: Path | str, claims: Iterable[ClaimRef] | None = None) -> list[dict[str, Any]]:
    """One entry per paper (note with claims): its claims and their statuses, for ``paperkb status``."""
    claim_list = list(claims) if claims is not None else vault_claims(vault_root)
    statuses = claim_statuses(vault_root, claim_list)
    papers: dict[str, dict[str, Any]] = {}
    for c in claim_list:
        paper = papers.setdefault(c.note, {"note": c.note, "title": c.title, "citekey": c.citekey, "claims": []})
        st = statuses.get(c.id) or {"status": UNVERIFIED, "run_id": None, "preset": None, "verdict": None,
                                   "ended": None}
        paper["claims"].append({"id": c.id, "statement": c.statement, "experiments": c.experiments, **st})
    return list(papers.values())
