"""BibTeX and CSL-JSON out, new notes in; import then export gives the same entries back."""

from __future__ import annotations

import json
import subprocess
import sys

from exportkit import paper
from vaultkit import write

from kb.parse import parse_file
from kb.publish.bibtex import entries_for, import_bibtex, parse_bibtex, to_bibtex, to_csl_json
from kb.vault import Vault

BIB = r"""
@article{leeDeepNets2021,
  title = {Deep Nets \& Their {Friends}},
  author = {Lee, Ann and Chen, Bo and Okafor, Chidi},
  journal = {Journal of Things},
  year = {2021},
  doi = {10.1234/jot.2021.7},
  url = {https://example.org/deep-nets},
  abstract = {We study nets.
    On two lines.}
}
@inproceedings{kimFastAttention2022,
  title = {Fast Attention: "Quoted" words, colons: and more},
  author = {Kim, Dae and Ng, Eve},
  booktitle = {Proceedings of Things},
  year = 2022
}
@misc{existingKey2020,
  title = {Already Here},
  author = {Old, Olive},
  year = {2020}
}
@article{broken,
  title = {Unclosed
"""


def _fields(entries):
    return {e.key: (e.entry_type, e.fields) for e in entries}


def test_import_then_export_round_trip(tmp_path):
    root = write(tmp_path / "vault", {"Already Here.md": paper("Already Here", "existingKey2020", year=2020)})
    before = (root / "Already Here.md").read_bytes()
    bib = write(tmp_path, {"lib.bib": BIB}) / "lib.bib"
    report = import_bibtex(Vault(root), bib, folder="papers", today="2026-12-01")
    assert sorted(report.created) == ["papers/Deep Nets & Their Friends.md",
                                      "papers/Fast Attention - Quoted words, colons - and more.md"]
    assert report.skipped == [("existingKey2020", "a note has this citekey, DOI or arXiv id")]
    assert len(report.warnings) == 1 and "lib.bib" in report.warnings[0]
    assert (root / "Already Here.md").read_bytes() == before  # never touched
    # the new note follows the seed's template
    note = parse_file(root, "papers/Deep Nets & Their Friends.md")
    assert not [p for p in note.problems if p.severity == "error"]
    assert note.citekey == "leeDeepNets2021" and "paper" in note.tags and note.year == 2021
    assert note.authors == ["Ann Lee", "Bo Chen", "Chidi Okafor"]
    assert [c.title for c in note.callouts][:2] == ["", "Highlights:"]
    assert len(note.questions) == 5 and not any(q.answered for q in note.questions)
    # export gives back the entries (the fields the template keeps)
    original = _fields(parse_bibtex(BIB)[0])
    vault = Vault(root)
    exported_text = to_bibtex(entries_for(vault, query='LIST FROM "papers"'))
    again = _fields(parse_bibtex(exported_text)[0])
    for key in ("leeDeepNets2021", "kimFastAttention2022"):
        assert again[key] == original[key], key
    # importing again creates nothing
    assert import_bibtex(Vault(root), bib, folder="papers").created == []


def test_csl_json_items(tmp_path):
    root = write(tmp_path / "vault", {"A.md": paper("Paper A", "leeA2020", extra="DOI: 10.1/a\njournal: J\ntype: journalArticle\n"),
                                      "N.md": "not a paper"})
    items = to_csl_json(entries_for(Vault(root)))
    assert items == [{"id": "leeA2020", "type": "article-journal", "title": "Paper A",
                      "author": [{"family": "Lee", "given": "Ann"}, {"family": "Chen", "given": "Bo"}],
                      "issued": {"date-parts": [[2020]]}, "DOI": "10.1/a", "container-title": "J"}]


def test_cli_export_and_import(tmp_path, bundled_vault):
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(bundled_vault)]
    bib = subprocess.run(cmd + ["export", "bibtex"], capture_output=True, text=True, timeout=60)
    assert bib.returncode == 0, bib.stderr
    keys = [e.key for e in parse_bibtex(bib.stdout)[0]]
    assert sorted(keys) == ["daoFlashAttentionFastMemoryEfficient2022", "touvronLlamaOpenFoundation2023",
                            "vaswaniAttentionAllYou2017"]
    csl = subprocess.run(cmd + ["export", "csl-json", "--query", "LIST FROM #paper WHERE year = 2017"],
                         capture_output=True, text=True, timeout=60)
    assert [i["id"] for i in json.loads(csl.stdout)] == ["vaswaniAttentionAllYou2017"]
    missing = subprocess.run(cmd + ["import", "bibtex", str(tmp_path / "nope.bib")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("error: cannot read") and "Traceback" not in missing.stderr
