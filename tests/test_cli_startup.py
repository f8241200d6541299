"""The console script builds only the invoked command (start-up time of read commands)
and leaves the full app in place for everything else."""

from __future__ import annotations

import pytest

import cli.app as cli_app


def _run_main(monkeypatch, capsys, argv: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["paperkb", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_app.main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_only_the_invoked_command_is_kept_then_the_full_app_comes_back(monkeypatch):
    full = len(cli_app.app.registered_commands), len(cli_app.app.registered_groups)
    with cli_app._narrowed(["--vault", "notes", "show", "x"]):
        assert [cli_app._command_name(c) for c in cli_app.app.registered_commands] == ["show"]
        assert cli_app.app.registered_groups == []
    assert (len(cli_app.app.registered_commands), len(cli_app.app.registered_groups)) == full
    with cli_app._narrowed(["export", "json", "--vault=notes"]):
        assert [cli_app._command_name(g) for g in cli_app.app.registered_groups] == ["export"]
    for args in (["--help"], [], ["shw"], ["--vault", "notes"]):
        with cli_app._narrowed(args):
            assert len(cli_app.app.registered_commands) == full[0]


def test_narrowed_commands_still_run_and_unknown_ones_get_suggestions(monkeypatch, capsys, tmp_path):
    (tmp_path / "A.md").write_text("# A\n[[B]]\n", encoding="utf-8")
    (tmp_path / "B.md").write_text("# B\n", encoding="utf-8")
    code, out, _ = _run_main(monkeypatch, capsys, ["backlinks", "B", "--vault", str(tmp_path)])
    assert code == 0 and "A.md" in out
    code, _, err = _run_main(monkeypatch, capsys, ["--vault", str(tmp_path), "shw", "A"])
    assert code == 2 and "show" in err  # "did you mean" needs every command
    code, out, _ = _run_main(monkeypatch, capsys, ["--help"])
    assert code == 0 and "backlinks" in out and "export" in out


def test_clean_passes_printable_text_through_and_still_cleans_the_rest():
    from cli.output import clean

    assert clean("Llama 2 — über ∑ 7B") == "Llama 2 — über ∑ 7B"
    assert clean("a\x1b[31mred\x1b[0m\tb\nc") == "ared b c"
    assert clean("x\u202ey\x85z\x00") == "x?y?z?"
    assert clean("a\u00a0b") == "a\u00a0b"  # no-break space: not printable to Python, kept as is
