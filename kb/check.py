"""``paperkb check``: every problem of a vault, plus the claims/experiments cross-check.

Besides parse and link problems (from the index), reports

* a claim naming an experiment id the registry does not know (warning: the experiment
  may simply not be written yet);
* a registered experiment that no claim of the vault names (warning, reported at the
  function that declares it); in a vault without any claim, one info line instead, since
  a reading vault that does not track reproductions should not be buried in warnings;
* an experiments module that failed to load (warning, at that module);
* one claim id used in two notes (warning: runs and statuses are kept per claim id, so
  the two claims would share them).
"""

from __future__ import annotations

import inspect

from pathlib import Path

from kb.model import Claim, Note, Problem


def _project_relative(filename: str) -> str:
    from repro import registry

    root = Path(registry.__file__).resolve().parent.parent
    try:
        return Path(filename).resolve().relative_to(root).as_posix()
    except ValueError:
        return filename


def experiment_problems(notes: list[Note] | list[tuple[str, Claim]]) -> list[Problem]:
    """Cross-check claims against ``repro.registry``: ``notes`` are Notes or the
    ``(path, claim)`` pairs of ``Vault.claims()``."""
    from repro import registry

    pairs = [(n.path, c) for n in notes for c in n.claims] if notes and isinstance(notes[0], Note) else notes
    known = set(registry.ids())
    problems: list[Problem] = []
    named: set[str] = set()
    first_seen: dict[str, tuple[str, int]] = {}
    for path, claim in pairs:
        where = first_seen.setdefault(claim.id, (path, claim.line))
        if where[0] != path:
            problems.append(Problem(path, claim.line, "warning",
                                    f"claim id '{claim.id}' is also used at {where[0]}:{where[1]}; the two claims "
                                    "would share runs and status (give one another block id)"))
        if not claim.experiments and not getattr(claim, "needs", ""):
            problems.append(Problem(path, claim.line, "warning",
                                    f"claim '{claim.id}' names no experiment (add 'experiment:: <id>')"))
        for exp in claim.experiments:
            named.add(exp)
            if exp not in known:
                problems.append(Problem(path, claim.line, "warning",
                                        f"claim '{claim.id}' names unknown experiment '{exp}'"))
    if not pairs and known:
        problems.append(Problem("repro/registry.py", 1, "info",
                                f"no claim of the vault names an experiment; {len(known)} experiments are "
                                "registered (see: paperkb experiments)"))
        known = set()
    for exp_id in sorted(known - named):
        path, line = "repro/registry.py", 1
        try:
            fn = inspect.unwrap(registry.get(exp_id).fn)
            path, line = _project_relative(fn.__code__.co_filename), fn.__code__.co_firstlineno
        except Exception:  # an odd declaration must not break the check
            pass
        problems.append(Problem(path, line, "warning", f"experiment '{exp_id}' is named by no claim of the vault"))
    for err in registry.load_errors():
        module = err.split(":", 1)[0].strip()
        path = module.replace(".", "/") + ".py" if module and " " not in module else "repro/registry.py"
        problems.append(Problem(path, 1, "warning", f"experiments could not be loaded: {err}"))
    return problems


def check(vault, *, experiments: bool = True) -> list[Problem]:
    """All problems of ``vault`` (a ``kb.vault.Vault``): vault ones sorted by path and line,
    then the registry cross-check."""
    problems = list(vault.problems())
    if experiments:
        problems.extend(experiment_problems(vault.claims()))
    return problems


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


__all__ = ["check", "experiment_problems", "has_errors"]
