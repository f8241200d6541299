"""Errors that paperkb reports to the user as one line (never a traceback)."""


class PaperkbError(Exception):
    """A problem the user can fix: a bad argument, a missing note, a broken file.

    The CLI prints ``error: <message>`` and exits with ``exit_code``.
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class NoteNotFound(PaperkbError):
    """A note named on the command line matches no file name, alias, citekey or title."""


class VaultError(PaperkbError):
    """The vault folder is missing or unreadable."""
