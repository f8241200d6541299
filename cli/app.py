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
from typer.core import TyperGroup

try:  # typer >= 0.24 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on plain click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from cli.common import State


class OneLineErrors(TyperGroup):
    """The root command group: every error a user can cause ends as ONE line on stderr,
    ``error: <message>``, and a non-zero exit status (1 for a PaperkbError, 2 for a usage
    error such as a missing argument or a malformed option value), never a traceback or
    a boxed usage panel. Done here rather than in :func:`main` so that typer's test
    runner sees exactly what a user sees."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from kb.errors import PaperkbError

        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            # `paperkb` or `paperkb export` alone: typer has printed the help already
            sys.exit(exc.exit_code)
        except UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "paperkb"
            print(f"error: {_one_line(exc.format_message())} (see: {command} --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        except ClickException as exc:
            print(f"error: {_one_line(exc.format_message())}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except PaperkbError as exc:
            print(f"error: {_one_line(str(exc))}", file=sys.stderr)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


app = typer.Typer(
    cls=OneLineErrors,
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


COMMAND_MODULES = ("cli.kb_commands", "cli.query_commands", "cli.repro_commands", "cli.export_commands",
                   "cli.finetune_commands")

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
        app(standalone_mode=True, prog_name="paperkb")
    except PaperkbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # a file we were told to read or write
        if os.environ.get("PAPERKB_DEBUG"):
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # last line of defence: never a traceback unless asked
        if os.environ.get("PAPERKB_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set PAPERKB_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
