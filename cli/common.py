"""Helpers shared by the command modules: the vault, output files, note look-up, errors.

Listings are printed by :mod:`cli.output` (``--format``, fitted tables, TSV when piped);
``print_json`` and ``check_format`` stay importable from here for older callers.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from cli.output import print_json  # noqa: F401  (re-exported for the command modules)


@dataclass
class State:
    """What the root options chose; the vault is located when a command first asks."""

    vault_option: Optional[Path] = None
    _vault: Optional[Path] = None

    @property
    def vault(self) -> Path:
        if self._vault is None:
            from kb.locate import locate_vault

            self._vault = locate_vault(self.vault_option)
        return self._vault


def vault_of(ctx: typer.Context) -> Path:
    """The vault folder: ``--vault``, else ``$PAPERKB_VAULT``, else the nearest folder
    above holding ``.obsidian/`` or ``.paperkb/`` (see :mod:`kb.locate`); a VaultError
    (one line) when there is none."""
    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, State) else State()
    return state.vault


def fail(message: str, code: int = 1) -> Exception:
    """The error to raise for one clear line and exit status ``code``: ``raise fail(...)``.
    The root group (``cli.app.error_line``) words and prints it, like every other error."""
    from paperkb.errors import PaperkbError

    return PaperkbError(message, exit_code=code)


def guard(fn: Callable) -> Callable:
    """Kept for command modules that still decorate with it: errors are now turned into
    one line by the root group (``cli.app.OneLineErrors``), so this only passes through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def check_format(fmt: str, allowed: tuple[str, ...] = ("table", "json")) -> str:
    """``fmt`` if it is one of ``allowed``; else a usage error (exit status 2). New code
    uses :func:`cli.output.format_option`, which checks while parsing."""
    from paperkb.errors import UsageError

    if fmt not in allowed:
        raise UsageError(f"unknown --format {fmt!r} (use {', '.join(allowed)})")
    return fmt


def check_limit(limit: Optional[int], option: str = "--limit") -> Optional[int]:
    """A positive ``--limit`` (or None); else a usage error."""
    from paperkb.errors import UsageError

    if limit is not None and not 1 <= limit <= 1_000_000_000:
        raise UsageError(f"{option} must be a whole number from 1 to 1000000000, not {limit}")
    return limit


def require_vault(vault: Path) -> Path:
    """``vault`` if it is an existing folder (the same words as ``kb.vault.Vault``)."""
    from paperkb.errors import VaultError

    if not vault.exists():
        raise VaultError(f"vault folder not found: {vault}")
    if not vault.is_dir():
        raise VaultError(f"vault is not a folder: {vault}")
    return vault


# ``-o/--output FILE`` of the commands that print a document (stdout when not given)
OUTPUT_OPT = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout.")


def check_output(path: Optional[Path]) -> Optional[Path]:
    """Refuse an ``--output`` path that cannot be written, before any work is done."""
    from paperkb.errors import UsageError

    if path is None:
        return None
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder (give a file name)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied")
    return path


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) and say so on stderr; an OSError becomes one line."""
    from paperkb.errors import PaperkbError

    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PaperkbError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}", file=sys.stderr)


def find_path(vault: Any, name: str) -> str:
    """The path of the note ``name`` names in ``vault`` (see :func:`kb.lookup.find_unique`)."""
    from kb.lookup import find_unique

    return find_unique(vault, name)


def find_path_or_ghost(vault: Any, name: str) -> tuple[str | None, list[Any]]:
    """``(path, [])`` for a note; ``(None, links)`` for a work without a note that other
    notes link to (a ghost); NoteNotFound when ``name`` is neither."""
    from kb.errors import NoteNotFound

    try:
        return find_path(vault, name), []
    except NoteNotFound:
        ghost = vault.ghost_backlinks(name)
        if not ghost:
            raise
        return None, ghost


def ghost_line(name: str, rows: list[Any]) -> str:
    """The one line that says ``name`` is a ghost and who links to it."""
    sources = sorted({r.src for r in rows})
    noun = "note links" if len(sources) == 1 else "notes link"
    return f"{name!r}: no note yet; {len(sources)} {noun} to it"


def find_note(vault: Any, name: str) -> Any:
    """The ``kb.model.Note`` that ``name`` names (see :func:`find_path`)."""
    return vault.note_at(find_path(vault, name))


def hand_in_claim_statuses() -> None:
    """Tell the query engine where claim statuses come from (kb never imports repro):
    ``repro.status.claim_statuses``, read only when a query asks for a claim's status.
    Call before running queries (query, render, exports)."""
    from kb.query.corpus import use_claim_statuses

    def statuses(root: Path) -> Any:
        try:
            from repro.status import claim_statuses
        except ImportError:  # a kb-only install: every claim reads "unverified"
            return {}
        return claim_statuses(root)

    use_claim_statuses(statuses)


def declared_experiments() -> tuple[list[Any], list[str]] | None:
    """The declared experiments and load errors, for ``kb.check``; None when the
    reproduction side cannot be loaded at all (a kb-only install)."""
    try:
        from repro import catalog
    except ImportError:
        return None
    errors = catalog.load_errors()
    if any("No module named 'torch'" in e for e in errors):
        return None
    return catalog.declared_experiments(), errors
