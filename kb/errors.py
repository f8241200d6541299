"""Errors that paperkb reports to the user as one line (never a traceback).

The classes live in :mod:`paperkb.errors` (a floor shared by kb, repro and cli); these
names stay importable from here so that existing code keeps working.
"""

from paperkb.errors import MissingExtra, NoteNotFound, PaperkbError, UsageError, VaultError, needs_extra

__all__ = ["PaperkbError", "UsageError", "NoteNotFound", "VaultError", "MissingExtra", "needs_extra"]
