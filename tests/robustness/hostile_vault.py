"""A small hostile vault: one file for each way a vault has broken paperkb before."""

from __future__ import annotations

import os
from pathlib import Path

LATIN1_LINES = 40


def build(root: Path) -> Path:
    """Write the hostile vault under ``root`` (created) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        "Note.md": b"# Note\n\nThe exact spelling.\n",
        "note.md": b"# note\n\nThe lower-case twin.\n",
        "linker.md": b"# Linker\n\nSee [[Note]] and [[Missing One]].\n",
        # Latin-1: bad UTF-8 on every other line
        "latin1.md": b"".join((b"caf\xe9 line %d\n" % i) if i % 2 else (b"plain line %d\n" % i)
                              for i in range(1, LATIN1_LINES + 1)),
        "dupkeys.md": b"---\ntitle: First\nyear: 2020\ntitle: Second\n---\n# Dup\n",
        "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "empty.md": b"",
        "bom-crlf.md": b"\xef\xbb\xbf---\r\ntitle: Windows\r\n---\r\nBody [[Note]]\r\n",
        "escapes.md": b"---\ntitle: \"\\e]0;PWNED\\a\\e[2J\"\n---\n# \x1b[31mRed\x1b[0m\n",
        "bomb.md": b"---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n---\n",
        "deep.md": b"---\nx: " + b"[" * 5000 + b"\n---\n" + b"> " * 2000 + b"quote\n",
        "long-line.md": b"# Long\n\n" + b"word " * 200_000 + b"\n",
        "python-tag.md": b"---\nx: !!python/object/apply:os.system ['echo PWNED']\n---\n",
        # issue 23: links to what a site must not publish, a remote image, a summary-escape title,
        # a CSV formula, params nested past the limit, an export copied back into the vault
        "publish.md": b"# T `<img src=x onerror=alert(1)>` end\n\n[h](evil.html) [s](evil.svg) [e](.env) "
                      b"![[evil.svg]] ![p](https://tracker.invalid/p.png)\nnote:: =HYPERLINK(\"http://x.invalid\")\n\n"
                      b"> [!claim] deep params\n> params:: x=" + b"[" * 500 + b"]" * 500 + b"\n",
        "evil.html": b"<script>alert(1)</script>",
        "evil.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        ".env": b"SECRET=1",
        "exported.md": b"---\naliases: [Note]\npaperkb-export: markdown\n---\n# Note\n\n[[Missing Two]]\n",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    (root / "folder.md").mkdir(exist_ok=True)  # a folder whose name ends in .md
    outside = root.parent / (root.name + "-outside.md")
    outside.write_bytes(b"# Outside\n\nSECRET\n")
    _symlink(outside, root / "outside-link.md")
    if hasattr(os, "mkfifo"):
        fifo = root / "pipe"
        if not fifo.exists():
            os.mkfifo(fifo)
        _symlink(Path("pipe"), root / "fifo-link.md")
        fifo_md = root / "fifo.md"
        if not fifo_md.exists():
            os.mkfifo(fifo_md)
    _symlink(Path("nowhere.md"), root / "dangling.md")
    return root


def _symlink(target: Path, link: Path) -> None:
    if not link.is_symlink():
        os.symlink(target, link)
