"""Is a claim well-formed against the experiments it names? One answer for ``paperkb check``
(before anything runs), ``paperkb run`` (which refuses to run it) and the status words (the
claim reads ``error``).

A claim is in error when a ``params::`` / ``expect::`` line did not parse, when it sets
``params::`` without an ``expect::`` to judge them, when it names an experiment the registry
does not have (or refused), a parameter the experiment does not have or may not take from a
note (a threshold), a value of the wrong type or out of bounds, or a metric the experiment
does not record. Each reason names what is known.

Torch-free: it reads declarations only.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from kb.claimspec import spec_errors
from repro import registry


def experiments() -> dict[str, registry.Experiment]:
    """The registry (with the test-only modules when the environment names them)."""
    from repro.worker import load_experiments

    return load_experiments()


def unknown_experiment(exp_id: str, known: Mapping[str, Any]) -> str:
    refused = registry.refusal(exp_id)
    if refused:
        return f"experiment {exp_id!r} was refused by the registry ({refused})"
    close = difflib.get_close_matches(exp_id, list(known), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"unknown experiment {exp_id!r} ({hint}known: {', '.join(sorted(known)) or 'none'})"


def claim_errors(claim: Any, exps: Mapping[str, registry.Experiment] | None = None) -> list[str]:
    """Why ``claim`` (a ``kb.model.Claim`` or ``repro.status.ClaimRef``) cannot be judged as
    written; empty when it can."""
    exps = experiments() if exps is None else exps
    errors = spec_errors(claim)
    params = dict(getattr(claim, "params", None) or {})
    expect = list(getattr(claim, "expect", None) or [])
    for exp_id in getattr(claim, "experiments", None) or []:
        exp = exps.get(exp_id)
        if exp is None:
            errors.append(unknown_experiment(exp_id, exps))
        else:
            errors.extend(exp.claim_errors(params, expect))
    return errors


__all__ = ["claim_errors", "experiments", "unknown_experiment"]
