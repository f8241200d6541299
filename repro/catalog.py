"""What the reproduction side declares, in the words ``kb.check`` takes: each registered
experiment with the file and line of the function that declares it, and the modules that
failed to load. The CLI hands these to ``kb.check.check`` (kb never imports repro).
"""

from __future__ import annotations

import inspect
from pathlib import Path

from kb.check import DeclaredExperiment

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _project_relative(filename: str) -> str:
    try:
        return Path(filename).resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return filename


def declared_experiments() -> list[DeclaredExperiment]:
    """Every registered experiment, located at its declaring function."""
    from repro import registry
    from repro.worker import load_experiments

    out = []
    for exp_id in sorted(load_experiments()):
        path, line = "repro/registry.py", 1
        try:
            code = inspect.unwrap(registry.get(exp_id).fn).__code__
            path, line = _project_relative(code.co_filename), code.co_firstlineno
        except Exception:  # an odd declaration must not break the check
            pass
        out.append(DeclaredExperiment(exp_id, path, line, registry.get(exp_id).claim_errors))
    return out


def load_errors() -> list[str]:
    """``"module: what went wrong"`` for each experiments module that failed to import."""
    from repro import registry

    registry.ids()  # loads the modules
    return list(registry.load_errors())


__all__ = ["declared_experiments", "load_errors"]
