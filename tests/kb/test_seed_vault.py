"""The seed note as the only note of a vault: its links resolve as the issue states."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.app import app
from kb.vault import Vault


def _vault(tmp_path, seed_text):
    (tmp_path / "Llama 2.md").write_bytes(seed_text.encode("utf-8"))
    return Vault(tmp_path)


def test_cite_key_link_resolves_to_the_note_itself(tmp_path, seed_text):
    note = _vault(tmp_path, seed_text).note("touvronLlamaOpenFoundation2023")
    by_target = {link.target: link for link in note.links}
    assert by_target["@touvronLlamaOpenFoundation2023"].resolved == "Llama 2.md"
    # the two reference links are kept, unresolved in a vault of one note
    refs = [link for link in note.links if link.is_citation]
    assert [(link.target, link.resolved) for link in refs] == [
        ("daoFlashAttentionFastMemoryEfficient2022", None),
        ("vaswaniAttentionAllYou2017", None),
    ]


def test_export_json_and_check_of_the_seed_vault(tmp_path, seed_text):
    _vault(tmp_path, seed_text).index()
    runner = CliRunner()
    out = runner.invoke(app, ["--vault", str(tmp_path), "export", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    [note] = data["notes"]
    assert note["title"] == "Llama 2: Open Foundation and Fine-Tuned Chat Models"
    assert len(note["authors"]) == 68 and note["citekey"] == "touvronLlamaOpenFoundation2023"
    assert len(note["callouts"]) == 8 and len(note["questions"]) == 5
    assert not any(q["answered"] for q in note["questions"])
    assert {"path": "Llama 2.md", "line": 22, "severity": "warning"}.items() <= next(
        p for p in data["problems"] if "mojibake" in p["message"]
    ).items()
    check = runner.invoke(app, ["--vault", str(tmp_path), "check"])
    assert check.exit_code == 0  # warnings only
    assert "Llama 2.md:22: warning: mojibake" in check.stdout
