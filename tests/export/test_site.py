"""The static site: pages, index tables, run pages, graph, search, incremental re-export."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from exportkit import paper, tiny_png
from vaultkit import write

from kb.errors import PaperkbError
from kb.publish.site import MANIFEST, NOTES_CACHE, export_site, page_name
from kb.vault import Vault

STATUSES = {"llama2-param-counts": {"status": "reproduced", "run_id": "run-001", "preset": "full",
                                    "checks": [{"name": "params_7b", "value": 6738415616, "op": "==",
                                                "threshold": 6738415616, "passed": True, "run_id": "run-001"}]}}


@pytest.fixture
def vault_root(bundled_copy):
    root = bundled_copy
    write(root, {
        ".paperkb/runs/run-001/loss.png": tiny_png(),
        ".paperkb/runs/run-001/metrics.json": json.dumps({
            "run_id": "run-001", "experiment": "llama/param-count", "preset": "full", "status": "passed",
            "verdict": "reproduced", "checks": [{"name": "params_7b", "value": 6738415616, "op": "==",
                                                 "threshold": 6738415616, "passed": True}],
            "metrics": [{"name": "loss", "step": 1, "value": 2.5}, {"name": "loss", "step": 2, "value": 1.25}]}),
        "Dashboard.md": "# Dashboard\n\n```dataview\nLIST FROM #paper SORT file.name\n```\n\n"
                        "> [!tip]- Folded tip\n> hidden text $E = mc^2$\n\n![[figs/plot.png]]\n",
        "figs/plot.png": tiny_png(),
    })
    return root


def _page(out, vault_root, name):
    return (out / "notes" / page_name(name)).read_text(encoding="utf-8")


def test_site_pages_index_runs_graph_and_search(tmp_path, vault_root):
    out = tmp_path / "site"
    report = export_site(Vault(vault_root), out, statuses=STATUSES, workers=1)
    assert report.pages == 4 and not report.warnings
    for rel in ("index.html", "graph.html", "search-index.js", "assets/site.css", "assets/site.js", MANIFEST,
                "runs/run-001.html", "runs/run-001/loss.png"):
        assert (out / rel).is_file(), rel
    llama = _page(out, vault_root, "Llama 2 - Open Foundation and Fine-Tuned Chat Models.md")
    assert '<details class="callout callout-claim" open>' in llama
    assert f'href="../notes/{page_name("Attention Is All You Need.md")}"' in llama  # wikilink -> page
    assert '<span class="ghost"' in llama  # a cited work without a note
    assert "✅ reproduced" in llama and 'href="../runs/run-001.html"' in llama
    # the citation rule of the graph and the summary: the other papers only mention Llama 2
    backlinks = llama[llama.index('<section class="backlinks">'):]
    assert "Cited by" not in backlinks and "Mentioned in" in backlinks
    attention = _page(out, vault_root, "Attention Is All You Need.md")
    assert "<h2>Cited by</h2>" in attention
    dash = _page(out, vault_root, "Dashboard.md")
    assert "```dataview" not in dash and "Attention Is All You Need" in dash  # the query's result
    assert re.search(r'<details class="callout callout-tip"><summary>', dash)  # folded: not open
    assert '<code class="math">E = mc^2</code>' in dash
    assert re.search(r'<img src="\.\./files/[0-9a-f]+-plot\.png"', dash)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="papers-table" class="sortable"' in index and 'id="claims-table"' in index
    papers = index[index.index('id="papers-table"'):]
    papers = papers[:papers.index("</table>")]
    assert papers.count("<tr><td><a href=\"notes/") == 3  # three papers; the dashboard is not one
    assert '<input id="search"' in index and "https://" not in index.replace("https://doi.org", "")
    graph = (out / "graph.html").read_text(encoding="utf-8")
    assert graph.count('class="node paper') == 3 and graph.count('class="node ghost"') >= 5
    run = (out / "runs" / "run-001.html").read_text(encoding="utf-8")
    assert "llama/param-count" in run and "params_7b" in run and "1.25" in run and 'src="run-001/loss.png"' in run
    search = (out / "search-index.js").read_text(encoding="utf-8")
    assert search.startswith("window.PAPERKB_SEARCH = [") and "rotary" in search
    for html_file in out.rglob("*.html"):  # offline: nothing loads from the network
        text = html_file.read_text(encoding="utf-8")
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', text), html_file


def test_reexport_rewrites_only_what_changed(tmp_path, vault_root):
    out = tmp_path / "site"
    export_site(Vault(vault_root), out, workers=1)
    again = export_site(Vault(vault_root), out, workers=1)
    assert again.written == 0 and again.unchanged > 5
    flash = vault_root / "FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md"
    before = {p: p.stat().st_mtime_ns for p in (out / "notes").iterdir()}
    time.sleep(0.01)
    flash.write_text(flash.read_text(encoding="utf-8") + "\nOne more line about tiling.\n", encoding="utf-8")
    third = export_site(Vault(vault_root), out, workers=1)
    changed = [p.name for p in (out / "notes").iterdir() if p.stat().st_mtime_ns != before[p]]
    # the page itself, and the pages with dataview blocks (their results may depend on any note)
    assert sorted(changed) == sorted(page_name(n) for n in (flash.name, "Attention Is All You Need.md", "Dashboard.md"))
    assert third.written <= 5  # those three, and the search index whose content changed
    (vault_root / "Dashboard.md").unlink()
    fourth = export_site(Vault(vault_root), out, workers=1)
    assert fourth.removed >= 1 and not (out / "notes" / page_name("Dashboard.md")).exists()


def test_refuses_a_folder_it_did_not_write_unless_forced(tmp_path, vault_root):
    out = tmp_path / "mine"
    write(out, {"thesis.tex": "precious"})
    with pytest.raises(PaperkbError, match="not empty and was not written by paperkb"):
        export_site(Vault(vault_root), out, workers=1)
    export_site(Vault(vault_root), out, force=True, workers=1)
    assert (out / "thesis.tex").read_text() == "precious"  # --force writes beside, never deletes
    with pytest.raises(PaperkbError, match="holds the vault"):
        export_site(Vault(vault_root), vault_root, workers=1)


def test_site_cli_one_line_errors(tmp_path, vault_root):
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(vault_root), "export", "site"]
    ok = subprocess.run(cmd + [str(tmp_path / "s")], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "note pages" in ok.stderr
    write(tmp_path, {"busy/x.txt": "x"})
    busy = subprocess.run(cmd + [str(tmp_path / "busy")], capture_output=True, text=True, timeout=60)
    assert busy.returncode == 1 and busy.stderr.startswith("error: ") and "--force" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_parallel_render_matches_serial(tmp_path):
    root = tmp_path / "v"
    write(root, {f"P{i:03d}.md": paper(f"Paper {i}", f"leeP{i:03d}{2000 + i % 20}", f"See [[P{(i + 1) % 210:03d}]].")
                 for i in range(210)})
    a = export_site(Vault(root), tmp_path / "a", workers=1, generated="x")
    seen: list[tuple[int, int]] = []
    b = export_site(Vault(root), tmp_path / "b", workers=2, generated="x", progress=lambda d, t: seen.append((d, t)))
    assert a.pages == b.pages == 210
    # the progress line of a long export: batches counted up to every page
    assert seen and seen[-1] == (210, 210) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    for p in (tmp_path / "a" / "notes").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / "notes" / p.name).read_bytes()
    assert os.path.getsize(tmp_path / "a" / "graph.html") == os.path.getsize(tmp_path / "b" / "graph.html")


def test_search_words_from_the_render_workers_equal_those_read_from_the_index(tmp_path, vault_root):
    """A rendered page hands its note's search words back; a page kept as it was gets them
    from the manifest, or from the index when the manifest has none: all three agree."""
    out = tmp_path / "s"
    export_site(Vault(vault_root), out, workers=1, generated="x")
    first = (out / "search-index.js").read_bytes()
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["search"]
    del manifest["search"]
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    again = export_site(Vault(vault_root), out, workers=1, generated="x")
    assert again.written == 0 and (out / "search-index.js").read_bytes() == first


def test_site_writes_nothing_through_links_planted_in_the_output(tmp_path, vault_root):
    out = tmp_path / "s"
    export_site(Vault(vault_root), out, workers=1, generated="x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    page = out / "notes" / page_name("Dashboard.md")
    page.unlink()
    page.symlink_to(outside / "stolen.html")
    report = export_site(Vault(vault_root), out, workers=1, generated="x")  # the link is left alone, reported
    assert any(page.name in w and "left as it is" in w for w in report.warnings)
    assert not (outside / "stolen.html").exists() and page.is_symlink()
    page.unlink()
    (out / "notes").rename(tmp_path / "old-notes")
    (out / "notes").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PaperkbError, match="outside"):
        export_site(Vault(vault_root), out, workers=1, generated="x")
    assert list(outside.iterdir()) == []


def _files(out):
    """The site's files (not the manifest and cache the export keeps for itself)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and p.name not in (MANIFEST, NOTES_CACHE)}


def test_incremental_export_equals_a_fresh_export(tmp_path, vault_root):
    """After each change (a note's text, a new note its link now resolves to, a claim's
    status, a deleted note) the re-exported site is byte for byte a from-scratch export."""
    site = tmp_path / "site"
    export_site(Vault(vault_root), site, statuses=STATUSES, workers=1, generated="x")
    flash = vault_root / "FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md"
    reproduced = {k: dict(v, status="contradicted") for k, v in STATUSES.items()}

    def one_line(): flash.write_text(flash.read_text(encoding="utf-8") + "\nTiling, see [[Newer Paper]].\n", "utf-8")
    def new_note(): write(vault_root, {"Newer Paper.md": paper("Newer Paper", "newer2024", "Cites [[FlashAttention]].")})
    def dashboard_gone(): (vault_root / "Dashboard.md").unlink()

    steps = [(one_line, STATUSES), (new_note, STATUSES), (lambda: None, reproduced), (dashboard_gone, reproduced)]
    for k, (change, statuses) in enumerate(steps):
        time.sleep(0.01)
        change()
        report = export_site(Vault(vault_root), site, statuses=statuses, workers=1, generated="x")
        fresh = tmp_path / f"fresh-{k}"
        export_site(Vault(vault_root), fresh, statuses=statuses, workers=1, generated="x")
        assert _files(site) == _files(fresh), k
        assert report.unchanged > 0, k  # and it was incremental


def test_status_of_gets_the_claims_kb_claims_lists(tmp_path, vault_root):
    from kb.claims import indexed_claims

    seen = []
    export_site(Vault(vault_root), tmp_path / "s", workers=1, generated="x",
                status_of=lambda claims: seen.extend(claims) or STATUSES)
    assert seen and seen == indexed_claims(Vault(vault_root))  # one builder: kb.claims.claim_entry
    via_dict = tmp_path / "d"
    export_site(Vault(vault_root), via_dict, statuses=STATUSES, workers=1, generated="x")
    assert _files(tmp_path / "s") == _files(via_dict)


def test_a_damaged_or_stale_notes_cache_is_read_again_from_the_index(tmp_path, vault_root):
    site = tmp_path / "site"
    export_site(Vault(vault_root), site, statuses=STATUSES, workers=1, generated="x")
    first = _files(site)
    (site / NOTES_CACHE).write_bytes(b"\xc1 not msgpack")
    flash = vault_root / "FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md"
    flash.write_text(flash.read_text(encoding="utf-8").replace("FlashAttention", "FlashAttn", 1), "utf-8")
    export_site(Vault(vault_root), site, statuses=STATUSES, workers=1, generated="x")
    fresh = tmp_path / "fresh"
    export_site(Vault(vault_root), fresh, statuses=STATUSES, workers=1, generated="x")
    assert _files(site) == _files(fresh) != first
    import msgspec  # a cache entry whose hash no longer matches its note is not used

    cache = msgspec.msgpack.decode((site / NOTES_CACHE).read_bytes())
    cache["notes"][flash.name][1] = "A title from a stale cache"
    (site / NOTES_CACHE).write_bytes(msgspec.msgpack.encode(cache))
    flash.write_text(flash.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
    export_site(Vault(vault_root), site, statuses=STATUSES, workers=1, generated="x")
    assert "A title from a stale cache" not in (site / "index.html").read_text(encoding="utf-8")


def test_cli_site_shows_the_statuses_the_tracker_gives(tmp_path, bundled_copy):
    """``paperkb export site`` hands the claims it read to repro.status: the words on the
    pages are those ``claim_statuses`` gives when it reads the claims itself."""
    from repro.status import claim_statuses
    from repro.tracker import Tracker

    root = bundled_copy
    with Tracker(root) as t:
        run = t.create_run("llama/param-count", preset="full", params={}, overrides={}, scale="full")
        t.mark_running(run.id, None)
        t.finish(run.id, "failed", verdict="contradicted", checks=[
            {"name": "params_7b", "value": 1.0, "op": "==", "threshold": 2.0, "passed": False,
             "evidence": "direct", "scale": "full", "description": "d"}])
    expected = claim_statuses(root)
    assert expected["llama2-param-counts"]["status"] == "contradicted"
    cmd = [sys.executable, "-m", "cli.app", "--vault", str(root), "export", "site", str(tmp_path / "s")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    index = (tmp_path / "s" / "index.html").read_text(encoding="utf-8")
    from markupsafe import escape

    for st in expected.values():
        assert str(escape(st["status"])) in index
    llama = (tmp_path / "s" / "notes" / page_name("Llama 2 - Open Foundation and Fine-Tuned Chat Models.md"))
    assert "❌ contradicted" in llama.read_text(encoding="utf-8")
