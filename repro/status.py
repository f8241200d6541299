"""Claim status: what the recorded runs say about each claim of the vault.

The status words (docs/verdicts.md tells the whole story):

* ``unverified`` — nothing has decided the claim yet;
* ``needs <what>`` — nothing that could decide it can run here: the last attempt was
  skipped because the machine lacks it ("needs a CUDA GPU"), or the claim says so itself
  with ``needs:: the WMT14 data`` and no run decided it;
* ``supported at small scale`` — the deciding runs passed, at the ``smoke`` or ``full``
  scale (``full`` is the largest setting this machine can run, not the paper's); with
  ``(proxy)`` when some check measured a stand-in for the claim's setting;
* ``reproduced`` — only from a ``paper``-scale run whose checks are all direct evidence;
* ``contradicted`` — a deciding run failed a check of our code;
* ``error`` — a deciding run crashed or timed out, the claim cannot be judged as written
  (``repro.claimcheck``), or one of its own negative controls did not end contradicted
  ("this check cannot fail here").

Which runs decide a claim: for each experiment the claim names, the newest finished run
of the real code (never a negative control's, never one made with ``--seed N``) whose
parameters are the claim's own: no ``--param`` override unless the claim's ``params::``
name those values, and the claim's ``expect::`` applied. A stochastic experiment decides by
the newest complete set of its declared seeds' runs, under its stated rule; a lone run of it
never decides. An ``interrupted`` run says nothing and is skipped. Checks with evidence
``reference`` (or ``counts: false``) are shown but support nothing. Precedence when a claim
names several experiments: contradicted, error, needs, unverified, small scale (proxy), small
scale, reproduced.

Each control's newest decision made under the claim's own params::/expect:: is listed beside
the claim.

This module is torch-free: the query engine and ``paperkb status`` import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.claimspec import canonical_params
from repro.tracker import ERROR, FAILED, PASSED, SKIPPED, TIMEOUT, Run, Tracker, iso

UNVERIFIED = "unverified"
REPRODUCED = "reproduced"
SMALL_SCALE = "supported at small scale"
SMALL_SCALE_PROXY = "supported at small scale (proxy)"
CONTRADICTED = "contradicted"
STATUS_ERROR = "error"
NEEDS = "needs"  # the prefix of "needs <what>"
CLAIM_STATUSES = (UNVERIFIED, NEEDS, SMALL_SCALE, SMALL_SCALE_PROXY, REPRODUCED, CONTRADICTED, STATUS_ERROR)

_DECIDING = (PASSED, FAILED, ERROR, TIMEOUT)
CONTROL_CANNOT_FAIL = "this check cannot fail: the sabotaged implementation passed"


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
    params: dict[str, Any] = field(default_factory=dict)
    expect: list[dict[str, Any]] = field(default_factory=list)
    needs: str = ""
    spec_errors: list[str] = field(default_factory=list)  # params::/expect:: lines that did not parse

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
                    params=dict(getattr(c, "params", None) or {}),
                    expect=list(getattr(c, "expect", None) or []),
                    needs=getattr(c, "needs", "") or "",
                    spec_errors=list(getattr(c, "spec_errors", None) or []),
                )
            )
    return out


def vault_notes(vault_root: Path | str) -> list[Any]:
    """Every note of the vault through ``kb.vault.Vault``."""
    from kb.vault import Vault

    return list(Vault(Path(vault_root)).notes())


def vault_claims(vault_root: Any, *, note_path: str | None = None, tag: str | None = None) -> list[ClaimRef]:
    """The vault's claims, read from its index (see ``kb.claims.indexed_claims``)."""
    from kb.claims import claim_records

    return [
        ClaimRef(
            c["id"],
            c.get("statement", ""),
            c.get("experiments") or [],
            path,
            title,
            c.get("line", 0),
            citekey,
            c.get("params") or {},
            c.get("expect") or [],
            c.get("needs") or "",
            c.get("spec_errors") or [],
        )
        for path, title, citekey, c in claim_records(vault_root, note_path=note_path, tag=tag)
    ]


def _spec_matches(run: Run, claim: ClaimRef) -> bool:
    """Does ``run`` judge the claim's own configuration? Its parameter values beyond the
    preset (the claim's params:: and any --param) must be exactly the claim's params::,
    and its expectations the claim's expect::."""
    spec = run.claim_spec or {}
    effective = {**(spec.get("params") or {}), **(run.overrides or {})}
    if canonical_params(effective) != canonical_params(claim.params):
        return False
    run_expect = [e.get("text") for e in spec.get("expect") or []]
    return run_expect == [e.get("text") for e in claim.expect]


def _counted(check: dict[str, Any]) -> bool:
    return check.get("evidence", "direct") != "reference" and check.get("counts", True) is not False


def _run_word(run: Run) -> str:
    if run.status == SKIPPED:
        return f"{NEEDS} {run.needs or 'a machine that can run it'}"
    if run.status == FAILED:
        return CONTRADICTED
    if run.status in (ERROR, TIMEOUT):
        return STATUS_ERROR
    evidence = [c for c in run.checks if _counted(c)]
    proxy = any(c.get("evidence") == "proxy" for c in evidence)
    scale = run.scale or ("smoke" if run.preset != "paper" else "paper")
    if scale == "paper" and evidence and not proxy:
        return REPRODUCED
    return SMALL_SCALE_PROXY if proxy else SMALL_SCALE


def _rank(word: str) -> int:
    if word.startswith(NEEDS + " "):
        return 2
    return {CONTRADICTED: 0, STATUS_ERROR: 1, UNVERIFIED: 3, SMALL_SCALE_PROXY: 4, SMALL_SCALE: 5, REPRODUCED: 6}.get(
        word, 3
    )


@dataclass
class Decision:
    """The runs that decide one experiment's part of a claim, and the word they give: one
    run, or the runs of a stochastic experiment's declared seeds judged by its rule."""

    runs: list[Run]
    word: str
    seeds: list[int] = field(default_factory=list)
    passed: int = 0
    rule: str = ""

    @property
    def newest(self) -> Run:
        return max(self.runs, key=lambda r: (r.ended or 0, r.id))

    def seed_brief(self) -> str:
        if len(self.seeds) <= 1:
            return ""
        return f"seeds {','.join(map(str, self.seeds))}: {self.passed}/{len(self.seeds)} passed ({self.rule})"


def seed_set_word(members: list[Run], need: int) -> tuple[str, int]:
    """The word of a complete seed set: error if any seed's run errored, else supported (the
    weakest word of the passing runs) when at least ``need`` passed, else contradicted."""
    passed = [r for r in members if r.status == PASSED]
    if any(r.status in (ERROR, TIMEOUT) for r in members):
        return STATUS_ERROR, len(passed)
    if passed and len(passed) >= need:
        return min((_run_word(r) for r in passed), key=_rank), len(passed)
    return CONTRADICTED, len(passed)


def _control_entry(d: Decision, experiment: str) -> dict[str, Any]:
    run = d.newest
    ok = d.word == CONTRADICTED
    several = len(d.runs) > 1
    entry: dict[str, Any] = {
        "experiment": experiment,
        "control": run.control,
        "run_id": run.id,
        "run_ids": [r.id for r in d.runs],
        "verdict": "contradicted" if ok else ("supported" if d.word in _SUPPORTED else run.verdict),
        "status": (FAILED if ok else d.word) if several else run.status,
        "ok": ok,
    }
    if several:
        entry["seeds"] = d.seed_brief()
    if not ok:
        entry["error"] = (
            CONTROL_CANNOT_FAIL
            if d.word in _SUPPORTED
            else f"the control run ended {entry['status']}, not contradicted"
        )
    return entry


_SUPPORTED = (SMALL_SCALE, SMALL_SCALE_PROXY, REPRODUCED)


class RunIndex:
    """The recorded runs, grouped once for every claim's lookup (newest first).

    ``experiments``: the registry (id -> ``repro.registry.Experiment``), to know which are
    stochastic and what each models; None treats every experiment as deterministic."""

    def __init__(self, runs: Iterable[Run], experiments: dict[str, Any] | None = None) -> None:
        self.experiments = experiments or {}
        self.real: dict[str, list[Run]] = {}
        self.control_runs: dict[str, list[Run]] = {}
        self.groups: dict[str, list[Run]] = {}
        for run in runs:
            if (run.seed_set or {}).get("explicit"):
                continue  # made with --seed N: recorded and listed, never deciding
            group = (run.seed_set or {}).get("group")
            if group and run.status in _DECIDING:
                self.groups.setdefault(group, []).append(run)
            if run.control:
                if run.status in _DECIDING:
                    self.control_runs.setdefault(run.experiment, []).append(run)
            elif run.status in _DECIDING or run.status == SKIPPED:
                self.real.setdefault(run.experiment, []).append(run)

    def _stochastic(self, experiment: str) -> bool:
        return bool(getattr(self.experiments.get(experiment), "stochastic", False))

    def _decide(self, candidates: Iterable[Run], experiment: str) -> Decision | None:
        """The newest complete decision among ``candidates`` (newest first)."""
        stochastic = self._stochastic(experiment)
        seen: set[str] = set()
        skipped = None
        for run in candidates:
            if run.status == SKIPPED:
                skipped = skipped or run
                continue
            seed_set = run.seed_set or {}
            group, seeds = seed_set.get("group"), [int(s) for s in seed_set.get("seeds") or []]
            if not group or len(seeds) <= 1:
                if stochastic:
                    continue  # one seed of a stochastic experiment never decides
                return Decision([run], _run_word(run), seeds or [run.seed], int(run.status == PASSED))
            if group in seen:
                continue
            seen.add(group)
            by_seed: dict[int, Run] = {}
            for member in self.groups.get(group, []):  # newest first
                by_seed.setdefault(member.seed, member)
            if not set(seeds) <= set(by_seed):
                continue  # a seed is missing (interrupted, still running): an older set decides
            members = [by_seed[s] for s in seeds]
            need = int(seed_set.get("need") or len(seeds))
            word, passed = seed_set_word(members, need)
            return Decision(members, word, seeds, passed, str(seed_set.get("rule") or ""))
        return Decision([skipped], _run_word(skipped)) if skipped is not None else None

    def deciding(self, experiment: str, claim: ClaimRef) -> Decision | None:
        """The newest finished decision for the claim's configuration; a skipped attempt ("needs
        a CUDA GPU") only when no run ever finished (a run made elsewhere still counts)."""
        return self._decide((r for r in self.real.get(experiment, ()) if _spec_matches(r, claim)), experiment)

    def controls_for(self, experiment: str, claim: ClaimRef) -> list[Decision]:
        """Each control's newest decision made under the claim's own configuration."""
        mine = [r for r in self.control_runs.get(experiment, ()) if _spec_matches(r, claim)]
        out = []
        for name in sorted({str(r.control) for r in mine}):
            d = self._decide((r for r in mine if r.control == name), experiment)
            if d is not None:
                out.append(d)
        return out

    def knows(self, experiment: str) -> bool:
        return experiment in self.real or experiment in self.control_runs


def roll_up(claim: ClaimRef, index: RunIndex, errors: list[str] | None = None) -> dict[str, Any]:
    """The status of one claim, the runs and checks behind it and its own controls.
    ``errors``: why the claim cannot be judged as written (``repro.claimcheck``)."""
    if not errors and not any(index.knows(e) for e in claim.experiments):
        return _empty(claim, _scopes(claim, index))  # nothing recorded: the common case in a large vault
    per_exp = {e: index.deciding(e, claim) for e in claim.experiments}
    words = {e: (d.word if d is not None else UNVERIFIED) for e, d in per_exp.items()}
    status = min(words.values(), key=_rank) if words else UNVERIFIED
    if claim.needs and status == UNVERIFIED:
        status = f"{NEEDS} {claim.needs}"
    controls = [_control_entry(d, e) for e in claim.experiments for d in index.controls_for(e, claim)]
    reasons = list(errors or [])
    for c in controls:
        if not c["ok"]:
            how = "passed" if c.get("error") == CONTROL_CANNOT_FAIL else f"ended {c['status']}"
            reasons.append(
                f"{CANNOT_FAIL_HERE}: control {c['control']} of {c['experiment']} {how} under this claim's parameters"
            )
    if reasons:
        status = STATUS_ERROR
    deciding: Run | None = None
    for e, w in words.items():
        d = per_exp[e]
        if d is None or not (w == status or reasons):
            continue
        if deciding is None or (d.newest.ended or 0) > (deciding.ended or 0):
            deciding = d.newest
    checks = []
    for e, d in per_exp.items():
        if d is None or d.runs[0].status == SKIPPED:
            continue
        for r in d.runs:
            for c in r.checks:
                checks.append(
                    {
                        "name": c.get("name"),
                        "value": c.get("value"),
                        "op": c.get("op"),
                        "threshold": c.get("threshold"),
                        "scale": c.get("scale") or r.scale,
                        "evidence": c.get("evidence", "direct"),
                        "counts": c.get("counts", True) is not False,
                        "run_id": r.id,
                        "seed": r.seed,
                        "experiment": e,
                        "passed": bool(c.get("passed")),
                        "description": c.get("description", ""),
                    }
                )
    return {
        "status": status,
        "reason": "; ".join(reasons),
        "errors": list(errors or []),
        "run_id": deciding.id if deciding else None,
        "deciding_runs": [
            r.id for d in per_exp.values() if d is not None and d.runs[0].status != SKIPPED for r in d.runs
        ],
        "preset": deciding.preset if deciding else None,
        "scale": deciding.scale if deciding else None,
        "verdict": deciding.verdict if deciding else None,
        "ended": iso(deciding.ended) if deciding else None,
        "checks": checks,
        "controls": controls,
        "scope": _scopes(claim, index),
        "experiments": {
            e: (
                {
                    "run_id": d.newest.id,
                    "run_ids": [r.id for r in d.runs],
                    "status": d.newest.status,
                    "preset": d.newest.preset,
                    "scale": d.newest.scale,
                    "claim_status": words[e],
                    "seeds": d.seeds,
                    "seeds_passed": d.passed,
                    "rule": d.rule,
                    "seed_brief": d.seed_brief(),
                }
                if d
                else None
            )
            for e, d in per_exp.items()
        },
    }


CANNOT_FAIL_HERE = "this check cannot fail here"


def _scopes(claim: ClaimRef, index: RunIndex) -> dict[str, str]:
    """What each experiment of the claim models (its declared ``scope``), when it says."""
    out = {}
    for e in claim.experiments:
        scope = getattr(index.experiments.get(e), "scope", "")
        if scope:
            out[e] = scope
    return out


def _as_ref(c: Any) -> ClaimRef:
    if isinstance(c, ClaimRef):
        return c
    if isinstance(c, dict):
        known = set(ClaimRef.__dataclass_fields__)
        return ClaimRef(**{k: v for k, v in c.items() if k in known})
    return c


def _empty(claim: ClaimRef, scope: dict[str, str] | None = None) -> dict[str, Any]:
    status = f"{NEEDS} {claim.needs}" if claim.needs else UNVERIFIED
    return {
        "status": status,
        "reason": "",
        "errors": [],
        "deciding_runs": [],
        "scope": dict(scope or {}),
        "run_id": None,
        "preset": None,
        "scale": None,
        "verdict": None,
        "ended": None,
        "checks": [],
        "controls": [],
        "experiments": {e: None for e in claim.experiments},
    }


def claim_statuses(
    vault_root: Path | str, claims: Iterable[Any] | None = None, *, experiments: dict[str, Any] | None = None
) -> dict[str, dict]:
    """claim id -> ``{"status", "run_id", "preset", "scale", "verdict", "ended", "checks",
    "controls", "experiments"}``.

    ``checks``: ``{"name", "value", "op", "threshold", "scale", "evidence", "run_id",
    "experiment", "passed", "description"}`` of the runs behind the word; ``controls``:
    ``{"experiment", "control", "run_id", "verdict", "ok"}`` (``ok``: it ended contradicted)
    for the controls run under the claim's own configuration; ``deciding_runs``: the ids of
    the runs the word rests on; ``reason`` / ``errors``: why it reads ``error``.
    Creates nothing; with no ``.paperkb/runs.db`` every claim is unverified (or "needs ...",
    or "error" when it cannot be judged as written). ``claims`` (ClaimRefs or dicts) defaults
    to every claim of the vault; ``experiments`` to the registry.
    """
    claim_list = [_as_ref(c) for c in claims] if claims is not None else vault_claims(vault_root)
    if not claim_list:
        return {}
    from repro.claimcheck import claim_errors
    from repro.claimcheck import experiments as registered

    exps = registered() if experiments is None else experiments
    tracker = Tracker.open_existing(vault_root)
    runs: list[Run] = []
    if tracker is not None:
        try:
            runs = tracker.runs(light=True)
        finally:
            tracker.close()
    index = RunIndex(runs, exps)
    return {c.id: roll_up(c, index, claim_errors(c, exps)) for c in claim_list}


def status_matches(word: str, wanted: str) -> bool:
    """``--status needs`` matches every "needs ..." word; ``supported at small scale``
    matches its proxy form too."""
    if wanted == NEEDS:
        return word.startswith(NEEDS + " ")
    if wanted == SMALL_SCALE:
        return word in (SMALL_SCALE, SMALL_SCALE_PROXY)
    return word == wanted


def status_table(
    vault_root: Path | str, claims: Iterable[Any] | None = None, *, experiments: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One entry per paper (note with claims): its claims and their statuses, for ``paperkb status``."""
    claim_list = [_as_ref(c) for c in claims] if claims is not None else vault_claims(vault_root)
    statuses = claim_statuses(vault_root, claim_list, experiments=experiments)
    papers: dict[str, dict[str, Any]] = {}
    for c in claim_list:
        paper = papers.get(c.note)
        if paper is None:  # (not setdefault: that builds the dict for every claim)
            paper = papers[c.note] = {"note": c.note, "title": c.title, "citekey": c.citekey, "claims": []}
        st = statuses.get(c.id) or _empty(c)
        paper["claims"].append(
            {
                "id": c.id,
                "statement": c.statement,
                "params": c.params,
                "expect": c.expect,
                "needs": c.needs,
                **st,
                "experiments": list(c.experiments),
                "experiment_runs": st["experiments"],
            }
        )
    return list(papers.values())


def normalise_status(text: str) -> str:
    """A ``--status`` filter as one of CLAIM_STATUSES ("needs" stands for every "needs ...");
    raises ``kb.errors.PaperkbError`` (a usage error) for anything else."""
    from kb.errors import PaperkbError

    word = " ".join(text.replace("-", " ").replace("_", " ").lower().split())
    if word in ("small scale", "supported"):
        word = SMALL_SCALE
    if word in ("proxy", "small scale proxy", "supported at small scale proxy"):
        word = SMALL_SCALE_PROXY
    if word.startswith(NEEDS + " ") or word == NEEDS:
        word = NEEDS
    if word not in CLAIM_STATUSES:
        raise PaperkbError(f"--status must be one of: {', '.join(CLAIM_STATUSES)}; got {text!r}", exit_code=2)
    return word


def _root(vault: Any) -> Path:
    return Path(getattr(vault, "root", vault))


def claim_rows(
    vault: Any, *, note_path: str | None = None, tag: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """The claims of the vault (from its index) with their status, checks and controls, for
    ``paperkb claims``; ``status`` is a word of CLAIM_STATUSES (see :func:`normalise_status`).
    ``vault`` is a folder or an open ``kb.vault.Vault`` (its index is then checked once)."""
    claims = vault_claims(vault, note_path=note_path, tag=tag)
    statuses = claim_statuses(_root(vault), claims)
    rows = []
    for c in claims:
        st = statuses.get(c.id) or _empty(c)
        if status and not status_matches(st["status"], status):
            continue
        rows.append({**c.to_dict(), **st, "experiments": list(c.experiments), "experiment_runs": st["experiments"]})
    return rows


STATUS_STAGES = ("reading claims", "judging claims")


def filtered_status_table(
    vault: Any,
    *,
    note_path: str | None = None,
    tag: str | None = None,
    status: str | None = None,
    stage: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`status_table` for the claims that pass the filters (papers with none are left out).

    ``stage(name)`` is called as each of STATUS_STAGES begins (for a progress display): reading
    the claims may index the vault, judging them reads every recorded run."""
    say = stage or (lambda name: None)
    say(STATUS_STAGES[0])
    claims = vault_claims(vault, note_path=note_path, tag=tag)
    say(STATUS_STAGES[1])
    papers = status_table(_root(vault), claims)
    if status:
        for paper in papers:
            paper["claims"] = [c for c in paper["claims"] if status_matches(c["status"], status)]
        papers = [p for p in papers if p["claims"]]
    return papers


def checks_brief(entry: dict[str, Any]) -> str:
    """One line for tables: how many checks passed, at which scale, of which evidence kind."""
    reason = entry.get("reason") or ""
    checks = entry.get("checks") or []
    if not checks:
        return reason
    judged = [c for c in checks if _counted(c)]
    passed = sum(1 for c in judged if c.get("passed"))
    scales = sorted({str(c.get("scale")) for c in judged if c.get("scale")})
    kinds = sorted({str(c.get("evidence")) for c in judged})
    text = f"{passed}/{len(judged)} passed ({', '.join(scales)}; {', '.join(kinds)})"
    ref = sum(1 for c in checks if c.get("evidence") == "reference")
    if ref:
        text += f"; {ref} reference"
    unjudged = len(checks) - len(judged) - ref
    if unjudged:
        text += f"; {unjudged} of the experiment's own not judged (the claim's params:: are judged on its expect::)"
    for run in (entry.get("experiment_runs") or entry.get("experiments") or {}).values():
        if isinstance(run, dict) and run.get("seed_brief"):
            text += f"; {run['seed_brief']}"
    failed = [c for c in judged if not c.get("passed")]
    if failed:
        c = failed[0]
        text += f"; failed: {c.get('name')} = {_num(c.get('value'))} {c.get('op')} {c.get('threshold')}"
    if entry.get("params") and entry.get("scope"):
        text += "; counted: " + "; ".join(entry["scope"].values())
    return "; ".join(filter(None, [reason, text]))


def controls_brief(entry: dict[str, Any]) -> str:
    controls = entry.get("controls") or []
    if not controls:
        return ""
    bad = [c for c in controls if not c.get("ok")]
    if bad:
        if entry.get("reason"):
            return ""  # the reason already names them
        return "; ".join(
            f"control {c['control']} of {c['experiment']}: {c.get('error', 'not contradicted')}" for c in bad
        )
    return f"{len(controls)} own control{'s' if len(controls) != 1 else ''} contradicted"


def _num(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
