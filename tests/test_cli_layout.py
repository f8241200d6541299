"""The CLI stays a thin layer: no command module grows past ~500 lines (issue 25); run logic
belongs in repro, where the library calls are."""

from __future__ import annotations

from pathlib import Path

CLI = Path(__file__).resolve().parents[1] / "cli"
MAX_LINES = 500


def test_no_cli_module_exceeds_500_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(CLI.glob("*.py"))}
    assert len(sizes) > 5  # the folder was found
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"cli modules over {MAX_LINES} lines (move the logic into repro or kb): {too_long}"
