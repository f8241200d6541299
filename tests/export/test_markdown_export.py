"""Plain CommonMark out of Obsidian notes."""

from __future__ import annotations

import pytest
from exportkit import tiny_png
from vaultkit import write

from kb.errors import PaperkbError
from kb.publish.markdown import export_markdown
from kb.vault import Vault


def test_wikilinks_embeds_callouts_dataview_and_code(tmp_path):
    root = write(tmp_path / "vault", {
        "papers/A.md": "---\ntags: [paper]\nyear: 2020\n---\n# A\n\nSee [[B|the B paper]], [[B#Method]], [[Ghost]] "
                       "and `[[not a link]]`. %%hidden%%\n\n> [!question]- Why?\n> Because. ^q1\n\n![[fig.png]]\n\n"
                       "![[B]]\n\n```dataview\nLIST FROM #paper\n```\n\n```\n[[kept]] in code\n```\n",
        "B.md": "---\ntags: [paper]\n---\n# B\n## Method\nB's text.\n",
        "papers/fig.png": tiny_png(),
    })
    out = tmp_path / "plain"
    report = export_markdown(Vault(root), out)
    assert report.notes == 2 and report.files == 1 and (out / "papers" / "fig.png").is_file()
    a = (out / "papers" / "A.md").read_text(encoding="utf-8")
    assert a.startswith("---\ntags:\n- paper\nyear: 2020\npaperkb-export: markdown\n---\n")
    assert "[the B paper](../B.md)" in a and "[B > Method](../B.md#method)" in a and " Ghost and" in a
    assert "`[[not a link]]`" in a and "[[kept]] in code" in a and "hidden" not in a
    assert "> **Why?**" in a and "^q1" not in a and "[!question]" not in a
    assert "![fig.png](fig.png)" in a
    assert "> B's text." in a  # the embedded note, inlined
    assert "```dataview" not in a and "- [A](A.md)" in a or "[A]" in a  # the query's result
    plain = export_markdown(Vault(root), tmp_path / "bare", frontmatter=False)
    assert not (tmp_path / "bare" / "B.md").read_text(encoding="utf-8").startswith("---")
    assert plain.notes == 2


def test_refusals(tmp_path):
    root = write(tmp_path / "vault", {"A.md": "# A\n"})
    write(tmp_path, {"busy/x.txt": "x"})
    with pytest.raises(PaperkbError, match="not empty"):
        export_markdown(Vault(root), tmp_path / "busy")
    for frontmatter in (False, True):  # issue 23: never into the vault, with or without frontmatter
        with pytest.raises(PaperkbError, match="inside the vault"):
            export_markdown(Vault(root), root / "export", frontmatter=frontmatter)
    export_markdown(Vault(root), tmp_path / "plain")
    export_markdown(Vault(root), tmp_path / "plain")  # its own earlier export: fine
