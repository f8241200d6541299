"""What deciding a claim at the paper's scale would take, for experiments with no ``paper`` preset.

Some claims cannot be decided even on a cluster (the paper's human preference data was
never released; pretraining on 2 trillion tokens is out of any lab's reach but Meta's).
Their experiments declare no ``paper`` preset, and say here why, so that
``paperkb run --preset paper`` records them as ``needs <what>`` instead of pretending::

    from repro.paper import beyond_reach

    beyond_reach("finetune/dpo", "Meta's human preference comparisons (never released)")

Torch-free; the run planner imports it.
"""

from __future__ import annotations

from typing import Any

_BEYOND_REACH: dict[str, str] = {}

NO_PAPER_PRESET = "a paper-scale setting, which this experiment does not declare"


def beyond_reach(experiment_id: str, needs: str) -> None:
    """Declare what a ``paper``-scale run of ``experiment_id`` would need (``needs …`` words)."""
    _BEYOND_REACH[experiment_id] = needs


def paper_needs(experiment_id: str) -> str:
    """The ``needs …`` words for a ``paper`` run of an experiment with no ``paper`` preset."""
    return _BEYOND_REACH.get(experiment_id, NO_PAPER_PRESET)


def add_paper_preset(experiment_id: str, preset: Any) -> None:
    """Give a registered experiment its ``paper`` preset (``repro.paper_settings`` does, for
    the built-in ones): the paper's own setting, checked like any declared preset."""
    from repro import registry

    exp = registry.load_all().get(experiment_id)
    if exp is None:
        return  # that area failed to load: `paperkb check` lists why
    unknown = set(preset.params) - {p.name for p in exp.params}
    if unknown:
        raise registry.RegistryError(f"paper preset of {experiment_id!r} sets unknown parameters {sorted(unknown)}")
    exp.presets["paper"] = preset
