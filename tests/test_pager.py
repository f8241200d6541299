"""Long tables on a terminal go through the pager (cli/pager.py), as git's do."""

from __future__ import annotations

import io
import shlex
import sys

import pytest

from cli import pager


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _pager_state(monkeypatch):
    monkeypatch.setattr(pager, "_disabled", False)
    monkeypatch.delenv("PAPERKB_PAGER", raising=False)
    monkeypatch.delenv("PAGER", raising=False)


def _recording_pager(monkeypatch, tmp_path):
    """A pager that saves what it is given (and the LESS it sees) to a file."""
    saved = tmp_path / "paged.txt"
    code = "import os,sys; open(sys.argv[1],'w').write(os.environ.get('LESS','') + '|' + sys.stdin.read())"
    monkeypatch.setenv("PAPERKB_PAGER", f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {shlex.quote(str(saved))}")
    return saved


def test_a_long_table_on_a_terminal_goes_through_the_pager(monkeypatch, tmp_path):
    saved = _recording_pager(monkeypatch, tmp_path)
    terminal = Terminal()
    with pager.paged("table", out=terminal, height=5) as out:
        assert pager.is_paging(out)
        out.write("".join(f"row {i}\n" for i in range(20)))
    assert terminal.getvalue() == ""
    assert saved.read_text() == "FRX|" + "".join(f"row {i}\n" for i in range(20))


def test_a_table_that_fits_is_written_as_it_is(monkeypatch, tmp_path):
    saved = _recording_pager(monkeypatch, tmp_path)
    terminal = Terminal()
    with pager.paged("table", out=terminal, height=50) as out:
        out.write("a\nb\n")
    assert terminal.getvalue() == "a\nb\n" and not saved.exists()


@pytest.mark.parametrize("fmt", ["tsv", "csv", "json", "jsonl"])
def test_machine_formats_are_never_paged(monkeypatch, tmp_path, fmt):
    _recording_pager(monkeypatch, tmp_path)
    terminal = Terminal()
    with pager.paged(fmt, out=terminal, height=1) as out:
        assert out is terminal


def test_piped_output_is_never_paged(monkeypatch, tmp_path):
    _recording_pager(monkeypatch, tmp_path)
    piped = io.StringIO()
    with pager.paged("table", out=piped, height=1) as out:
        assert out is piped


@pytest.mark.parametrize("value", ["", "cat", "  cat  "])
def test_an_empty_pager_or_cat_turns_paging_off(monkeypatch, value):
    monkeypatch.setenv("PAGER", value)
    assert pager.pager_command() is None


def test_no_pager_option_and_paperkb_pager_first(monkeypatch):
    monkeypatch.setenv("PAGER", "more")
    monkeypatch.setenv("PAPERKB_PAGER", "less -S")
    assert pager.pager_command() == ["less", "-S"]
    pager.disable()
    assert pager.pager_command() is None


def test_a_pager_that_cannot_start_loses_nothing(monkeypatch):
    monkeypatch.setenv("PAPERKB_PAGER", "/nonexistent/pager")
    terminal = Terminal()
    with pager.paged("table", out=terminal, height=2) as out:
        out.write("1\n2\n3\n")
    assert terminal.getvalue() == "1\n2\n3\n"
