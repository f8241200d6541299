"""Long tables on a terminal go through a pager, as git's do.

Only a table written to a terminal is paged, and only when it is taller than the
terminal: piped or redirected output, the machine-readable formats and short tables are
written as they are. The pager is ``$PAPERKB_PAGER``, else ``$PAGER``, else ``less`` when
it is installed, run with ``LESS=FRX`` unless ``LESS`` is set (quit at once if the text
fits, keep colours, leave the text on screen). An empty value or ``cat`` turns paging
off, as does ``paperkb --no-pager``.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

_disabled = False


def disable() -> None:
    """``paperkb --no-pager``: write every table straight to the terminal."""
    global _disabled
    _disabled = True


def pager_command() -> list[str] | None:
    """The pager to run, as arguments, or None for none."""
    if _disabled:
        return None
    for name in ("PAPERKB_PAGER", "PAGER"):
        value = os.environ.get(name)
        if value is not None:
            value = value.strip()
            if not value or value == "cat":
                return None
            try:
                return shlex.split(value)
            except ValueError:  # an unbalanced quote: not a command we can run
                return None
    less = shutil.which("less")
    return [less] if less else None


def _on_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def paged(fmt: str, *, out: IO[str] | None = None, height: int | None = None) -> Iterator[IO[str]]:
    """Where a command writes its listing: a buffer sent to the pager afterwards when
    ``fmt`` is a table on a terminal and the pager is wanted, else ``out`` (stdout).

    The buffer stands for the terminal (``emit(..., terminal=True)``): the caller asks
    :func:`is_paging` whether it got one."""
    out = out or sys.stdout
    command = pager_command() if fmt == "table" and _on_terminal(out) else None
    if command is None:
        yield out
        return
    buffer = _PagerBuffer()
    yield buffer
    text = buffer.getvalue()
    rows = height or shutil.get_terminal_size((100, 24)).lines
    if text.count("\n") < rows:  # fits: no pager (and no screen switch)
        out.write(text)
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    out.flush()
    # Ctrl-C belongs to the pager while it runs (less uses it to stop a search), as in
    # git: this process ignores it meanwhile, the pager gets the default handling back.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        subprocess.run(command, input=text, text=True, env=env, check=False, preexec_fn=_default_sigint)
    except OSError:  # the pager cannot be started: the text is not lost
        out.write(text)
    finally:
        signal.signal(signal.SIGINT, previous)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _PagerBuffer(io.StringIO):
    """What a paged listing is written to (a terminal's stand-in)."""


def is_paging(stream: IO[str]) -> bool:
    return isinstance(stream, _PagerBuffer)


def emit_paged(rows: Any, columns: Sequence[str], fmt: str, **options: Any) -> None:
    """:func:`cli.output.emit`, a long table on a terminal going through the pager."""
    from cli.output import emit

    with paged(fmt) as out:
        emit(rows, columns, fmt, out=out, terminal=True if is_paging(out) else None, **options)
