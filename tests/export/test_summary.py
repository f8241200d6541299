"""Reading summaries from hand-built notes (the parser is tested elsewhere)."""

from __future__ import annotations

from kb.model import Callout, Claim, Link, Note, Question
from kb.publish.display import abstract_of
from kb.publish.summary import render_summary


def _notes():
    a = Note(
        path="A.md",
        title="Paper A | with a pipe",
        year=2017,
        authors=["Ann One", "Bob Two", "Cy Three", "Di Four"],
        citekey="oneA2017",
        doi="10.1/abc",
        callouts=[Callout("info", "info", "", None, 1, 3, content="- **Abstract:** We study A.\n- **Sources**: x")],
        highlights=["A is fast"],
        claims=[Claim("a-fast", "A is fast", ["exp/fast"], 10), Claim("a-small", "A is small", ["exp/small"], 12)],
        questions=[Question("Why A?", "Because.", True, 20), Question("What next?", "", False, 25)],
        links=[Link("@twoB2022", "wikilink", 30, is_citation=True, resolved="B.md"),
               Link("ghostKey2020", "wikilink", 31, is_citation=True)],
    )
    b = Note(path="B.md", title="Paper B", year=2022, authors=["Eve Five"], tags=["paper"])
    return [b, a]


def test_summary_lists_papers_claims_statuses_and_questions():
    statuses = {"a-fast": {"status": "reproduced", "run_id": "r1", "preset": "full"},
                "a-small": {"status": "contradicted", "run_id": "r2", "preset": "smoke"}}
    text = render_summary(_notes(), statuses, vault_name="demo", generated="2026-01-01")
    assert text.startswith("---\npaperkb-export: summary\n---\n\n# Reading summary: demo")
    assert "2 papers, 2 claims: 1 reproduced, 1 contradicted. 1 open question." in text
    # papers in year order, the pipe in the title escaped inside the table
    assert text.index("## Paper A") < text.index("## Paper B")
    assert "| Paper A \\| with a pipe | 2017 | 2 | 1 | 0 | 1 | 0 | 0 | 1 |" in text
    assert "> We study A." in text
    assert "Ann One, Bob Two, Cy Three et al. (4 authors)" in text
    assert "| ✅ reproduced | - | r1 (full) |" in text and "| ❌ contradicted | - | r2 (smoke) |" in text
    assert "- **What next?** _(open)_" in text
    assert "**Cites:** Paper B; ghostKey2020 _(no note yet)_" in text
    # B is cited by A
    b_part = text[text.index("## Paper B"):]
    assert "**Cited by:** Paper A | with a pipe" in b_part


def test_claims_without_runs_are_unverified():
    text = render_summary(_notes(), {}, generated="x")
    assert "2 unverified" in text and text.count("⬜ unverified") == 2


def test_abstract_falls_back_to_frontmatter():
    assert abstract_of(Note(path="x.md", frontmatter={"abstract": " Short. "})) == "Short."
    assert abstract_of(Note(path="x.md")) == ""


def test_html_in_notes_arrives_as_text():
    """Notes are untrusted: a tag in a title or claim must not become live HTML."""
    evil = Note(path="E.md", title="Evil <script>alert(1)</script>", tags=["paper"],
                claims=[Claim("e", "Fast <img src=x onerror=alert(1)> and `a<b` in code", ["exp/x"], 3)],
                questions=[Question("Why <b>?", "", False, 5)])
    text = render_summary([evil], {}, generated="x")
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "## Evil &lt;script>alert(1)&lt;/script>" in text
    assert "&#96;a&lt;b&#96; in code" in text  # shown as written, backticks and all (issue 23)
    assert "1 paper, 1 claim: 1 unverified. 1 open question." in text


# ---- the bundled Llama 2 note, with a run that has checks and a plot ----------------------
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from exportkit import tiny_png  # noqa: E402
from vaultkit import write  # noqa: E402

from kb.errors import PaperkbError  # noqa: E402
from kb.publish.summary import write_summary  # noqa: E402

LLAMA_STATUSES = {
    "llama2-param-counts": {
        "status": "reproduced", "run_id": "run-001", "preset": "full", "scale": "full", "ended": "2026-11-30T10:00:00",
        "checks": [{"name": "params_7b", "value": 6738415616, "op": "==", "threshold": 6738415616, "scale": "full",
                    "evidence": "direct", "run_id": "run-001", "experiment": "llama/param-count", "passed": True,
                    "description": "7B parameter count"}],
        "controls": [{"experiment": "llama/param-count", "control": "wrong-ffn", "run_id": "run-003",
                      "verdict": "contradicted", "ok": True}],
    },
    "llama2-kv-cache": {"status": "supported at small scale (proxy)", "run_id": "run-002", "preset": "smoke"},
    "llama2-training": {"status": "needs a CUDA GPU", "run_id": None},
}


@pytest.fixture
def llama_vault(bundled_copy: Path) -> Path:
    """The bundled vault with a recorded run's files and a reading list."""
    root = bundled_copy
    write(root, {".paperkb/runs/run-001/loss.png": tiny_png(), ".paperkb/runs/run-001/metrics.json": "{}",
                 "Reading list.md": "# Reading list\n- [[touvronLlamaOpenFoundation2023]]\n"})
    return root


def test_llama2_summary_holds_every_section(tmp_path, llama_vault):
    root = llama_vault
    out = tmp_path / "summary.md"
    text = write_summary(root, out, statuses=LLAMA_STATUSES, names=["touvronLlamaOpenFoundation2023"])
    assert out.read_text(encoding="utf-8") == text
    assert text.startswith("---\npaperkb-export: summary\n---")
    assert "## Llama 2: Open Foundation and Fine-Tuned Chat Models (2023)" in text
    assert "**Authors:** Hugo Touvron, Louis Martin, Kevin Stone et al. (68 authors)" in text  # shortened
    assert "**Year:** 2023" in text
    assert "**DOI:** [10.48550/arXiv.2307.09288](https://doi.org/10.48550/arXiv.2307.09288)" in text
    assert "**Tags:** `#paper` `#deep_learning/models`" in text
    for heading in ("### Abstract", "### Highlights", "### Claims", "### Plots", "### Questions answered",
                    "### Open questions", "### Citation neighbourhood", "### BibTeX"):
        assert heading in text, heading
    assert "> Meta releases Llama 2" in text
    assert "- Pretrained on 2 trillion tokens" in text
    # claims: status word, the check with its measured value, a link to the latest run
    row = next(line for line in text.splitlines() if "^llama2-param-counts" in line)
    assert "✅ reproduced (full)" in row and "✓ params_7b = 6738415616 == 6738415616" in row
    assert "[run-001](vault/.paperkb/runs/run-001/)" in row
    assert "✓ negative control wrong-ffn (llama/param-count): contradicted" in row
    assert "🟡 supported at small scale (proxy)" in text and "⏸️ needs a CUDA GPU" in text
    # the run's plot, a file beside the summary
    assert "![run run-001: loss.png](summary_files/run-001-loss.png)" in text
    assert (tmp_path / "summary_files" / "run-001-loss.png").read_bytes() == tiny_png()
    assert "data:image" not in text
    # questions: the answered ones apart from the open one
    answered = text[text.index("### Questions answered"):text.index("### Open questions")]
    open_part = text[text.index("### Open questions"):text.index("### Citation neighbourhood")]
    assert "primary assumptions" in answered and "_(open)_" not in answered
    assert "- none" in open_part  # every question of the bundled note is answered
    # neighbourhood: a picture, cites with ghosts, cited by papers, mentions apart
    svg = re.search(r"!\[citation neighbourhood\]\(summary_files/(neighbourhood-[a-z0-9-]+\.svg)\)", text)
    assert svg and (tmp_path / "summary_files" / svg.group(1)).read_text().startswith("<svg")
    assert "ainslieGQATrainingGeneralized2023 _(no note yet)_" in text
    # the bundled vault cites under "Reference and Related Notes": the older papers only
    # talk about Llama 2 in their questions, which is a mention, not a citation
    assert "**Cited by:** no paper of this vault" in text
    assert "**Mentioned in:** Attention Is All You Need; FlashAttention" in text and "Reading list" in text
    assert "@misc{touvronLlamaOpenFoundation2023," in text


def test_vault_summary_has_dashboard_and_only_papers(tmp_path, llama_vault):
    root = llama_vault
    write(root, {"Journal.md": "---\ntags: [journal]\n---\nRead [[Attention Is All You Need]].\n",
                 "old-summary.md": "---\npaperkb-export: summary\n---\n# Reading summary: vault\n"})
    text = write_summary(root, statuses=LLAMA_STATUSES)
    assert "3 papers" in text
    assert "| Paper | Year | Claims | Reproduced |" in text
    assert "## Reading list" not in text and "## Journal" not in text and "unknown authors" not in text
    html = write_summary(root, statuses=LLAMA_STATUSES, fmt="html")
    assert html.startswith("<!DOCTYPE html>") and '<svg xmlns="http://www.w3.org/2000/svg"' in html
    assert '<img alt="run run-001: loss.png" src="data:image/png;base64,' in html


def test_summary_cli_picks_by_tag_and_refuses_bad_format(tmp_path, llama_vault):
    root = llama_vault
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(root), "export", "summary"]
    ok = subprocess.run(cmd + ["--tag", "paper", "-f", "html", "-o", str(tmp_path / "s.html")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Attention Is All You Need" in (tmp_path / "s.html").read_text(encoding="utf-8")
    bad = subprocess.run(cmd + ["-f", "pdf"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown --format 'pdf'")
    missing = subprocess.run(cmd + ["No Such Paper"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no note named")
    assert "Traceback" not in bad.stderr + missing.stderr


def test_run_ids_cannot_reach_outside_the_runs_folder(tmp_path, llama_vault):
    root = llama_vault
    write(tmp_path, {"elsewhere/secret.png": tiny_png()})
    statuses = {"llama2-param-counts": {"status": "reproduced", "run_id": "../../../elsewhere"},
                "llama2-kv-cache": {"status": "reproduced", "run_id": "/etc"}}
    text = write_summary(root, statuses=statuses, names=["touvronLlamaOpenFoundation2023"])
    assert "### Plots" not in text and "](../" not in text and "](/etc" not in text
    assert "| ../../../elsewhere |" in text  # shown as text, not linked


def test_needs_words_have_their_own_dashboard_column():
    from kb.publish.display import status_class

    assert status_class("needs a CUDA GPU") == "needs"
    assert status_class("needs the WMT14 English-German data") == "needs"
    assert status_class("supported at small scale (proxy)") == "supported at small scale"
    assert status_class("something new") == "unverified"


# ---- pictures beside the Markdown file, or embedded -------------------------------------
def test_embed_keeps_one_self_contained_file(tmp_path, llama_vault):
    root = llama_vault
    out = tmp_path / "one.md"
    text = write_summary(root, out, statuses=LLAMA_STATUSES, names=["touvronLlamaOpenFoundation2023"], embed=True)
    assert re.search(r"!\[run run-001: loss\.png\]\(data:image/png;base64,[A-Za-z0-9+/=]+\)", text)
    assert "![citation neighbourhood](data:image/svg+xml;base64," in text
    assert not (tmp_path / "one_files").exists()
    # stdout (no file to put a folder beside) is self-contained too
    assert "data:image/png;base64," in write_summary(root, statuses=LLAMA_STATUSES)


def test_files_folder_replaces_only_what_paperkb_wrote(tmp_path, llama_vault):
    root = llama_vault
    out = tmp_path / "s.md"
    folder = tmp_path / "s_files"
    write_summary(root, out, statuses=LLAMA_STATUSES)
    written = sorted(p.name for p in folder.iterdir())
    assert "run-001-loss.png" in written and ".paperkb-summary.json" in written
    # a plot no longer in the summary is removed; a file someone else put there is kept
    (folder / "mine.txt").write_text("keep me")
    no_runs = {k: {**v, "run_id": None} for k, v in LLAMA_STATUSES.items()}
    text = write_summary(root, out, statuses=no_runs)
    assert "### Plots" not in text and not (folder / "run-001-loss.png").exists()
    assert (folder / "mine.txt").read_text() == "keep me"
    # a folder paperkb did not write is refused, and nothing is written
    other = tmp_path / "t_files"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(PaperkbError, match="not written by paperkb"):
        write_summary(root, tmp_path / "t.md", statuses=LLAMA_STATUSES)
    assert not (tmp_path / "t.md").exists() and sorted(os.listdir(other)) == ["notes.txt"]
    # a link planted where a plot goes is refused, not written through
    (tmp_path / "u_files").mkdir()
    os.symlink(tmp_path / "victim.png", tmp_path / "u_files" / "run-001-loss.png")
    with pytest.raises(PaperkbError):
        write_summary(root, tmp_path / "u.md", statuses=LLAMA_STATUSES)
    assert not (tmp_path / "victim.png").exists()


def test_summary_cli_writes_pictures_beside_the_markdown(tmp_path, llama_vault):
    root = llama_vault
    out = tmp_path / "reading summary.md"
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(root), "export", "summary", "-o", str(out)]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "pictures in" in ok.stderr and "reading summary_files" in ok.stderr
    text = out.read_text(encoding="utf-8")
    assert "](reading%20summary_files/neighbourhood-" in text and "base64" not in text
    embedded = subprocess.run(cmd + ["--embed"], capture_output=True, text=True, timeout=120)
    assert embedded.returncode == 0, embedded.stderr
    assert "data:image/svg+xml;base64," in out.read_text(encoding="utf-8")
