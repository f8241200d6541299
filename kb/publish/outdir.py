"""An export's output folder: paperkb replaces only the files it wrote there itself.

Every folder export (``export site``, ``export markdown``) keeps a manifest in OUT that
records, for each file it wrote, a hash of the bytes it wrote. A later export may replace
or remove a file only when the manifest lists it AND the file still has those bytes:
a file the user added, or edited since, or a link planted in OUT, is left alone and
reported. ``--force`` lets an export write into a folder that holds other files (beside
them), never over them. An export into the vault, or a folder inside it, is refused: its
copies would come back as notes. Writes go through :mod:`paperkb.files` (inside OUT after
resolving links, ``O_EXCL`` temporaries, atomic rename, never through a link).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError
from paperkb.files import replace_file

MAX_MANIFEST_BYTES = 200_000_000  # a 10,000-note site's manifest (search words included) is ~30 MB

# what a manifest without hashes (written before they were recorded) says of a file:
# listed, so paperkb wrote it; its bytes are not checked
UNCHECKED = ""


# what an export publishes of a vault's files: images, PDF, plain data. Never HTML,
# scripts or anything a browser would run as a page; SVG only inside an <img>.
IMAGE_TYPES = frozenset({"png", "jpg", "jpeg", "gif", "webp", "avif", "bmp", "ico"})
PUBLISHED = IMAGE_TYPES | {"pdf", "csv", "tsv", "txt", "json"}


def publishable(rel: str, image: bool = False) -> bool:
    """Whether the vault file ``rel`` (relative, ``/``-separated) may be copied into the
    site: an allowed type, no part of its path a dot-file or dot-folder."""
    parts = rel.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return False
    ext = parts[-1].rsplit(".", 1)[-1].lower() if "." in parts[-1] else ""
    return ext in PUBLISHED or (image and ext == "svg")


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def check_export_folder(out: Path, vault_root: Path, manifest: str, force: bool) -> dict[str, Any]:
    """The previous manifest of ``out`` ({} when there is none); refuses the vault itself,
    a folder inside the vault or holding it, a file, a linked manifest, and a non-empty
    folder paperkb did not write (unless ``force``)."""
    root = Path(vault_root).resolve()
    out_r = Path(out).resolve()
    if out_r == root or root.is_relative_to(out_r):
        raise PaperkbError(f"{out} holds the vault: give an output folder of its own", exit_code=2)
    if out_r.is_relative_to(root):
        raise PaperkbError(
            f"{out} is inside the vault: its copies would be read as notes (give a folder outside the vault)",
            exit_code=2,
        )
    if out.exists() and not out.is_dir():
        raise PaperkbError(f"{out} is a file, not a folder", exit_code=2)
    manifest_path = out / manifest
    if manifest_path.is_symlink():
        raise PaperkbError(f"{manifest_path} is a link, not paperkb's manifest: remove it and export again")
    if manifest_path.is_file():
        try:
            with open(manifest_path, "rb") as fh:
                data = json.loads(fh.read(MAX_MANIFEST_BYTES + 1))
        except (OSError, ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and data.get("generator") == "paperkb":
            return data
        if not force:
            raise PaperkbError(f"{manifest_path} is damaged: use --force to export again (beside what is there)")
        return {}
    if out.is_dir() and any(out.iterdir()) and not force:
        raise PaperkbError(
            f"{out} is not empty and was not written by paperkb: use --force to write beside its files", exit_code=1
        )
    return {}


def owned_hashes(manifest: dict[str, Any], listed: Any) -> dict[str, str]:
    """rel path -> the hash paperkb wrote it with (``UNCHECKED`` for a manifest of an older
    paperkb that listed files without hashes)."""
    hashes = manifest.get("hashes")
    if isinstance(hashes, dict):
        return {k: v for k, v in hashes.items() if isinstance(k, str) and isinstance(v, str)}
    return {k: UNCHECKED for k in (listed or ()) if isinstance(k, str)}


def is_ours(out: Path, rel: str, owned: dict[str, str]) -> bool:
    """Whether ``out/rel`` may be replaced or removed: missing, or a regular file (never a
    link) that paperkb wrote and nobody changed since."""
    path = out / rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or rel not in owned:
        return False
    recorded = owned[rel]
    if recorded == UNCHECKED:
        return True
    try:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
    except OSError:
        return False
    return digest == recorded


def write_owned(out: Path, rel: str, data: str | bytes, owned: dict[str, str]) -> str | None:
    """Write ``out/rel`` if it is free or paperkb's own; its hash, or None when a file
    paperkb did not write is in the way (left as it is)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not is_ours(out, rel, owned):
        return None
    replace_file(out, out / rel, data)
    return content_hash(data)


def remove_owned(out: Path, rel: str, owned: dict[str, str]) -> bool:
    """Remove ``out/rel`` if paperkb wrote it and nobody changed it since."""
    path = out / rel
    if not os.path.lexists(path) or not is_ours(out, rel, owned):
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def in_the_way(rel: str, out: Path) -> str:
    """The warning for a file paperkb left alone."""
    return f"{out / rel}: left as it is (paperkb did not write it, or it changed since): move it and export again"
