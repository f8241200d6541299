"""Zotero in: a library built from Zotero's own schema (tests/data/zotero) imports as notes
in the seed's template, with citekeys, collections, the PDF and its annotations; filters,
dry runs, re-runs and --update; a running Zotero (holding its lock) is not disturbed."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from vaultkit import write
from zoterokit import Library, better_bibtex_database, multipart_date

from kb.parse import parse_file
from kb.publish.bibtex import import_bibtex
from kb.publish.notetemplate import TemplateError
from kb.publish.zotero import ZoteroError, import_zotero, read_library
from kb.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
ABSTRACT = (
    "The dominant sequence transduction models are based on complex recurrent or convolutional neural "
    "networks.\nWe propose a new simple network architecture, the Transformer."
)


def _library(lib: Library):
    """Fill the empty library of the ``zotero_library`` fixture with three papers, collections,
    a PDF and annotations; returns it and the items' keys."""
    ml = lib.collection("Machine Learning")
    transformers = lib.collection("Transformers", parent=ml)
    reading = lib.collection("To read")
    attention_id, attention_key = lib.item(
        "journalArticle",
        {
            "title": "Attention Is All You Need",
            "abstractNote": ABSTRACT,
            "publicationTitle": "Advances in Neural Information Processing Systems",
            "volume": "30",
            "pages": "5998-6008",
            "date": multipart_date("2017", "2017-00-00"),
            "DOI": "10.5555/3295222.3295349",
            "url": "https://papers.nips.cc/paper/7181-attention-is-all-you-need",
            "accessDate": "2026-11-01 08:00:00",
            "language": "en",
        },
        creators=[("author", "Ashish", "Vaswani"), ("author", "Noam", "Shazeer"), ("author", "Łukasz", "Kaiser")],
        tags=["Computer Science - Computation and Language", "transformers"],
        parent_collections=[transformers],
    )
    att_id, att_key = lib.pdf(attention_id, "Vaswani et al. - 2017 - Attention Is All You Need.pdf")
    lib.annotation(
        att_id,
        text="multi-head attention allows the model to jointly attend",
        comment="the key idea",
        color="#ffd400",
        page="4",
        position=10,
    )
    lib.annotation(
        att_id, text="We trained on the WMT 2014 <English-German> dataset", color="#ff6666", page="7", kind=5
    )
    chinchilla_id, chinchilla_key = lib.item(
        "preprint",
        {
            "title": "Training Compute-Optimal Large Language Models",
            "archiveID": "arXiv:2203.15556",
            "repository": "arXiv",
            "date": multipart_date("2022-03-29", "2022-03-29"),
            "DOI": "10.48550/arXiv.2203.15556",
            "citationKey": "hoffmann2022chinchilla",
        },
        creators=[
            ("author", "Jordan", "Hoffmann"),
            ("author", "Diego", "de Las Casas"),
            ("author", "George", "van den Driessche"),
            ("author", None, "Google DeepMind"),
        ],
        tags=["scaling"],
        parent_collections=[reading],
        added="2026-11-20 12:00:00",
    )
    flash_id, flash_key = lib.item(
        "conferencePaper",
        {
            "title": "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness",
            "proceedingsTitle": "Advances in Neural Information Processing Systems",
            "date": multipart_date("2022", "2022-00-00"),
        },
        creators=[("author", "Tri", "Dao")],
        parent_collections=[transformers],
    )
    trashed_id, _ = lib.item("journalArticle", {"title": "A Trashed Paper"}, creators=[("author", "Ann", "Lee")])
    lib.trash(trashed_id)
    lib.item("note", {})  # a standalone note: not a paper
    better_bibtex_database(lib.data_dir, [(flash_id, flash_key, "dao2022flash")])
    return lib, {
        "attention": (attention_id, attention_key, att_id, att_key),
        "chinchilla": chinchilla_key,
        "flash": flash_key,
    }


def test_import_notes_from_a_zotero_library(tmp_path, zotero_library):
    lib, keys = _library(zotero_library)
    data = lib.data_dir
    lib.db.close()
    root = write(tmp_path / "vault", {".paperkb/keep": ""})
    sqlite_before = hashlib.sha256((data / "zotero.sqlite").read_bytes()).hexdigest()
    # Zotero is running: it holds an exclusive lock on its database
    zotero = sqlite3.connect(data / "zotero.sqlite")
    zotero.execute("BEGIN EXCLUSIVE")
    try:
        report = import_zotero(Vault(root), data, folder="papers", today="2026-12-07")
    finally:
        zotero.rollback()
        zotero.close()
    assert hashlib.sha256((data / "zotero.sqlite").read_bytes()).hexdigest() == sqlite_before
    assert sorted(report.created) == [
        "papers/Attention Is All You Need.md",
        "papers/FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md",
        "papers/Training Compute-Optimal Large Language Models.md",
    ]
    attention = parse_file(root, "papers/Attention Is All You Need.md")
    # no citationKey, no Better BibTeX key: Better BibTeX's default form, as the bundled vault's
    assert attention.citekey == "vaswaniAttentionAllYou2017" and attention.year == 2017
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer", "Łukasz Kaiser"]
    fm = attention.frontmatter
    assert (fm["type"], fm["publication"], fm["DOI"]) == (
        "journalArticle",
        "Advances in Neural Information Processing Systems",
        "10.5555/3295222.3295349",
    )
    assert (fm["volume"], fm["pages"], fm["urldate"], fm["language"]) == ("30", "5998-6008", "2026-11-01", "en")
    assert fm["keywords"] == ["Computer Science - Computation and Language", "transformers"]
    assert fm["collections"] == ["Machine Learning/Transformers"]
    text = (root / "papers/Attention Is All You Need.md").read_text(encoding="utf-8")
    _, attention_key, _, att_key = keys["attention"]
    pdf = data / "storage" / att_key / "Vaswani et al. - 2017 - Attention Is All You Need.pdf"
    assert f"[local](zotero://select/library/items/{attention_key})" in text
    assert f"[pdf](<{pdf.as_uri()}>)" in text
    assert "> - **Abstract:** The dominant sequence transduction models are based on complex recurrent" in text
    assert "#Computer-Science---Computation-and-Language, #transformers" in text
    highlights = [line for line in text.splitlines() if line.startswith(">- ")]
    assert highlights[0] == (
        '>- <mark style="background: #ffd400">multi-head attention allows the model to jointly '
        f"attend</mark> the key idea ([p. 4](zotero://open-pdf/library/items/{att_key}?page=4"
        f"&annotation={highlights[0].split('annotation=')[1][:-2]}))"
    )
    assert (
        '<mark style="background: #ff6666">We trained on the WMT 2014 &lt;English-German&gt; dataset</mark>'
        in (highlights[1])
    )
    assert [h for h in attention.highlights if "multi-head" in h]
    assert len(attention.questions) == 5 and not [p for p in attention.problems if p.severity == "error"]
    # Zotero 7's citation-key field, particles and an institution as Zotero stores them
    chinchilla = parse_file(root, "papers/Training Compute-Optimal Large Language Models.md")
    assert chinchilla.citekey == "hoffmann2022chinchilla" and chinchilla.frontmatter["type"] == "preprint"
    assert chinchilla.authors == [
        "Jordan Hoffmann",
        "Diego de Las Casas",
        "George van den Driessche",
        "{Google DeepMind}",
    ]
    assert chinchilla.frontmatter["eprint"] == "2203.15556" and chinchilla.frontmatter["collections"] == ["To read"]
    # Better BibTeX's database
    flash = parse_file(root, next(p for p in report.created if "FlashAttention" in p))
    assert flash.citekey == "dao2022flash" and flash.frontmatter["type"] == "conferencePaper"
    # a second run creates nothing
    again = import_zotero(Vault(root), data, folder="papers")
    assert again.created == [] and len(again.skipped) == 3


def test_filters_dry_run_matching_and_update(tmp_path, zotero_library):
    lib, keys = _library(zotero_library)
    data = lib.data_dir
    # a note of the user's own for Chinchilla (matched by its arXiv id, not by citekey)
    root = write(
        tmp_path / "vault",
        {"chinchilla.md": "---\ntags: [paper]\nurl: https://arxiv.org/abs/2203.15556v2\n---\n# my notes\n"},
    )
    vault = Vault(root)
    assert import_zotero(vault, data, collection="Machine Learning", dry_run=True).created == [
        "Attention Is All You Need.md",
        "FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md",
    ]
    assert not (root / "Attention Is All You Need.md").exists()  # a dry run writes nothing
    assert not (root / ".paperkb" / "zotero-imports.json").exists()
    assert import_zotero(vault, data, tag="TRANSFORMERS", dry_run=True).created == ["Attention Is All You Need.md"]
    assert import_zotero(vault, data, since="2026-11-15", dry_run=True).created == []  # chinchilla has a note
    with pytest.raises(ZoteroError, match="no collection 'Nope'"):
        import_zotero(vault, data, collection="Nope")

    report = import_zotero(vault, data, today="2026-12-07")
    assert sorted(report.created) == [
        "Attention Is All You Need.md",
        "FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md",
    ]
    assert ("hoffmann2022chinchilla", "has a note") in report.skipped
    # the user reads on: a new annotation in Zotero; the user edits the FlashAttention note
    att_id = keys["attention"][2]
    lib.annotation(
        att_id,
        text="Attention Is All You Need, a new highlight",
        color="#5fb236",
        page="9",
        position=99,
        modified="2026-12-05 08:00:00",
    )
    lib.item("journalArticle", {"title": "Unrelated"}, creators=[("author", "Bo", "Chen")])  # not in the filter
    lib.db.close()
    flash_rel = next(p for p in report.created if "FlashAttention" in p)
    flash_path = root / flash_rel
    flash_path.write_text(flash_path.read_text(encoding="utf-8") + "\nMy own thoughts.\n", encoding="utf-8")
    flash_before = flash_path.read_bytes()
    attention_before = (root / "Attention Is All You Need.md").read_text(encoding="utf-8")

    # --since: the item itself is older, its new annotation is not
    assert import_zotero(Vault(root), data, since="2026-12-01", update=True, dry_run=True).updated == [
        "Attention Is All You Need.md"
    ]
    updated = import_zotero(Vault(root), data, collection="Transformers", update=True, today="2026-12-09")
    assert updated.updated == ["Attention Is All You Need.md"] and updated.created == []
    assert ("dao2022flash", f"{flash_rel} was changed since paperkb wrote it: left alone") in updated.skipped
    assert flash_path.read_bytes() == flash_before  # the user's text is untouched
    attention_after = (root / "Attention Is All You Need.md").read_text(encoding="utf-8")
    assert "a new highlight" in attention_after and "date of note: '2026-12-07'" in attention_after
    assert attention_after.replace(attention_after.split("\n>- ")[-1].split("\n")[0], "") != attention_before
    # nothing changed since: nothing to do
    assert import_zotero(Vault(root), data, collection="Transformers", update=True).updated == []


def test_better_bibtex_export_imports_to_the_same_note(tmp_path, zotero_library):
    """Better BibTeX's export of the Attention item (written in the form its BibTeX exporter
    gives) and the Zotero import make the same note, but for what only Zotero knows: the
    zotero://select link, collections and annotations."""
    lib, keys = _library(zotero_library)
    data = lib.data_dir
    lib.db.close()
    _, key, _, att_key = keys["attention"]
    pdf = data / "storage" / att_key / "Vaswani et al. - 2017 - Attention Is All You Need.pdf"
    bbt = (
        "@article{vaswaniAttentionAllYou2017,\n"
        "  title = {Attention Is All You Need},\n"
        "  author = {Vaswani, Ashish and Shazeer, Noam and Kaiser, {\\L}ukasz},\n"
        "  year = {2017},\n"
        "  journal = {Advances in Neural Information Processing Systems},\n"
        "  volume = {30},\n  pages = {5998--6008},\n"
        "  doi = {10.5555/3295222.3295349},\n"
        "  url = {https://papers.nips.cc/paper/7181-attention-is-all-you-need},\n"
        "  urldate = {2026-11-01},\n"
        "  abstract = {The dominant sequence transduction models are based on complex recurrent or convolutional"
        " neural networks.\nWe propose a new simple network architecture, the Transformer.},\n"
        "  language = {en},\n"
        "  keywords = {Computer Science - Computation and Language,transformers},\n"
        f"  file = {{Full Text PDF:{pdf}:application/pdf}}\n}}\n"
    )
    from_zotero = write(tmp_path / "a", {".paperkb/keep": ""})
    from_bib = write(tmp_path / "b", {".paperkb/keep": ""})
    import_zotero(Vault(from_zotero), data, tag="transformers", today="2026-12-07")
    bib = write(tmp_path, {"bbt.bib": bbt}) / "bbt.bib"
    assert import_bibtex(Vault(from_bib), bib, today="2026-12-07").created == ["Attention Is All You Need.md"]
    zotero_text = (from_zotero / "Attention Is All You Need.md").read_text(encoding="utf-8")
    bib_text = (from_bib / "Attention Is All You Need.md").read_text(encoding="utf-8")

    def without_zotero_only(text: str) -> list[str]:
        lines = [line.replace(f" [local](zotero://select/library/items/{key})", "") for line in text.splitlines()]
        return [line for line in lines if not line.startswith(("collections:", ">- ", ">-"))]

    assert without_zotero_only(zotero_text) == without_zotero_only(bib_text)
    assert f"[pdf](<{pdf.as_uri()}>)" in bib_text


def test_hostile_item_stays_inside_its_note(tmp_path, zotero_library):
    """Zotero data is untrusted: a title, abstract, tag or annotation cannot add properties,
    callouts, questions or links to the note, nor escape the vault with the file name."""
    lib = zotero_library
    data = lib.data_dir
    item_id, _ = lib.item(
        "journalArticle",
        {
            "title": "../../Evil\n---\nname: pwned\n]] [[Other]] <script>x</script>",
            "abstractNote": "Text\n>[!question]\n>Injected question?\n---\n# Heading",
            "date": multipart_date("2020", "2020-00-00"),
            "citationKey": "evil]]key|x",
        },
        creators=[("author", "Eve", "Mallory\nauthors: x")],
        tags=["a\nb: c", "#tag]]"],
    )
    att_id, _ = lib.pdf(item_id, "x.pdf")
    lib.annotation(att_id, text="<img src=x onerror=alert(1)>\n> [!claim] fake", comment="\n# not a heading", page="1")
    lib.db.close()
    root = write(tmp_path / "vault", {".paperkb/keep": ""})
    report = import_zotero(Vault(root), data, folder="papers", today="2026-12-07")
    assert len(report.created) == 1 and report.created[0].startswith("papers/")
    [path] = list((root / "papers").iterdir())
    assert path.parent == root / "papers"
    note = parse_file(root, report.created[0])
    assert not [p for p in note.problems if p.severity == "error"]
    assert note.frontmatter["name"].startswith("../../Evil") and "pwned" not in str(note.frontmatter.get("authors"))
    assert note.citekey == "evil]]key|x" and len(note.questions) == 5 and not note.claims
    body = path.read_text(encoding="utf-8").split("# Descriptions", 1)[1]
    assert "<img" not in body and "<script>" not in body  # HTML in the body arrives as text


def test_a_template_failing_halfway_keeps_the_record(tmp_path, zotero_library):
    """Notes written before a template fails on a later item are recorded for --update."""
    import json

    lib, _ = _library(zotero_library)
    data = lib.data_dir
    lib.db.close()
    template = (
        "---\nname: {{ title | yaml }}\ncitekey: {{ citekey | yaml }}\n---\n"
        "{% if item_type == 'preprint' %}{{ fields.nosuchfield }}{% endif %}\n"
    )
    root = write(tmp_path / "vault", {".paperkb/templates/paper.md": template})
    with pytest.raises(TemplateError, match="paper.md"):
        import_zotero(Vault(root), data)  # the second item (the preprint) fails
    state = json.loads((root / ".paperkb" / "zotero-imports.json").read_text(encoding="utf-8"))
    assert sorted(state["notes"]) == ["Attention Is All You Need.md"]
    (root / ".paperkb/templates/paper.md").write_text(template.replace("fields.nosuchfield", "arxiv"), encoding="utf-8")
    report = import_zotero(Vault(root), data)
    assert len(report.created) == 2 and "Attention Is All You Need.md" not in report.created
    state = json.loads((root / ".paperkb" / "zotero-imports.json").read_text(encoding="utf-8"))
    assert len(state["notes"]) == 3


def test_citekeys_from_extra_and_older_better_bibtex(tmp_path, zotero_library):
    """A key pinned in Extra (older Better BibTeX), the JSON store of Better BibTeX before its
    citationkey table, and generated keys that clash (a, b after the key, as BBT does)."""
    import json

    lib = zotero_library
    data = lib.data_dir
    lib.item(
        "journalArticle",
        {"title": "Pinned", "extra": "tex.x: y\nCitation Key: smith2020pinned"},
        creators=[("author", "Ann", "Smith")],
    )
    _, legacy_key = lib.item("journalArticle", {"title": "Legacy"}, creators=[("author", "Bo", "Chen")])
    for _ in range(2):
        lib.item(
            "journalArticle",
            {"title": "Same Title Here", "date": multipart_date("2020", "2020-00-00")},
            creators=[("author", "Cy", "Lee")],
        )
    lib.db.close()
    bbt = sqlite3.connect(data / "better-bibtex.sqlite")
    bbt.execute('CREATE TABLE "better-bibtex" (name TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL)')
    store = {
        "name": "citekey",
        "data": [{"itemID": 2, "itemKey": legacy_key, "libraryID": 1, "citekey": "chen2019legacy", "pinned": False}],
    }
    bbt.execute("INSERT INTO \"better-bibtex\" VALUES ('better-bibtex.citekey', ?)", (json.dumps(store),))
    bbt.commit()
    bbt.close()
    assert [i.citekey for i in read_library(data)] == [
        "smith2020pinned",
        "chen2019legacy",
        "leeSameTitleHere2020",
        "leeSameTitleHere2020a",
    ]


def test_bad_data_dirs_give_one_line(tmp_path):
    root = write(tmp_path / "vault", {".paperkb/keep": ""})
    with pytest.raises(ZoteroError, match="no Zotero database at"):
        import_zotero(Vault(root), tmp_path / "nothing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "zotero.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ZoteroError, match="cannot read it as an SQLite database|not a Zotero database"):
        read_library(tmp_path / "junk")
    other = sqlite3.connect(tmp_path / "other.sqlite")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    (tmp_path / "other").mkdir()
    (tmp_path / "other.sqlite").rename(tmp_path / "other" / "zotero.sqlite")
    with pytest.raises(ZoteroError, match="not a Zotero database"):
        read_library(tmp_path / "other")


def test_cli_import_zotero(tmp_path, zotero_library):
    lib, _ = _library(zotero_library)
    data = lib.data_dir
    lib.db.close()
    root = write(tmp_path / "vault", {".paperkb/keep": ""})
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(root), "import", "zotero"]
    dry = subprocess.run(
        cmd + [str(data), "--dry-run", "--collection", "Transformers"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "would create Attention Is All You Need.md",
        "would create FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md",
    ]
    assert list(root.glob("*.md")) == []
    missing = subprocess.run(cmd + [str(tmp_path / "nope")], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no Zotero database at")
    assert "Traceback" not in missing.stderr
    bad_since = subprocess.run(
        cmd + [str(data), "--since", "last week"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert bad_since.returncode == 2 and "--since 'last week'" in bad_since.stderr
