"""Imported notes follow the vault's own template (.paperkb/templates/paper.md, Jinja2 in
Jinja's immutable sandbox), else the seed's layout; `paperkb init --template` writes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from vaultkit import write

from kb.parse import parse_file, parse_note
from kb.publish.bibtex import import_bibtex, parse_bibtex
from kb.publish.notetemplate import DEFAULT_TEMPLATE, TEMPLATE_PATH, NoteTemplate, TemplateError
from kb.vault import Vault

ROOT = Path(__file__).resolve().parents[2]
BIB = r"""@article{leeDeep2021,
  title = {Deep Nets: a "Study" --- with [[links]] and # marks},
  author = {Lee, Ann and M\"uller, Bo},
  journal = {Journal of Things}, year = {2021}, volume = {3},
  keywords = {graphs, nets}
}
"""

MY_TEMPLATE = """---
title: {{ title | yaml }}
citekey: {{ citekey | yaml }}
authors: {{ authors | map(attribute="family") | list | yaml }}
tags: [paper, imported]
---
# {{ title | oneline }}
{% for a in authors %}- {{ a.given }} / {{ a.family }}
{% endfor %}Venue: {{ venue }} ({{ properties.volume }}), {{ keywords | map("hashtag") | join(" ") }}
"""


def test_the_users_template_is_used(tmp_path):
    root = write(tmp_path / "vault", {TEMPLATE_PATH: MY_TEMPLATE})
    bib = write(tmp_path, {"lib.bib": BIB}) / "lib.bib"
    report = import_bibtex(Vault(root), bib)
    assert len(report.created) == 1
    text = (root / report.created[0]).read_text(encoding="utf-8")
    assert text.splitlines()[1:4] == [
        "title: 'Deep Nets: a \"Study\" — with [[links]] and # marks'",
        "citekey: leeDeep2021",
        "authors: [Lee, Müller]",
    ]
    assert "- Ann / Lee\n- Bo / Müller\nVenue: Journal of Things (3), #graphs #nets" in text
    note = parse_file(root, report.created[0])
    assert note.citekey == "leeDeep2021" and note.title.startswith("Deep Nets") and "imported" in note.tags


def test_default_template_is_the_seeds_layout(seed_text):
    entry = parse_bibtex(BIB)[0][0]
    from kb.publish.bibtex import note_text

    text = note_text(entry, today="2026-12-07")
    note = parse_note(text, "x.md")
    seed = parse_note(seed_text, "seed.md")
    # the same frontmatter keys as the seed (and then the entry's other fields), the same callouts
    assert list(note.frontmatter)[:9] == [
        "tags",
        "aliases",
        "citekey",
        "year",
        "name",
        "authors",
        "publication",
        "type",
        "DOI",
    ]
    assert set(seed.frontmatter) <= set(note.frontmatter)
    seed_kinds = [(c.type, c.title) for c in seed.callouts if c.type != "todo"]  # the seed adds one todo
    assert [(c.type, c.title) for c in note.callouts] == seed_kinds
    seed_headings = [(h.level, h.text) for h in seed.headings]
    seed_headings[1] = (2, note.headings[1].text)  # the paper's title
    assert [(h.level, h.text) for h in note.headings] == seed_headings


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{ title.__class__.__mro__ }}", "access to attribute '__class__'"),
        ("{{ fields.clear() }}", "clear"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "more than 100000 steps"),
        ("---\nname: {{ title }}\n---\n", "not valid YAML"),
        ("{{ nosuchvariable }}", "'nosuchvariable' is undefined"),
        ("{% if %}", "paper.md:1:"),
    ],
)
def test_hostile_or_broken_templates_fail_in_one_line(tmp_path, template, message):
    root = write(tmp_path / "vault", {TEMPLATE_PATH: template})
    entry = parse_bibtex(BIB)[0][0]
    from kb.publish.bibtex import item_context

    with pytest.raises(TemplateError, match=None) as info:
        NoteTemplate.for_vault(root).render(item_context(entry))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(".paperkb/templates/paper.md")


def test_template_error_in_the_cli_and_init_template(tmp_path):
    root = write(tmp_path / "vault", {".paperkb/keep": ""})
    init = subprocess.run(
        [sys.executable, "-m", "cli.app", "init", str(root), "--template"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert init.returncode == 0, init.stderr
    written = root / TEMPLATE_PATH
    assert written.read_text(encoding="utf-8") == DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    written.write_text("{{ title.__class__ }}", encoding="utf-8")  # the user's edit is never overwritten
    again = subprocess.run(
        [sys.executable, "-m", "cli.app", "init", str(root), "--template"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert again.returncode == 0 and "kept the template already at" in again.stdout
    assert written.read_text(encoding="utf-8") == "{{ title.__class__ }}"
    bib = write(tmp_path, {"lib.bib": BIB}) / "lib.bib"
    failed = subprocess.run(
        [sys.executable, "-m", "cli.app", "--vault", str(root), "import", "bibtex", str(bib)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert failed.returncode == 1 and failed.stderr.startswith("error: .paperkb/templates/paper.md")
    assert "Traceback" not in failed.stderr and list(root.glob("*.md")) == []
