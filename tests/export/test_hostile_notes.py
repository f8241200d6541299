"""Notes are untrusted: whatever a note says, exports stay inert and inside their folders."""

from __future__ import annotations

import os
import re

import pytest
from exportkit import tiny_png
from vaultkit import write

from kb.publish.markdown import export_markdown
from kb.publish.site import export_site, page_name
from kb.publish.summary import write_summary
from kb.vault import Vault

EVIL = '''---
name: "Evil <script>alert('title')</script>"
tags: [paper]
aliases: [evilNote2024]
authors: "<img src=x onerror=alert(1)>, Bob"
DOI: "10.1/x\\"><script>alert(2)</script>"
url: "javascript:alert(3)"
---
# Evil

<script>alert('body')</script>
<img src=x onerror="alert(4)">
<a href="javascript:alert(5)">click</a>

[md link](javascript:alert(6)) [data](data:text/html;base64,PHNjcmlwdD4=) [file](file:///etc/passwd)
[escape](../../outside.md) ![img](../../secret.png) ![[../../secret.png]] ![[/etc/passwd]] ![[linked.png]]
[[Target|<b onmouseover=alert(7)>x</b>]] #tag<svg/onload=alert(8)>

> [!note<script>] Title <iframe src=javascript:alert(9)>
> body

> [!claim] Claim <script>alert(10)</script>
> experiment:: x/y

^evil-claim

```js
</code></pre><script>alert(11)</script>
```
'''


@pytest.fixture
def hostile_vault(tmp_path):
    outside = tmp_path / "outside"
    write(outside, {"secret.png": tiny_png(), "outside.md": "secret"})
    root = tmp_path / "vault"
    write(root, {"Evil.md": EVIL, "Target.md": "---\ntags: [paper]\n---\n# Target\n"})
    try:
        os.symlink(outside / "secret.png", root / "linked.png")
    except OSError:
        pass
    return root


def _live_html(text: str) -> list[str]:
    """Markup that would run script or leave the site: script tags, event handlers,
    javascript:/data:/file: URLs, iframes, links climbing out of the folder."""
    bad = []
    for pattern in (r"<script(?![^>]*src=\"(\.\./)?(assets/site\.js|search-index\.js)\")", r"<iframe", r"<svg/onload",
                    r"\son\w+\s*=", r"(href|src)=\"\s*(javascript|data:text|file):", r"(href|src)=\"(\.\./){2,}",
                    r"(href|src)=\"/etc"):
        for m in re.finditer(pattern, text, re.I):
            if pattern.startswith(r"\son") and not _inside_tag(text, m.start()):
                continue
            bad.append(text[max(0, m.start() - 40):m.end() + 40])
    return bad


def _inside_tag(text: str, pos: int) -> bool:
    return text.rfind("<", 0, pos) > text.rfind(">", 0, pos)


def test_site_renders_hostile_note_inert(tmp_path, hostile_vault):
    out = tmp_path / "site"
    report = export_site(Vault(hostile_vault), out, workers=1)
    page = (out / "notes" / page_name("Evil.md")).read_text(encoding="utf-8")
    assert _live_html(page) == []
    assert "&lt;script&gt;alert(&#x27;body&#x27;)&lt;/script&gt;" in page  # shown as text
    for f in out.rglob("*.html"):
        assert _live_html(f.read_text(encoding="utf-8")) == [], f
    # nothing from outside the vault was copied; the refusals are reported
    assert not any("secret" in p.name for p in out.rglob("*"))
    assert any("secret.png" in w for w in report.warnings)
    assert any("linked.png" in w for w in report.warnings) or not (hostile_vault / "linked.png").is_symlink()
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
    search = (out / "search-index.js").read_text(encoding="utf-8")
    assert "</script>" not in search.lower() and "<script" not in search.lower()  # ASCII-escaped JSON


def test_summary_html_and_markdown_are_inert(tmp_path, hostile_vault):
    html = write_summary(hostile_vault, fmt="html")
    assert _live_html(html) == []
    assert "Evil &lt;script&gt;" in html
    md = write_summary(hostile_vault)
    assert "<script" not in md and "<img" not in md and "](javascript:" not in md


def test_markdown_export_keeps_links_inside(tmp_path, hostile_vault):
    out = tmp_path / "plain"
    report = export_markdown(Vault(hostile_vault), out)
    text = (out / "Evil.md").read_text(encoding="utf-8")
    assert "paperkb-export: markdown" in text
    assert "](../../secret.png)" not in text.replace("![img](../../secret.png)", "")  # wikilink embed not rewritten out
    assert not any("secret" in p.name for p in out.rglob("*"))
    assert any("linked.png" in w for w in report.warnings) or not (hostile_vault / "linked.png").is_symlink()
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
