"""Safe file names and writes for every export that writes more than one file.

A name made from note or run text goes through :func:`safe_file_name` (or :func:`page_name`
for a note's page); a file lands only inside the folder it was meant for (:func:`target`),
and is written whole or not at all by :func:`paperkb.files.replace_file` (a fresh temporary
file in the same folder, then a rename, which replaces a link planted there instead of writing
through it).
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from kb.errors import PaperkbError


@functools.cache
def page_name(path: str) -> str:
    """``folder/My Note.md`` -> ``my-note-1a2b3c4d.html`` (flat, safe, unique per path)."""
    from kb.parse import slugify

    stem = path.rsplit("/", 1)[-1]
    stem = stem[:-3] if stem.lower().endswith(".md") else stem
    slug = slugify(stem)[:60] or "note"
    return f"{slug}-{hashlib.blake2b(path.encode('utf-8', 'replace'), digest_size=4).hexdigest()}.html"


def safe_file_name(name: str) -> str:
    """One path component made of ``[A-Za-z0-9._-]`` only (at most 100 characters)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:100]
    return "file" if name in ("", ".", "..") else name


@functools.lru_cache(maxsize=256)
def real_folder(out: Path, folder: str) -> Path:
    """``out/folder`` with links resolved, checked to be inside ``out`` (cached for the
    length of one export: a site has a handful of folders and 10,000 files in them)."""
    path = (out / folder).resolve() if folder else out
    if not path.is_relative_to(out):
        raise PaperkbError(f"refusing to write into {folder!r}: outside {out}")
    return path


def target(out: Path, rel: str) -> Path:
    """Where ``rel`` is written under the (resolved) folder ``out``; refuses anything that
    would land outside it."""
    folder, _, name = rel.rpartition("/")
    if name in ("", ".", "..") or "\x00" in rel:
        raise PaperkbError(f"refusing to write {rel!r}: not a file name")
    path = real_folder(out, folder) / name
    if path.is_symlink():  # a link planted in the output folder: follow it only inside
        real = path.resolve()
        if not real.is_relative_to(out):
            raise PaperkbError(f"refusing to write {rel!r}: outside {out}")
    return path
