"""The ``paperkb`` console script.

Command modules register themselves on the root app with ``register(app)``; they import
kb/repro lazily inside each command so that knowledge-base commands never import torch.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from cli.common import State

app = typer.Typer(
    name="paperkb",
    help=(
        "A knowledge base and reproduction tracker for research-paper notes kept in Obsidian.\n\n"
        "Example: paperkb --vault notes index && paperkb --vault notes show touvronLlamaOpenFoundation2023"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    vault: Optional[Path] = typer.Option(
        None,
        "--vault",
        "-V",
        envvar="PAPERKB_VAULT",
        help="The Obsidian vault folder (default: $PAPERKB_VAULT, else the current folder).",
        show_default=False,
    ),
) -> None:
    ctx.obj = State(vault=(vault or Path(".")).expanduser().resolve())


COMMAND_MODULES = ("cli.kb_commands", "cli.query_commands", "cli.repro_commands", "cli.export_commands")

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:
        if _exc.name == _name:
            continue
        raise
    _mod.register(app)


def main() -> None:
    """Entry point: run the app; turn paperkb errors (and any stray exception) into one line."""
    from kb.errors import PaperkbError

    try:
        app(standalone_mode=True)
    except PaperkbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # last line of defence: never a traceback unless asked
        if os.environ.get("PAPERKB_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set PAPERKB_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
