"""Value builders for the export tests: a tiny PNG, a paper note's text. Plain functions taking
arguments (see tests/conftest.py); the vault writer is ``vaultkit.write``, the copy of the bundled
vault the ``bundled_copy`` fixture."""

from __future__ import annotations

import struct
import zlib


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid PNG (a grey rectangle), made without any imaging library."""
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def paper(title: str, key: str, body: str = "", tags: str = "paper", year: int = 2020, extra: str = "") -> str:
    return (f"---\ntags: [{tags}]\naliases: [{key}]\nyear: {year}\nname: \"{title}\"\nauthors: Ann Lee, Bo Chen\n"
            f"{extra}---\n# {title}\n\n{body}\n")
