"""Issue 23, files: paperkb writes only inside the folder it was given, only files it
wrote itself, never through a link, and reads only regular files of a bounded size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from paperkb.errors import PaperkbError
from paperkb.files import inside, read_regular, replace_file, safe_component, write_new

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# ---- the one safe-path function --------------------------------------------------------
HOSTILE_NAMES = [
    "../../escape1",
    "/abs/escape",
    "..",
    ".",
    ".env",
    "a/../../b",
    "C:\\win\\x",
    "nul",
    "CON.txt",
    "\x00zero",
    "x" * 400,
    "é" * 300,
    " .. ",
    "-",
    "a\nb",
    "#^[]|",
    "~/x",
    ".obsidian",
]


@pytest.mark.parametrize("text", HOSTILE_NAMES)
def test_safe_component_is_one_harmless_component(text):
    name = safe_component(text, "fallback")
    assert name and "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".")
    assert len(name.encode()) <= 200 and name == name.strip()
    assert Path(name).name == name


def test_write_new_stays_inside_and_never_follows_links(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    (root / "link.md").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_new(root, root / "link.md", "x")
    (root / "sub").symlink_to(tmp_path)  # a folder link that leaves the root
    with pytest.raises(PaperkbError, match="outside"):
        write_new(root, root / "sub" / "new.md", "x")
    with pytest.raises(PaperkbError, match="outside"):
        write_new(root, root / ".." / "new.md", "x")
    assert victim.read_text() == "mine" and not (tmp_path / "new.md").exists()


def test_replace_file_replaces_a_planted_link_not_its_target(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    (root / "page.html").symlink_to(victim)
    replace_file(root, root / "page.html", "new")
    assert victim.read_text() == "mine"
    assert not (root / "page.html").is_symlink() and (root / "page.html").read_text() == "new"
    assert [p.name for p in root.iterdir()] == ["page.html"]  # no temporary left behind


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_regular_refuses_devices_fifos_and_huge_files(tmp_path):
    fifo = tmp_path / "fifo.bib"
    os.mkfifo(fifo)
    with pytest.raises(PaperkbError, match="not a regular file"):
        read_regular(fifo)
    with pytest.raises(PaperkbError, match="not a regular file"):
        read_regular("/dev/zero")
    big = tmp_path / "big.bib"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(PaperkbError, match="over the 1,000-byte limit"):
        read_regular(big, 1000)
    assert read_regular(big, 2000) == b"x" * 2000
    assert inside(tmp_path, "big.bib") == big.resolve()


# ---- 1. import bibtex ------------------------------------------------------------------
ESCAPES = (
    "@article{../../escape1, year={2020}}\n@article{/tmp/h23-abs-escape, year={2021}}\n"
    "@article{..\\\\..\\\\win, year={2022}}\n@article{.env, year={2022}}\n"
    "@article{ok1, title={../../Title Escape: a/b}, year={2023}}\n"
)


def test_import_bibtex_never_writes_outside_the_vault(tmp_path):
    vault = tmp_path / "deep" / "vault"
    vault.mkdir(parents=True)
    (vault / "A.md").write_text("# A\n")
    bib = tmp_path / "lib.bib"
    bib.write_text(ESCAPES)
    before = tree(tmp_path)
    result = cli("--vault", str(vault), "import", "bibtex", str(bib))
    assert result.exit_code == 0, result.output
    added = {p for p in tree(tmp_path) - before if not p.startswith("deep/vault/.paperkb")}
    assert added and all(p.startswith("deep/vault/") and p.count("/") == 2 for p in added), added
    assert not any(Path(p).name.startswith(".") for p in added)
    assert not Path("/tmp/h23-abs-escape.md").exists()
    assert "deep/vault/escape1.md" in added and "deep/vault/Title Escape - a-b.md" in added


def test_import_bibtex_into_a_linked_folder_outside_is_refused(tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (vault / "inbox").symlink_to(elsewhere)
    bib = tmp_path / "lib.bib"
    bib.write_text("@article{k1, title={T}, year={2020}}\n")
    result = cli("--vault", str(vault), "import", "bibtex", str(bib), "--folder", "inbox")
    assert result.exit_code != 0 and not any(elsewhere.iterdir())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_import_bibtex_reads_only_regular_files(tmp_path, source):
    vault = tmp_path / "vault"
    vault.mkdir()
    if source == "fifo":
        source = str(tmp_path / "lib.bib")
        os.mkfifo(source)
    result = cli("--vault", str(vault), "import", "bibtex", source)
    assert result.exit_code == 1 and "not a regular file" in result.output
    assert "Traceback" not in result.output
