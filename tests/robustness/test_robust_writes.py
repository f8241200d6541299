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


# ---- 3, 4. exports replace only their own files, never through a link ------------------
def small_vault(root: Path) -> Path:
    from vaultkit import write

    return write(
        root,
        {
            "A.md": "---\ntags: [paper]\ncitekey: a2020\n---\n# A\n\nSee [[B]] and ![[pic.png]].\n",
            "B.md": "# B\n\nBack to [[A]].\n",
            "pic.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 16,
            "sub/Inside.md": "# Inside\n",
        },
    )


@pytest.fixture
def vault(tmp_path):
    return small_vault(tmp_path / "vault")


@pytest.mark.parametrize("kind", ["site", "markdown"])
def test_force_never_replaces_a_users_files(tmp_path, vault, kind):
    out = tmp_path / "out"
    mine = {"index.html": "my page", "assets/site.css": "my css", "A.md": "my A", "pic.png": "my pic"}
    for rel, text in mine.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    result = cli("--vault", str(vault), "export", kind, str(out))
    assert result.exit_code == 1 and "not empty" in result.output
    result = cli("--vault", str(vault), "export", kind, str(out), "--force")
    assert result.exit_code == 1 and "left as they are" in result.output, result.output
    assert {rel: (out / rel).read_text() for rel in mine} == mine
    again = cli("--vault", str(vault), "export", kind, str(out), "--force")  # nor on a second run
    assert again.exit_code == 1 and {rel: (out / rel).read_text() for rel in mine} == mine


@pytest.mark.parametrize("kind", ["site", "markdown"])
def test_reexport_keeps_files_added_or_edited_since(tmp_path, vault, kind):
    out = tmp_path / "out"
    assert cli("--vault", str(vault), "export", kind, str(out)).exit_code == 0
    page = next(p for p in out.rglob("*") if p.is_file() and p.suffix in (".md", ".html") and "B" in p.name.upper())
    page.write_text("edited by hand")
    (out / "New.md").write_text("added by the user")
    (vault / "B.md").write_text("# B\n\nChanged, back to [[A]].\n")
    (vault / "A.md").unlink()  # its page is stale: removed only if untouched
    result = cli("--vault", str(vault), "export", kind, str(out))
    assert result.exit_code == 1, result.output
    assert page.read_text() == "edited by hand" and (out / "New.md").read_text() == "added by the user"
    page.unlink()
    assert cli("--vault", str(vault), "export", kind, str(out)).exit_code == 0
    assert "Changed" in page.read_text()
    assert not [p for p in out.rglob("*") if p.suffix in (".md", ".html") and p.name.lower().startswith("a")]


@pytest.mark.parametrize("kind", ["site", "markdown"])
def test_no_export_into_the_vault(tmp_path, vault, kind):
    before = {p: p.read_bytes() for p in vault.rglob("*.md")}
    for out in (vault, vault / "sub", vault / "new-folder", vault.parent):
        result = cli("--vault", str(vault), "export", kind, str(out), "--force")
        assert result.exit_code == 2 and "vault" in result.output, (out, result.output)
    assert {p: p.read_bytes() for p in vault.rglob("*.md")} == before
    assert not (vault / "new-folder").exists()


@pytest.mark.parametrize("kind", ["site", "markdown"])
def test_links_planted_in_the_output_are_never_written_through(tmp_path, vault, kind):
    out = tmp_path / "out"
    assert cli("--vault", str(vault), "export", kind, str(out)).exit_code == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    manifest = out / (".paperkb-site.json" if kind == "site" else ".paperkb-markdown.json")
    written = [p for p in out.rglob("*") if p.is_file() and p != manifest and not p.name.startswith(".")]
    for p in written:  # a temporary's old name, and every page, made into a link to the victim
        Path(str(p) + ".tmp").symlink_to(victim)
        p.unlink()
        p.symlink_to(victim)
    (vault / "B.md").write_text("# B\n\nChanged.\n")
    cli("--vault", str(vault), "export", kind, str(out))
    assert victim.read_text() == "precious"
    manifest.unlink()
    manifest.symlink_to(victim)
    result = cli("--vault", str(vault), "export", kind, str(out), "--force")
    assert result.exit_code == 1 and "is a link" in result.output
    assert victim.read_text() == "precious" and manifest.is_symlink()


# ---- 2, 6. the site publishes only what a reading site needs, fetches nothing -------------
HOSTILE_LINKS = """# Links

[h](evil.html) [s](evil.svg) [e](.env) [db](.paperkb/runs.db) [o](.obsidian/app.json) [x](../outside.png)
![[evil.html]] ![[.env]] ![shown](evil.svg) ![[evil.svg]] ![[pic.png]] [pdf](paper.pdf) [d](data.csv)
![p](https://tracker.invalid/p.png) ![q](//tracker.invalid/q.png)

```dataview
LIST FROM "Links"
```
"""


def hostile_links_vault(root: Path) -> Path:
    from vaultkit import write

    vault = write(
        root,
        {
            "Links.md": HOSTILE_LINKS,
            "evil.html": "<script>alert(1)</script>",
            "evil.svg": '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            ".env": "SECRET=1",
            ".obsidian/app.json": "{}",
            "pic.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 16,
            "paper.pdf": b"%PDF-1.4\n",
            "data.csv": "a,b\n1,2\n",
        },
    )
    (vault / ".paperkb").mkdir(exist_ok=True)
    (vault / ".paperkb" / "runs.db").write_bytes(b"SQLite format 3\x00 host=secret")
    (root.parent / "outside.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return vault


def test_site_publishes_only_allowed_attachments(tmp_path):
    from kb.publish.site import export_site, page_name
    from kb.vault import Vault

    vault = hostile_links_vault(tmp_path / "vault")
    out = tmp_path / "site"
    export_site(Vault(vault), out, workers=1, generated="x")
    published = sorted(p.name.split("-", 1)[1] for p in (out / "files").iterdir())
    assert published == ["data.csv", "evil.svg", "paper.pdf", "pic.png"]
    page = (out / "notes" / page_name("Links.md")).read_text()
    svg_uses = [line for line in page.split("<") if "evil.svg" in line and ("href=" in line or "src=" in line)]
    assert svg_uses and all(u.startswith("img ") for u in svg_uses), svg_uses  # an <img>, never a link
    assert "tracker.invalid" in page and 'src="https://tracker.invalid' not in page and 'src="//' not in page
    assert '<a class="remote-image" href="https://tracker.invalid/p.png"' in page
    assert "img-src 'self' data:" in page


def test_markdown_export_copies_no_dot_files_or_html(tmp_path):
    from kb.publish.markdown import export_markdown
    from kb.vault import Vault

    vault = hostile_links_vault(tmp_path / "vault")
    out = tmp_path / "plain"
    export_markdown(Vault(vault), out)
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".md")
    assert copied == [".paperkb-markdown.json", "evil.svg", "pic.png"]


# ---- exports never come back as notes ------------------------------------------------------
def test_whatever_paperkb_exports_is_skipped_by_the_index_wherever_it_lands(tmp_path, bundled_vault):
    """The README tour run from inside the vault: a summary written into it, and Markdown
    exports (with and without frontmatter) and a site copied into it, add no note name, no
    paper, no citation and no warning."""
    import shutil

    vault = tmp_path / "notes"
    shutil.copytree(bundled_vault, vault, ignore=shutil.ignore_patterns(".paperkb"))

    def state() -> tuple:
        from kb.vault import Vault

        with Vault(vault) as v:
            names = cli("--vault", str(vault), "show", "vaswaniAttentionAllYou2017")
            papers = cli("--vault", str(vault), "query", "LIST FROM #paper", "-f", "tsv").stdout
            graph = cli("--vault", str(vault), "graph", "--format", "json").stdout
            return names.exit_code, papers, len(graph), sorted((p.path, p.message) for p in v.problems())

    before = state()
    assert before[0] == 0
    for args in (
        ["export", "markdown", str(tmp_path / "plain")],
        ["export", "markdown", str(tmp_path / "bare"), "--no-frontmatter"],
        ["export", "site", str(tmp_path / "site")],
        ["export", "summary", "-o", str(vault / "reading-summary.md")],
    ):
        result = cli("--vault", str(vault), *args)
        assert result.exit_code == 0, (args, result.output)
    shutil.copytree(tmp_path / "plain", vault / "plain")  # a user moves the exports into the vault
    shutil.copytree(tmp_path / "site", vault / "site")
    (vault / "loose").mkdir()
    for md in (tmp_path / "bare").rglob("*.md"):  # and loose copies, without their manifest
        shutil.copy(md, vault / "loose" / md.name)
    for md in list((tmp_path / "plain").rglob("*.md"))[:3]:
        shutil.copy(md, vault / "loose" / ("fm-" + md.name))
    assert state() == before
