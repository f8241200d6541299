"""Helpers shared by the command modules: the vault option, output formats, errors."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
