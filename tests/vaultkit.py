"""Writing small vaults for the tests (tests/kb, tests/export, tests/robustness): a plain function,
not a fixture; tests/conftest.py says why."""

from __future__ import annotations

from pathlib import Path


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create each file (text as UTF-8, bytes as is), making folders as needed; returns ``root``."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text, encoding="utf-8")
    return root
