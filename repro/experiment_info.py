"""Everything about one experiment, for ``paperkb experiments show ID``.

:func:`experiment_details` joins what the declaration says (``repro.registry.describe``:
description, parameters with types, defaults and allowed values, presets with their scale
and requirements, negative controls; the metrics it declares, when the declaration has
them), where its code comes from (``repro.provenance``), the metrics its recorded runs
logged, and the claims of the vault that cite it with their status. Any field a newer
declaration adds to ``describe`` (bounds of a parameter, declared metrics) comes through
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def experiment_details(exp_id: str, vault_root: Path | str) -> dict[str, Any]:
    from repro import registry
    from repro.provenance import experiment_source
    from repro.status import claim_statuses, vault_claims
    from repro.tracker import Tracker

    exp = registry.get(exp_id)
    info = registry.describe(exp)
    if "metrics" not in info:
        declared = getattr(exp, "metrics", None)
        info["metrics"] = [m if isinstance(m, (str, dict)) else getattr(m, "name", str(m)) for m in declared or ()]
    for p, param in zip(info["params"], exp.params):
        for bound in ("min", "max", "low", "high"):  # a newer Param may carry bounds
            if bound not in p and getattr(param, bound, None) is not None:
                p[bound] = getattr(param, bound)
    info["source"] = experiment_source(exp_id)
    recorded: list[str] = []
    runs = 0
    tracker = Tracker.open_existing(vault_root)
    if tracker is not None:
        with tracker:
            for run in tracker.runs(experiment=exp_id, limit=20, light=True):
                runs += 1
                for name in tracker.final_metrics(run.id):
                    if name not in recorded:
                        recorded.append(name)
    info["recorded_metrics"] = recorded
    info["runs"] = runs
    claims = [c for c in vault_claims(vault_root) if exp_id in c.experiments]
    statuses = claim_statuses(vault_root, claims) if claims else {}
    info["claims"] = [
        {
            "id": c.id,
            "statement": c.statement,
            "note": c.note,
            "line": c.line,
            "status": (statuses.get(c.id) or {}).get("status", "unverified"),
        }
        for c in claims
    ]
    return info
