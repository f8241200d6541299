"""`paperkb status --write-notes`: each claim's status as a managed `status::` field in its
callout, and not one other byte of the note changed."""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from kb.parse import parse_note
from kb.vault import Vault
from kb.writeback import write_status_fields
from repro.notestatus import write_status_notes
from repro.status import claim_statuses, vault_claims
from repro.tracker import PASSED, Tracker

runner = CliRunner()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".paperkb"))
    (dst / ".obsidian").mkdir(exist_ok=True)
    return dst


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.md"))}


def _only_inserted_fields(before: bytes, after: bytes) -> list[str]:
    """The lines `after` adds to `before`; fails if anything else changed."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    added = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        assert op == "insert", (op, a[i1:i2], b[j1:j2])
        added += [line.decode() for line in b[j1:j2]]
    return added


def _claims(root: Path) -> list:
    return [(c.note, c.id, c.statement, c.experiments, c.params, c.expect, c.needs) for c in vault_claims(root)]


def test_bundled_vault_gets_fields_and_nothing_else(tmp_path, bundled_vault):
    root = _copy(bundled_vault, tmp_path / "v")
    before = _snapshot(root)
    with Tracker(root) as t:  # one decided claim: a passed smoke run of flash-attention/exact
        run = t.create_run("flash-attention/exact", preset="smoke", params={}, overrides={}, scale="smoke")
        t.mark_running(run.id, None)
        t.finish(run.id, PASSED, verdict="supported", checks=[
            {"name": "max_err", "value": 1e-6, "op": "<=", "threshold": 1e-5, "passed": True,
             "evidence": "direct", "scale": "smoke", "description": "d"}])
    claims, statuses = _claims(root), claim_statuses(root)
    result = runner.invoke(app, ["--vault", str(root), "status", "--write-notes", "--format", "tsv"])
    assert result.exit_code == 0, result.output
    assert "wrote 50 status:: fields into 3 notes" in result.stderr
    after = _snapshot(root)
    n_callout_claims = 0
    for name, old in before.items():
        added = _only_inserted_fields(old, after[name])
        assert all(line.startswith("> status:: ") and line.endswith("\n") for line in added), added
        n_callout_claims += len(added)
        # every field sits inside its claim's callout, and Dataview reads it as an inline field
        note = parse_note(after[name], name)
        for claim in note.claims:
            callout = next(c for c in note.callouts if c.line == claim.line)
            fields = [f.value for f in note.inline_fields
                      if callout.line <= f.line <= callout.end_line and f.key == "status"]
            assert len(fields) == 1, (name, claim.id)
    assert n_callout_claims == 50
    fa = after["FlashAttention - Fast and Memory-Efficient Exact Attention with IO-Awareness.md"].decode()
    assert f"> experiment:: flash-attention/exact\n> status:: supported at small scale · run {run.id} · " in fa
    assert "> status:: unverified\n" in fa and "> status:: needs 8 A100 GPUs" in fa
    # the claims and their words read exactly as before
    assert _claims(root) == claims and claim_statuses(root) == statuses
    # again: nothing to change, no file touched
    mtimes = {p.name: p.stat().st_mtime_ns for p in root.glob("*.md")}
    report = write_status_notes(Vault(root))
    assert report.written == [] and len(report.unchanged) == 3
    assert {p.name: p.stat().st_mtime_ns for p in root.glob("*.md")} == mtimes
    # --remove gives back the notes byte for byte
    result = runner.invoke(app, ["--vault", str(root), "status", "--write-notes", "--remove"])
    assert result.exit_code == 0 and "took 50 status:: fields out of 3 notes" in result.stderr
    assert _snapshot(root) == before


def _claim_note(tmp_path: Path, name: str, data: bytes) -> Path:
    root = tmp_path / "v"
    root.mkdir(exist_ok=True)
    (root / ".obsidian").mkdir(exist_ok=True)
    (root / name).write_bytes(data)
    return root


HOSTILE = {
    # the seed note with a claim of its own appended at the very end, with no final newline
    "seed": None,
    "crlf+bom": b"\xef\xbb\xbf# T\r\n> [!claim] A claim\r\n> experiment:: e/x\r\n\r\n^c1\r\n",
    "no space, id on the last line": b"# T\n>[!claim] Two\n>experiment:: e/x ^c2\n\ntext\n",
    "nested": b"> [!note]\n> > [!claim] Deep\n> > experiment:: e/x\n\nafter\n",
    "user field elsewhere": b"# T\n> [!info]\n> status:: mine\n\n> [!claim] Three\n> experiment:: e/x\n> status:: old\n"
    b"> status:: older\n",
    "statement in body": b"> [!claim]\n> The statement\n> params:: n=2\n> expect:: m < 3\n",
    "frontmatter claim": b"---\nclaims:\n  - id: fm\n    statement: S\n    experiment: e/x\n---\nbody\n",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_notes_keep_every_other_byte(tmp_path, seed_text, case):
    data = HOSTILE[case]
    if data is None:
        data = seed_text.encode() + b"\n\n> [!claim] Seed claim\n> experiment:: e/x"
    root = _claim_note(tmp_path, "n.md", data)
    vault = Vault(root)
    claims = [c for _, c in vault.claims()]
    values = {("n.md", c.id): "supported at small scale · run r1 · 2026-12-07" for c in claims}
    report = write_status_fields(vault, values)
    new = (root / "n.md").read_bytes()
    if case == "frontmatter claim":  # no callout to write in: nothing changes
        assert new == data and report.written == []
        return
    assert report.written == ["n.md"], report.skipped
    assert new.startswith(data[:3])  # a BOM stays
    added = _only_inserted_fields(data, new) if case not in ("user field elsewhere", "seed") else []
    if case == "user field elsewhere":
        assert new == data.replace(b"> status:: old\n> status:: older\n",
                                   b"> status:: supported at small scale \xc2\xb7 run r1 \xc2\xb7 2026-12-07\n")
        assert b"> status:: mine\n" in new  # a field outside a claim callout is the user's
    elif case == "seed":  # the last line gains the note's line ending; the field gets none
        assert new == data + "\n> status:: supported at small scale · run r1 · 2026-12-07".encode()
    elif case == "crlf+bom":
        assert added == ["> status:: supported at small scale · run r1 · 2026-12-07\r\n"]
    elif case == "no space, id on the last line":
        assert added == [">status:: supported at small scale · run r1 · 2026-12-07\n"]
        assert new.index(b"status::") < new.index(b"^c2")  # the block id still ends the callout
    elif case == "nested":
        assert added == ["> > status:: supported at small scale · run r1 · 2026-12-07\n"]
    after = parse_note(new, "n.md").claims
    assert [(c.id, c.statement, c.experiments, c.params, c.expect) for c in after] == [
        (c.id, c.statement, c.experiments, c.params, c.expect) for c in claims]
    # and out again, byte for byte (the user's own field stays)
    Vault(root).refresh_index()
    write_status_fields(Vault(root), None, remove=True)
    expect = data if case != "user field elsewhere" else data.replace(b"> status:: old\n> status:: older\n", b"")
    assert (root / "n.md").read_bytes() == expect


def test_notes_left_alone_and_reported(tmp_path):
    root = tmp_path / "v"
    root.mkdir()
    (root / ".obsidian").mkdir()
    claim = b"> [!claim] C\n> experiment:: e/x\n"
    (root / "edited.md").write_bytes(claim)
    (root / "latin1.md").write_bytes(b"# caf\xe9\n" + claim)
    outside = tmp_path / "outside.md"
    outside.write_bytes(claim)
    os.symlink(outside, root / "link.md")
    vault = Vault(root)
    values = {(p, c.id): "unverified" for p, c in vault.claims()}
    (root / "edited.md").write_bytes(claim + b"the user typed this after the index\n")
    report = write_status_fields(Vault(root, refresh=False), values)
    why = dict(report.skipped)
    assert report.written == []
    assert "changed since the last index" in why["edited.md"]
    assert "not UTF-8" in why["latin1.md"]
    if "link.md" in why:  # (the index may not list a link at all: then it is never written either)
        assert "symbolic link" in why["link.md"]
    assert outside.read_bytes() == claim and (root / "edited.md").read_bytes().endswith(b"after the index\n")


def test_remove_needs_write_notes(tmp_path):
    (tmp_path / ".obsidian").mkdir()
    result = runner.invoke(app, ["--vault", str(tmp_path), "status", "--remove"])
    assert result.exit_code == 2 and "--remove goes with --write-notes" in result.output
