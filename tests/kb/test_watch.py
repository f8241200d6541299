"""`paperkb watch` with a real watcher (watchfiles) on a temporary vault: edits, a burst of
saves, a rename into a new folder, a broken rule file, polling, and Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kb.publish.site import page_name
from kb.watch import VaultFilter

ROOT = Path(__file__).resolve().parents[2]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a suite run in the background ignores it


class Watcher:
    def __init__(self, vault: Path, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.app", "--vault", str(vault), "watch", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_default_sigint,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} from paperkb watch in {timeout} s; it said: {self.seen}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(timeout=5)
            while not self.lines.empty():
                self.seen.append(self.lines.get())


def _indexed(vault: Path, sql: str, args=()) -> list[tuple]:
    db = vault / ".paperkb" / "index.db"
    if not db.is_file():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # not made yet
        return []
    finally:
        conn.close()


def _wait_until(check, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("the index did not catch up in time")


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    (root / ".obsidian").mkdir()
    (root / "LoRA.md").write_text("---\ntags: [paper]\n---\n# LoRA\n", encoding="utf-8")
    (root / "RoFormer.md").write_text("# RoFormer\n## References\n- [[LoRA]]\n", encoding="utf-8")
    return root


def test_watch_keeps_index_and_site_current_and_stops_on_ctrl_c(vault, tmp_path):
    site = tmp_path / "site"
    w = Watcher(vault, "--site", str(site), "--debounce", "100")
    try:
        w.wait_for("watching for changes")
        assert (site / "index.html").is_file()
        # a new note
        (vault / "New.md").write_text("# New\nsee [[LoRA]]\n", encoding="utf-8")
        _wait_until(lambda: _indexed(vault, "SELECT src FROM links WHERE resolved='LoRA.md' AND src='New.md'"))
        # a burst of saves: the index ends with the last one, in fewer updates than saves
        before = len(w.seen)
        for i in range(30):
            (vault / "New.md").write_text(f"# New\nsave {i} [[RoFormer]]\n", encoding="utf-8")
        _wait_until(lambda: _indexed(vault, "SELECT 1 FROM links WHERE src='New.md' AND resolved='RoFormer.md'"))
        time.sleep(0.5)
        assert len([line for line in w.seen[before:] if "New.md" in line]) < 30
        assert "save 29" in _indexed(vault, "SELECT data FROM notes WHERE path='New.md'")[0][0]
        # a rename into a new folder, Obsidian's workspace file and a swap file (ignored)
        (vault / "papers").mkdir()
        (vault / "RoFormer.md").rename(vault / "papers" / "RoFormer.md")
        (vault / ".obsidian" / "workspace.json").write_text("{}", encoding="utf-8")
        (vault / ".New.md.swp").write_text("x", encoding="utf-8")
        _wait_until(lambda: _indexed(vault, "SELECT path FROM notes ORDER BY path")
                    == [("LoRA.md",), ("New.md",), ("papers/RoFormer.md",)])
        # a broken rule file: one error line, and watching goes on
        rules = vault / ".paperkb" / "papers.yaml"
        rules.write_text("citations: [\n", encoding="utf-8")
        assert "papers.yaml:2: not valid YAML" in w.wait_for("error:")
        rules.write_text("citations:\n  anywhere: true\n", encoding="utf-8")
        _wait_until(lambda: _indexed(vault, "SELECT is_citation FROM links WHERE src='New.md'") == [(1,)])
        page = site / "notes" / page_name("New.md")
        _wait_until(lambda: page.is_file() and "save 29" in page.read_text(encoding="utf-8"))  # the site followed
    finally:
        code = w.stop()
    assert code == 130
    assert w.seen[-1] == "stopped watching" and not [line for line in w.seen if "Traceback" in line]


def test_watch_by_polling(vault):
    w = Watcher(vault, "--poll", "--poll-delay", "50", "--debounce", "50", "--quiet")
    try:
        _wait_until(lambda: _indexed(vault, "SELECT count(*) FROM notes") == [(2,)])
        time.sleep(0.3)  # the first poll has looked at the folder
        (vault / "LoRA.md").unlink()
        _wait_until(lambda: _indexed(vault, "SELECT path FROM notes") == [("RoFormer.md",)])
    finally:
        assert w.stop() == 130
    assert not [line for line in w.seen if "error" in line]  # --quiet: nothing else printed


def test_filter_ignores_paperkb_own_files_and_hidden_folders(tmp_path):
    f = VaultFilter(tmp_path, ignore=[tmp_path / "site"])
    yes = ["a.md", "sub/b.md", "img.png", ".paperkb/papers.yaml", ".paperkb/templates/paper.md"]
    no = [".paperkb/index.db", ".paperkb/index.db-wal", ".obsidian/workspace.json", ".trash/x.md", "site/index.html",
          "a.md~", ".a.md.swp", "sub/.#b.md", "n.md.paperkb-tmp"]
    assert [p for p in yes if not f(None, str(tmp_path / p))] == []
    assert [p for p in no if f(None, str(tmp_path / p))] == []
    assert not f(None, str(tmp_path.parent / "elsewhere.md"))
