"""Helpers shared by the command modules: the vault option, output formats, errors."""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer


@dataclass
class State:
    vault: Path


def vault_of(ctx: typer.Context) -> Path:
    """The vault chosen by ``--vault``, ``$PAPERKB_VAULT`` or the current folder."""
    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, State) else None
    if state is None:
        return Path(os.environ.get("PAPERKB_VAULT") or ".").resolve()
    return state.vault


def fail(message: str, code: int = 1) -> "typer.Exit":
    """Print one clear line on stderr and exit; use as ``raise fail(...)``."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def guard(fn: Callable) -> Callable:
    """Turn a PaperkbError raised by a command into ``error: <message>`` and its exit
    code, also under typer's test runner (which does not go through ``cli.app.main``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kb.errors import PaperkbError

        try:
            return fn(*args, **kwargs)
        except PaperkbError as exc:
            raise fail(str(exc), exc.exit_code) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# --------------------------------------------------------------------------------------
# Checks shared by every command. Each raises kb.errors.PaperkbError, which the root
# group (cli.app.OneLineErrors) prints as one ``error: ...`` line.
# --------------------------------------------------------------------------------------
def check_format(fmt: str, allowed: tuple[str, ...] = ("table", "json")) -> str:
    """``fmt`` if it is one of ``allowed``; else a usage error (exit status 2)."""
    from kb.errors import PaperkbError

    if fmt not in allowed:
        raise PaperkbError(f"unknown --format {fmt!r} (use {', '.join(allowed)})", exit_code=2)
    return fmt


def require_vault(vault: Path) -> Path:
    """``vault`` if it is an existing folder (the same words as ``kb.vault.Vault``)."""
    from kb.errors import VaultError

    if not vault.exists():
        raise VaultError(f"vault folder not found: {vault}")
    if not vault.is_dir():
        raise VaultError(f"vault is not a folder: {vault}")
    return vault


def check_output(path: Optional[Path]) -> Optional[Path]:
    """Refuse an ``--output`` path that cannot be written, before any work is done."""
    from kb.errors import PaperkbError

    if path is None:
        return None
    if path.is_dir():
        raise PaperkbError(f"cannot write {path}: it is a folder (give a file name)", exit_code=2)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PaperkbError(f"cannot write {path}: folder {parent} does not exist", exit_code=2)
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PaperkbError(f"cannot write {path}: permission denied", exit_code=2)
    return path


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) and say so on stderr; an OSError becomes one line."""
    from kb.errors import PaperkbError

    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PaperkbError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}", file=sys.stderr)


def find_path(vault: Any, name: str) -> str:
    """The path of the note ``name`` names in ``vault`` (a ``kb.vault.Vault``), for a
    command line.

    Stricter and more helpful than ``Vault.find``: a name that fits several notes equally
    well (two files ``Note.md`` in different folders, one alias on two notes) is refused
    with the candidates listed, since guessing would show the wrong paper; a name that
    fits nothing suggests notes whose names contain its words (``llama`` -> Llama 2).
    """
    from kb.errors import NoteNotFound, PaperkbError

    path = vault.find(name)
    if path is None:
        try:
            vault.note(name)  # raises with the index's own close matches, if any
        except NoteNotFound as exc:
            loose = [] if "did you mean" in str(exc) else _loose_matches(vault, name)
            if loose:
                raise NoteNotFound(f"{exc}; did you mean: {', '.join(loose)}?") from None
            raise
    others = _equally_good(vault, name)
    if len(others) > 1:
        raise PaperkbError(
            f"{name!r} names {len(others)} notes: {', '.join(others[:5])}; give the path to pick one"
        )
    return path


def find_note(vault: Any, name: str) -> Any:
    """The ``kb.model.Note`` that ``name`` names (see :func:`find_path`)."""
    return vault.note_at(find_path(vault, name))


def _equally_good(vault: Any, name: str) -> list[str]:
    """The notes tied for the best match of ``name`` (more than one: ambiguous)."""
    from kb.resolve import norm, strip_md

    raw = name.strip().replace("\\", "/")
    keys = sorted({norm(raw), norm(strip_md(raw)), norm(raw.lstrip("@")), norm(strip_md(raw).lstrip("@"))} - {""})
    if not keys:
        return []
    rank = {"path": 0, "name": 1, "alias": 2, "citekey": 3, "title": 4}
    by_rank: dict[int, set[str]] = {}
    rows = vault.connect().execute(
        f"SELECT path, kind FROM names WHERE key IN ({','.join('?' * len(keys))})", keys
    )
    for path, kind in rows:
        by_rank.setdefault(rank.get(kind, 9), set()).add(path)
    if not by_rank:
        return []
    return sorted(by_rank[min(by_rank)], key=lambda p: (p.count("/"), len(p), p))


def _loose_matches(vault: Any, name: str, limit: int = 3) -> list[str]:
    """Notes whose names contain every word of ``name`` (or a close spelling of it)."""
    import difflib
    import re

    from kb.resolve import norm

    words = [w for w in re.split(r"[\W_]+", norm(name)) if w]
    if not words:
        return []
    shown: dict[str, str] = {}
    for key, path, kind, label in vault.connect().execute("SELECT key, path, kind, label FROM names"):
        if kind == "path" or path in shown:
            continue
        key_words = [w for w in re.split(r"[\W_]+", key) if w]

        def fits(word: str) -> bool:
            return word in key or bool(difflib.get_close_matches(word, key_words, n=1, cutoff=0.8))

        if all(fits(w) for w in words):
            shown[path] = label if path.rsplit("/", 1)[-1][:-3] == label else f"{label} ({path})"
    return sorted(shown.values(), key=str.lower)[:limit]
