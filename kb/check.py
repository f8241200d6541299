"""``paperkb check``: every problem of a vault, plus the claims/experiments cross-check.

Besides parse and link problems (from the index), reports

* a ```dataview block that does not parse (warning, at the block's fence line);
* a claim that cannot be judged as written (errors, so that nothing runs on it and it reads
  ``error``): an experiment id that is not declared (the known ids listed), ``params::``
  without ``expect::``, and, through each experiment's ``claim_errors``, a parameter the
  experiment does not have or keeps as a threshold, a value of the wrong type or out of
  bounds, a metric it does not record (a ``params::``/``expect::`` line that does not parse
  is reported by the parser, at its line);
* a claim naming no experiment, and one claim id used in two notes (warnings: runs and
  statuses are kept per claim id, so the two claims would share them);
* an experiments module that failed to load (warning, at that module);
* asked for (``unnamed=True``, ``paperkb check --all``): a declared experiment that no
  claim names (warning, at the function that declares it).

kb knows nothing of the reproduction side: the caller hands in the declared experiments
(:class:`DeclaredExperiment`, e.g. from ``repro.catalog.declared_experiments()``) and the
load errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kb.claimspec import PARAMS_WITHOUT_EXPECT
from kb.model import Claim, Note, Problem


@dataclass(frozen=True)
class DeclaredExperiment:
    """An experiment id and where it is declared (for a clickable ``path:line``).
    ``claim_errors(params, expect)`` says why a claim's own params::/expect:: do not fit it
    (its declared parameters, thresholds and metrics); None: not checked."""

    id: str
    path: str = "repro/registry.py"
    line: int = 1
    claim_errors: Callable[[dict[str, Any], list[dict[str, Any]]], list[str]] | None = field(
        default=None, compare=False, repr=False
    )


def experiment_problems(
    notes: Sequence[Note] | Sequence[tuple[str, Claim]],
    experiments: Iterable[DeclaredExperiment | str],
    load_errors: Iterable[str] = (),
    *,
    unnamed: bool = False,
) -> list[Problem]:
    """Cross-check claims against the declared ``experiments``; ``notes`` are Notes or the
    ``(path, claim)`` pairs of ``Vault.claims()``. ``unnamed`` also reports experiments
    that no claim names."""
    declared = {
        e.id: e for e in (x if isinstance(x, DeclaredExperiment) else DeclaredExperiment(x) for x in experiments)
    }
    pairs: list[tuple[str, Claim]] = (
        [(n.path, c) for n in notes for c in n.claims]  # type: ignore[union-attr]
        if notes and isinstance(notes[0], Note)
        else list(notes)  # type: ignore[arg-type]
    )
    problems: list[Problem] = []
    named: set[str] = set()
    first_seen: dict[str, tuple[str, int]] = {}
    for path, claim in pairs:
        where = first_seen.setdefault(claim.id, (path, claim.line))
        if where[0] != path:
            problems.append(
                Problem(
                    path,
                    claim.line,
                    "warning",
                    f"claim id '{claim.id}' is also used at {where[0]}:{where[1]}; the two claims "
                    "would share runs and status (give one another block id)",
                )
            )
        if not claim.experiments and not getattr(claim, "needs", ""):
            problems.append(
                Problem(
                    path, claim.line, "warning", f"claim '{claim.id}' names no experiment (add 'experiment:: <id>')"
                )
            )
        if (
            getattr(claim, "params", None)
            and not getattr(claim, "expect", None)
            and not getattr(claim, "spec_errors", None)
        ):
            problems.append(Problem(path, claim.line, "error", f"claim '{claim.id}': {PARAMS_WITHOUT_EXPECT}"))
        for exp in claim.experiments:
            named.add(exp)
            decl = declared.get(exp)
            if decl is None:
                known = ", ".join(sorted(declared)) or "none"
                problems.append(
                    Problem(
                        path,
                        claim.line,
                        "error",
                        f"claim '{claim.id}' names unknown experiment '{exp}' (known: {known})",
                    )
                )
            elif decl.claim_errors is not None and (claim.params or claim.expect):
                for why in decl.claim_errors(dict(claim.params), list(claim.expect)):
                    problems.append(Problem(path, claim.line, "error", f"claim '{claim.id}': {why}"))
    if unnamed:
        for exp_id in sorted(set(declared) - named):
            e = declared[exp_id]
            problems.append(
                Problem(e.path, e.line, "warning", f"experiment '{exp_id}' is named by no claim of the vault")
            )
    for err in load_errors:
        module = err.split(":", 1)[0].strip()
        path = module.replace(".", "/") + ".py" if module and " " not in module else "repro/registry.py"
        problems.append(Problem(path, 1, "warning", f"experiments could not be loaded: {err}"))
    return problems


def dataview_problems(vault: Any) -> list[Problem]:
    """A warning for each ```dataview block of the vault that does not parse, at its
    fence line (Obsidian would show the error only when the note is opened)."""
    from kb.query import QueryError, find_blocks, parse_query

    problems: list[Problem] = []
    for path in vault.paths():
        source = (vault.root / path).resolve()
        if not source.is_relative_to(vault.root):  # never read outside the vault
            continue
        try:
            text = source.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue  # the index reports unreadable files already
        if "dataview" not in text:
            continue
        for start, _end, query in find_blocks(text):
            try:
                parse_query(query)
            except QueryError as exc:
                problems.append(Problem(path, start + 1, "warning", f"dataview block does not parse: {exc}"))
    return problems


def check(
    vault: Any,
    *,
    experiments: Iterable[DeclaredExperiment | str] | None = None,
    load_errors: Iterable[str] = (),
    unnamed: bool = False,
    dataview: bool = True,
) -> list[Problem]:
    """All problems of ``vault`` (a ``kb.vault.Vault``): vault ones sorted by path and
    line, then broken dataview blocks, then (when ``experiments`` is given) the
    claims/experiments cross-check."""
    problems = list(vault.problems())
    if dataview:
        problems.extend(dataview_problems(vault))
    if experiments is not None:
        problems.extend(experiment_problems(vault.claims(), experiments, load_errors, unnamed=unnamed))
    return problems


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


__all__ = ["DeclaredExperiment", "check", "dataview_problems", "experiment_problems", "has_errors"]
