"""Answers written the ways a template offers (an `Answer:` line, an `answer::` field),
and a template's empty prompts that are no open questions."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.parse import parse_note
from kb.vault import Vault

SEED = Path(__file__).parent.parent / "data" / "seed_llama2.md"

TEXT = """\
> [!question] Why?
> What is it **for**?
> Answer: because it is.
> And more.

>[!question]
>What are the *primary assumptions* behind this paper?
>answer:: none at all

>[!question]
>My own question, not answered yet

Answer:

>[!question]
>Q four

**Answer:** yes

>[!question]
>What impact does this paper have on me?

>[!question]
>Why does the loss spike?
"""


@pytest.mark.parametrize("fast", [False, True])
def test_answer_forms(fast):
    got = [(q.text, q.answer, q.answered, q.prompt, q.open) for q in parse_note(TEXT, "n.md", fast=fast).questions]
    assert got == [
        ("Why?\nWhat is it for?", "because it is.\nAnd more.", True, False, False),
        ("What are the primary assumptions behind this paper?", "none at all", True, False, False),
        ("My own question, not answered yet", "", False, False, True),  # the label alone is no answer
        ("Q four", "yes", True, False, False),
        ("What impact does this paper have on me?", "", False, True, False),  # the seed template's prompt
        ("Why does the loss spike?", "", False, False, True),
    ]


def test_seed_note_has_prompts_not_open_questions():
    note = parse_note(SEED.read_bytes(), "seed.md")
    assert len(note.questions) == 5
    assert all(q.prompt and not q.answered and not q.open for q in note.questions)


def test_vault_template_prompts_and_questions_open(tmp_path):
    (tmp_path / ".obsidian").mkdir()
    (tmp_path / "LoRA.md").write_text(
        "# LoRA\n> [!question] Which rank did they need?\n\n> [!question] What would I change?\n\n"
        "> [!question] Why low rank?\n", encoding="utf-8")
    vault = Vault(tmp_path)
    assert [q.text for _, q in vault.questions(open_only=True)] == [
        "Which rank did they need?", "What would I change?", "Why low rank?"]
    # the user's own template asks two of them: the index re-reads the notes by itself
    template = tmp_path / ".paperkb" / "templates" / "paper.md"
    template.parent.mkdir(parents=True)
    template.write_text("# {{ title }}\n> [!question] Which rank did they *need*?\n\n"
                        "> [!question]\n> What would I change?\n", encoding="utf-8")
    assert [q.text for _, q in Vault(tmp_path).questions(open_only=True)] == ["Why low rank?"]
    result = CliRunner().invoke(app, ["--vault", str(tmp_path), "questions", "--format", "tsv", "--no-header"])
    assert [line.split("\t")[1] for line in result.stdout.splitlines()] == ["prompt", "prompt", ""]
    result = CliRunner().invoke(app, ["--vault", str(tmp_path), "show", "LoRA"])
    assert "3 (0 answered, 2 empty template prompts)" in result.stdout
