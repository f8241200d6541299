"""The ``paperkb`` console script.

Command modules register themselves on the root app with ``register(app)``; they import
kb/repro lazily inside each command so that knowledge-base commands never import torch.
Every error ends here as one ``error: ...`` line (:func:`error_line`, the only place that
words them).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn, Optional

import typer
from typer.core import TyperGroup

try:  # typer >= 0.24 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on plain click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[assignment]

from cli.common import State

# Optional dependencies and the extra that installs each (pyproject.toml).
EXTRAS = {
    "torch": "repro",
    "transformers": "repro",
    "safetensors": "repro",
    "matplotlib": "repro",
    "triton": "gpu",
    "obsidiantools": "bench",
}
# Commands that cannot start without an optional dependency: refused up front, in one
# line, rather than failing inside a run (which would be recorded as a crashed run).
NEEDS = {"run": "torch", "chat": "torch"}


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line (without ``error: ``) and the exit status for ``exc``: the words a
    user reads instead of a traceback. No Python exception name ever reaches them."""
    import sqlite3

    from paperkb.errors import PaperkbError

    if isinstance(exc, PaperkbError):
        return _one_line(str(exc)), exc.exit_code
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in EXTRAS:
        module = (exc.name or "").split(".")[0]
        extra = EXTRAS[module]
        return (
            f"this command needs {module}, which is not installed; install it with: pip install 'paperkb[{extra}]'"
        ), 1
    if isinstance(exc, MemoryError):
        return "out of memory (try a smaller vault, preset or --limit)", 1
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"the disk is full (writing{where}); nothing stored was changed, free some space and retry", 1
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied:{where or ' a file paperkb needs'}", 1
        return f"cannot use{where or ' a file'}: {exc.strerror or _one_line(str(exc))}", 1
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if "locked" in text or "busy" in text:
            return "the database is busy (another paperkb is writing it); try again in a moment", 1
        if "malformed" in text or "not a database" in text:
            return (
                "a database under .paperkb/ is damaged (" + text + "); .paperkb/index.db can be deleted "
                "and rebuilt with `paperkb index`"
            ), 1
        if "full" in text:
            return "the disk is full; nothing stored was changed, free some space and retry", 1
        return f"the database could not be read or written ({text})", 1
    detail = _one_line(str(exc)) or "no details"
    return f"unexpected problem: {detail} (set PAPERKB_DEBUG=1 to see where; please report it)", 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reader_gone() -> None:
    """``paperkb tags | head -1``: the reader stopped reading; not an error. Point stdout
    at /dev/null so that Python's own flush at exit does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


def _say(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _end_with(exc: Exception) -> NoReturn:
    """End the process on an error nothing more specific caught: its one line and exit
    status from :func:`error_line`, or the traceback when ``PAPERKB_DEBUG`` is set."""
    if os.environ.get("PAPERKB_DEBUG"):
        raise exc
    message, status = error_line(exc)
    _say(message)
    sys.exit(status)


def hoist_vault(args: list[str]) -> list[str]:
    """Move ``--vault X`` / ``-V X`` / ``--vault=X`` and ``--no-pager`` written after the
    subcommand to the front, where the root group reads them (``paperkb index --vault notes``)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in ("--vault", "-V") and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--vault=") or arg == "--no-pager":
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class OneLineErrors(TyperGroup):
    """The root command group: every error a user can cause ends as ONE line on stderr,
    ``error: <message>``, and a non-zero exit status (2 for a usage error such as a
    missing argument or a malformed option value, 130 for Ctrl-C, else 1 or the error's
    own code), never a traceback or a boxed usage panel. Done here rather than in
    :func:`main` so that typer's test runner sees exactly what a user sees."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        args = hoist_vault(list(sys.argv[1:] if args is None else args))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            # `paperkb` or `paperkb export` alone: typer has printed the help already
            sys.exit(exc.exit_code)
        except UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "paperkb"
            _say(f"{_one_line(exc.format_message())} (see: {command} --help)")
            sys.exit(exc.exit_code)
        except ClickException as exc:
            _say(_one_line(exc.format_message()))
            sys.exit(exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except BrokenPipeError:
            _reader_gone()
        except Exception as exc:
            _end_with(exc)
        sys.exit(code if isinstance(code, int) else 0)


def _version(value: bool) -> None:
    if value:
        from paperkb import __version__

        print(f"paperkb {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    cls=OneLineErrors,
    name="paperkb",
    help=(
        "A knowledge base and reproduction tracker for research-paper notes kept in Obsidian.\n\n"
        "The vault is --vault (before or after the command), else $PAPERKB_VAULT, else the nearest "
        "folder above holding .obsidian/ or .paperkb/ (`paperkb init` makes one).\n\n"
        "Example: cd notes && paperkb index && paperkb show touvronLlamaOpenFoundation2023"
    ),
    no_args_is_help=True,
    add_completion=True,
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
        help="The vault folder (default: $PAPERKB_VAULT, else the nearest folder above with .obsidian/ or .paperkb/).",
        show_default=False,
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print paperkb's version and exit."
    ),
    no_pager: bool = typer.Option(
        False, "--no-pager", help="Write long tables straight to the terminal (else $PAGER or less pages them)."
    ),
) -> None:
    ctx.obj = State(vault_option=vault)
    if no_pager:
        from cli import pager

        pager.disable()
    module = NEEDS.get(ctx.invoked_subcommand or "")
    if module is not None and "--help" not in sys.argv and "-h" not in sys.argv:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            from paperkb.errors import needs_extra

            raise needs_extra(module, EXTRAS[module])


def init_cmd(
    folder: Path = typer.Argument(Path("."), help="The folder to make a vault (default: the current one)."),
    template: bool = typer.Option(
        False, "--template", help="Also write the default note template to .paperkb/templates/paper.md to edit."
    ),
) -> None:
    """Make a folder a paperkb vault (creates .paperkb/), so that commands run inside it find it.

    An Obsidian vault (with .obsidian/) is found without this. With --template, imported
    notes (import bibtex, import zotero) follow your copy of the template (docs/templates.md).

    Example: paperkb init ~/papers --template && cd ~/papers && paperkb index
    """
    from kb.locate import init_vault

    root, created = init_vault(folder)
    print(f"{'made' if created else 'already'} a paperkb vault: {root}")
    if template:
        from kb.publish.notetemplate import write_default_template

        path, written = write_default_template(root)
        print(f"{'wrote' if written else 'kept the template already at'} {path}")


app.command("init")(init_cmd)

COMMAND_MODULES = (
    "cli.kb_commands",
    "cli.query_commands",
    "cli.repro_commands",
    "cli.export_commands",
    "cli.finetune_commands",
    "cli.watch_commands",
    "cli.inputs_commands",
)

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:
        if _exc.name == _name:
            continue
        raise
    _mod.register(app)


def _command_name(info) -> str | None:
    """The name a registered typer command or sub-app answers to."""
    if info.name:
        return info.name
    if getattr(info, "callback", None) is not None:
        return info.callback.__name__.lower().replace("_", "-")
    typer_instance = getattr(info, "typer_instance", None)
    return typer_instance.info.name if typer_instance is not None else None


def only_invoked_command(args: list[str]) -> None:
    """Keep on ``app`` only the command that ``args`` invoke, when that is plain to see.

    Typer turns every registered command into a click command (inspecting signatures and
    type hints) before it reads the arguments: ~0.02 s of each command's start-up for
    commands that will not run. Anything else (root options, help, an unknown name that
    deserves "did you mean", shell completion) keeps the full app."""
    if any(key.endswith("_COMPLETE") for key in os.environ):
        return
    rest = hoist_vault(args)
    while rest and (rest[0] in ("--vault", "-V", "--no-pager") or rest[0].startswith("--vault=")):
        rest = rest[2:] if rest[0] in ("--vault", "-V") else rest[1:]
    if not rest or rest[0].startswith("-"):
        return
    name = rest[0]
    commands = [c for c in app.registered_commands if _command_name(c) == name]
    groups = [g for g in app.registered_groups if _command_name(g) == name]
    if len(commands) + len(groups) == 1:
        app.registered_commands, app.registered_groups = commands, groups


@contextlib.contextmanager
def _narrowed(args: list[str]) -> Iterator[None]:
    """:func:`only_invoked_command` for one call of ``app``; the full app comes back after."""
    saved = app.registered_commands, app.registered_groups
    try:
        only_invoked_command(args)
        yield
    finally:
        app.registered_commands, app.registered_groups = saved


def main() -> None:
    """Entry point: run the app (the root group turns every error into one line); this
    catches only what escapes it, e.g. Ctrl-C between commands or a broken stdout pipe."""
    try:
        with _narrowed(sys.argv[1:]):
            app(standalone_mode=True, prog_name="paperkb")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        _reader_gone()
    except Exception as exc:
        _end_with(exc)


if __name__ == "__main__":
    main()
