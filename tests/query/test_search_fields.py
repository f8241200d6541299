"""Search fields as a user types them: author(s), title, alias/citekey, heading, body, tag, year."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.search import KNOWN_FIELDS, SearchError, prepare_query, search, split_filters
from kb.vault import Vault


@pytest.fixture
def vault(tmp_path):
    notes = {
        "Chinchilla.md": "---\ntags: [paper, scaling/compute]\nyear: 2022\nauthors: Jordan Hoffmann, Sebastian "
        "Borgeaud\naliases: [hoffmannTrainingComputeOptimal2022]\n---\n# Training compute-optimal models\n\n"
        "Tokens and parameters should grow equally with compute.\n",
        "Scaling.md": "---\ntags: [paper]\nyear: 2020\nauthors: Jared Kaplan, Sam McCandlish\n---\n# Scaling laws\n\n"
        "Hoffmann later revised these laws.\n## Related Work\nCompute budgets.\n",
        "LoRA.md": "---\ntags: [paper, finetuning]\nyear: 2021\nauthors: Edward Hu\n---\n# LoRA\n\nLow-rank adapters.\n",
    }
    for name, text in notes.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return Vault(tmp_path)


def paths(hits):
    return sorted(h.path for h in hits)


def test_author_title_citekey_heading_body(vault):
    assert paths(search(vault, "author:Hoffmann")) == ["Chinchilla.md"]  # not the body that names him
    assert paths(search(vault, "authors:hoffmann")) == ["Chinchilla.md"]
    assert paths(search(vault, 'author:"Jared Kaplan"')) == ["Scaling.md"]
    assert paths(search(vault, "body:hoffmann")) == ["Scaling.md"]
    assert paths(search(vault, "text:hoffmann")) == ["Scaling.md"]
    assert paths(search(vault, "title:scaling")) == ["Scaling.md"]
    assert paths(search(vault, "citekey:hoffmannTrainingComputeOptimal2022")) == ["Chinchilla.md"]
    assert paths(search(vault, "heading:related")) == ["Scaling.md"]
    assert paths(search(vault, "{title author}:kaplan")) == ["Scaling.md"]
    assert paths(search(vault, "Title:(scaling OR lora)")) == ["LoRA.md", "Scaling.md"]


def test_tag_and_year_filter_the_whole_search(vault):
    assert paths(search(vault, "compute tag:scaling")) == ["Chinchilla.md"]
    assert paths(search(vault, "compute AND year:2020")) == ["Scaling.md"]
    assert paths(search(vault, "year:2021-2022 paper OR compute")) == ["Chinchilla.md"]
    assert paths(search(vault, "compute year:2020", year="2022")) == []  # both hold
    assert split_filters("a tag:x AND year:2020- b") == ("a b", ["x"], ["2020-"])


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("author:Hoffmann OR tag:paper", "filters the whole search"),
        ("(tag:paper)", "filters the whole search"),
        ("compute year:", "needs a value"),
        ("compute year:20x", "expected a year"),
        ("author:", "followed by nothing"),
    ],
)
def test_bad_filters_are_one_line_errors(vault, query, why):
    with pytest.raises(SearchError, match=why):
        search(vault, query)


def test_unknown_field_lists_the_known_ones(vault):
    with pytest.raises(SearchError) as info:
        search(vault, "venue:neurips")
    message = str(info.value)
    assert "unknown field 'venue'" in message and KNOWN_FIELDS in message and "\n" not in message
    result = CliRunner().invoke(app, ["--vault", str(vault.root), "search", "author:Hoffmann", "--format", "tsv"])
    assert result.exit_code == 0 and result.stdout.splitlines()[1].startswith("Chinchilla.md\t2022")
    result = CliRunner().invoke(app, ["--vault", str(vault.root), "search", "publisher:x"])
    assert result.exit_code == 1 and "no such column" not in result.stderr
    assert result.stderr.startswith("error: bad search query 'publisher:x': unknown field 'publisher' (known: title")
    assert prepare_query("author:x-y") == 'authors:"x-y"'
