"""The error paperkb reports to the user as one line (never a traceback).

Lives outside ``kb`` and ``repro`` so that both (and ``cli``) can raise it without one
layer importing another; ``kb.errors`` re-exports it under the same names.
"""

from __future__ import annotations

from collections.abc import Iterable


class PaperkbError(Exception):
    """A problem the user can fix: a bad argument, a missing note, a broken file.

    The CLI prints ``error: <message>`` and exits with ``exit_code`` (1, or 2 for a usage
    error). ``suggestions`` are what the user may have meant (note names, experiment ids,
    presets); the message already mentions them, and code that wants to offer them again
    reads this field rather than parsing the message::

        raise NoteNotFound("no note named 'lama'", suggestions=["Llama 2"])
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None, suggestions: Iterable[str] = ()) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.suggestions: list[str] = list(suggestions)


class UsageError(PaperkbError):
    """A malformed command line: a bad option value, an unknown format (exit status 2)."""

    exit_code = 2


class NoteNotFound(PaperkbError):
    """A note named on the command line matches no file name, alias, citekey or title."""


class VaultError(PaperkbError):
    """The vault folder is missing, unreadable, or could not be found."""


class MissingExtra(PaperkbError):
    """A command needs an optional part of paperkb that is not installed (e.g. torch)."""


def needs_extra(module: str, extra: str = "repro") -> MissingExtra:
    """The one-line error for a missing optional dependency; use as ``raise needs_extra("torch")``."""
    return MissingExtra(
        f"this command needs {module}, which is not installed; install it with: pip install 'paperkb[{extra}]'"
    )


__all__ = ["PaperkbError", "UsageError", "NoteNotFound", "VaultError", "MissingExtra", "needs_extra"]
