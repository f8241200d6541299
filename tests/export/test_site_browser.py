"""The exported site in a real browser: headless Chromium (Debian's package), driven over
the Chrome DevTools protocol, against a local HTTP server on 127.0.0.1.

Skipped only when no ``chromium`` binary is installed (``.ci/run`` installs it)."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from kb.publish.site import export_site, page_name
from kb.vault import Vault

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
ARTIFACTS = Path(os.environ.get("PAPERKB_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class Browser:
    """Just enough of the DevTools protocol: navigate, evaluate, click, type, screenshot."""

    def __init__(self, profile: Path) -> None:
        import websocket

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=1200,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = []
        while not targets:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = [t for t in json.load(r) if t.get("type") == "page"]
            if not targets:
                time.sleep(0.1)
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def goto(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def served_site(tmp_path, bundled_copy):
    root = bundled_copy
    out = tmp_path / "site"
    export_site(Vault(root), out, workers=1)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(180)
def test_graph_click_and_search_in_chromium(served_site, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        browser.goto(served_site + "graph.html")
        assert browser.eval("document.querySelectorAll('#graph circle.node.paper').length") == 3
        assert browser.eval("document.querySelectorAll('#graph circle.node.ghost').length") >= 5
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = browser.call("Page.captureScreenshot", format="png")
        (ARTIFACTS / "site-graph.png").write_bytes(base64.b64decode(shot["data"]))
        # click the Llama 2 node where it is drawn on screen
        llama = "Llama 2 - Open Foundation and Fine-Tuned Chat Models.md"
        box = browser.eval(
            f"(function(){{var c=document.querySelector('circle[data-node=\"{llama}\"]');"
            "c.scrollIntoView({block:'center'});var r=c.getBoundingClientRect();"
            "return [r.left+r.width/2, r.top+r.height/2];})()")
        browser.events.clear()
        browser.click(*box)
        browser.wait_event("Page.loadEventFired")
        assert browser.eval("location.pathname") == "/notes/" + page_name(llama)
        assert browser.eval("document.querySelector('h1.note-title').textContent") == \
            "Llama 2: Open Foundation and Fine-Tuned Chat Models"
        # the search box: type, see the matching note listed
        browser.goto(served_site + "index.html")
        browser.eval("document.getElementById('search').focus()")
        browser.call("Input.insertText", text="rotary")
        hits = browser.eval("Array.from(document.querySelectorAll('#search-results a')).map(a => a.textContent)")
        assert "Llama 2: Open Foundation and Fine-Tuned Chat Models" in hits
        browser.eval("document.getElementById('search').value=''")
        browser.call("Input.insertText", text="zzznothing")
        assert browser.eval("document.getElementById('search-results').textContent") == "No note matches."
        # the papers table sorts when its header is clicked
        browser.eval("document.querySelector('#papers-table th:nth-child(2)').click()")
        years = browser.eval("Array.from(document.querySelectorAll('#papers-table tbody tr td:nth-child(2)'))"
                             ".map(td => td.textContent)")
        assert years == sorted(years)
        shot = browser.call("Page.captureScreenshot", format="png")
        (ARTIFACTS / "site-search.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()


HOSTILE_NOTE = """# Links

[h](evil.html) [s](evil.svg) [e](.env) [db](.paperkb/runs.db)
![[evil.svg]] ![[evil.html]] ![[pic.png]]
![p](https://tracker.invalid/p.png) ![q](http://127.0.0.1:9/q.png)
"""


@pytest.mark.timeout(180)
def test_hostile_attachments_and_remote_images_in_chromium(tmp_path):
    """Issue 23: a note's links to HTML, SVG, dot-files and .paperkb/ publish nothing a
    browser runs, the SVG shows only as an <img> (its script never runs), and a remote
    image is a link: loading the page requests nothing outside the site."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Links.md").write_text(HOSTILE_NOTE, encoding="utf-8")
    (vault / "evil.html").write_text("<script>alert('html')</script>", encoding="utf-8")
    (vault / "evil.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                                    "<script>alert('svg')</script><rect width='10' height='10'/></svg>")
    (vault / ".env").write_text("SECRET=1")
    (vault / ".paperkb").mkdir()
    (vault / ".paperkb" / "runs.db").write_bytes(b"SQLite format 3\x00host=secret")
    (vault / "pic.png").write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="))
    out = tmp_path / "site"
    export_site(Vault(vault), out, workers=1)
    assert sorted(p.name.split("-", 1)[1] for p in (out / "files").iterdir()) == ["evil.svg", "pic.png"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}/"
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Network.enable")
        browser.goto(site + "notes/" + page_name("Links.md"))
        time.sleep(0.5)
        requested = [e["params"]["request"]["url"] for e in browser.events
                     if e.get("method") == "Network.requestWillBeSent"]
        assert requested and all(url.startswith(site) for url in requested), requested
        assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
        assert browser.eval("Array.from(document.querySelectorAll('a[href]')).filter("
                            "a => /evil|\\.env|\\.paperkb|runs\\.db/.test(a.getAttribute('href'))).length") == 0
        assert browser.eval("document.querySelectorAll('img[src*=\"evil.svg\"]').length") == 1
        assert browser.eval("document.querySelector('img[src*=\"evil.svg\"]').complete")  # shown as an image
        assert browser.eval("document.querySelectorAll('a.remote-image').length") == 2
        assert browser.eval("document.querySelectorAll('img[src^=\"http\"]').length") == 0
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
