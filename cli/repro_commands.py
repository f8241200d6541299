"""Reproduction commands: ``experiments``, ``claims``, ``run``, ``runs`` (``show``,
``compare``, ``export``, ``cancel``), ``status``, registered on the root app.

Each lives in a module of its own over a library call (``repro.runner``,
``repro.tracker``, ``repro.run_queries``, ``repro.status``): ``cli.experiment_commands``,
``cli.claims_commands``, ``cli.run_commands``, ``cli.runs_commands``; their shared
helpers are in ``cli.repro_shared``. Nothing here imports torch: only the child process
started by ``paperkb run`` does. Every command first marks runs whose paperkb process
died as ``interrupted`` (heartbeat).
"""

from __future__ import annotations

import typer

from cli.claims_commands import claims_cmd, status_cmd
from cli.experiment_commands import experiments_app
from cli.run_commands import run_cmd
from cli.runs_commands import runs_app


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
    app.command("claims")(claims_cmd)
    app.command("run")(run_cmd)
    app.add_typer(runs_app, name="runs")
    app.command("status")(status_cmd)
