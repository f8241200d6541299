"""Which folder is the vault: found the way git finds its repository.

In order of precedence:

1. ``--vault PATH`` on the command line (any existing folder);
2. ``$PAPERKB_VAULT`` (an explicit choice for this shell);
3. the nearest folder, from the current one upwards, holding ``.obsidian/`` (Obsidian's
   own marker) or ``.paperkb/`` (made by ``paperkb init`` or an earlier index).

Anywhere else paperkb refuses with one line saying how to pick a vault, so that running
it in ``/tmp`` or a home folder never indexes (or writes into) thousands of unrelated files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from paperkb.errors import VaultError

MARKERS = (".obsidian", ".paperkb")
ENV_VAR = "PAPERKB_VAULT"


def find_vault_root(start: Path | str) -> Path | None:
    """The nearest folder at or above ``start`` holding a vault marker, or None."""
    here = Path(start).expanduser().resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).is_dir() for marker in MARKERS):
            return folder
    return None


def _existing_folder(path: Path, how: str) -> Path:
    path = path.expanduser()
    if not path.exists():  # a bad --vault or $PAPERKB_VAULT is a usage error (exit status 2)
        raise VaultError(f"vault folder not found: {path} (from {how})", exit_code=2)
    if not path.is_dir():
        raise VaultError(f"vault is not a folder: {path} (from {how})", exit_code=2)
    return path.resolve()


def locate_vault(
    explicit: Path | str | None = None, *, cwd: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The vault folder for a command (see the module docstring), or a VaultError."""
    if explicit is not None and str(explicit) != "":
        return _existing_folder(Path(explicit), "--vault")
    env = (os.environ if environ is None else environ).get(ENV_VAR)
    if env:
        return _existing_folder(Path(env), f"${ENV_VAR}")
    start = Path(cwd) if cwd is not None else Path.cwd()
    found = find_vault_root(start)
    if found is not None:
        return found
    raise VaultError(
        f"{start.resolve()} is not in a vault (no .obsidian/ or .paperkb/ here or above); "
        f"pass --vault PATH, set ${ENV_VAR}, or run `paperkb init` in the vault folder",
        exit_code=2,
    )


def init_vault(folder: Path | str) -> tuple[Path, bool]:
    """Mark ``folder`` as a paperkb vault (creates ``.paperkb/``); ``(root, created)``.

    An Obsidian vault (``.obsidian/``) needs no marker, but gets one anyway so that the
    index has its home ready."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise VaultError(f"folder not found: {root}")
    if not root.is_dir():
        raise VaultError(f"not a folder: {root}")
    marker = root.resolve() / ".paperkb"
    created = not marker.is_dir()
    try:
        marker.mkdir(exist_ok=True)
    except OSError as exc:
        raise VaultError(f"cannot create {marker}: {exc.strerror or exc}") from None
    return root.resolve(), created


__all__ = ["MARKERS", "ENV_VAR", "find_vault_root", "locate_vault", "init_vault"]
