"""Where paperkb may write and what it may read: one place for every file name and file.

Notes, .bib files, configs and checkpoints are untrusted, so every name built from their
text goes through :func:`safe_component` (one path component, never a folder, never a
dot-file; :func:`ascii_component` where the name must also be a plain URL part), every file of
an export is placed with :func:`target`, every write goes through :func:`write_new` or
:func:`replace_file` (checked to
land inside its root after resolving links, never following a link at the file itself,
temporaries made with ``O_EXCL`` and renamed into place), and every file paperkb is
given to read goes through :func:`read_regular` (a regular file, under a size limit, so
that ``/dev/zero`` or a FIFO neither fills memory nor hangs).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
import tempfile
import unicodedata
from pathlib import Path

from paperkb.errors import PaperkbError

# characters no file name built from untrusted text may keep: path separators, the
# characters Windows, Obsidian or a shell treat specially, and every control character
_UNSAFE = re.compile(r'[*?"<>|#^\[\]\x00-\x1f\x7f]+')
# names Windows reserves whatever the extension (a vault is often synced to Windows)
_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")
MAX_COMPONENT_BYTES = 200  # under every common file system's 255-byte limit, room for " (key).md"

DEFAULT_READ_LIMIT = 50_000_000  # bytes: no .bib, CSV or config paperkb reads is larger


def safe_component(text: str, fallback: str = "untitled", *, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """``text`` made into ONE safe file-name component (no extension is added).

    Separators become ``-``, other special and control characters go, ``:`` becomes `` - `` (as Obsidian
    names ``A: B``), whitespace is collapsed, leading dots and trailing dots or spaces go
    (no dot-files, no ``.``/``..``), reserved device names get a ``_`` and the result is
    cut to ``max_bytes`` of UTF-8. Empty results become ``fallback`` (itself made safe).

        >>> safe_component("../../escape1")
        'escape1'
        >>> safe_component("Attention: all you need")
        'Attention - all you need'
    """
    return _clean(text, max_bytes) or _clean(fallback, max_bytes) or "untitled"


def _clean(text: str, max_bytes: int) -> str:
    name = unicodedata.normalize("NFC", str(text))
    name = re.sub(r"\s*:\s*", " - ", name)
    name = re.sub(r"[\\/]+", "-", " ".join(name.split()))  # separators -> "-", whitespace collapsed
    name = _UNSAFE.sub("", name)
    name = re.sub(r"-{2,}", "-", name).strip(" .-")
    encoded = name.encode("utf-8")
    if len(encoded) > max_bytes:
        name = encoded[:max_bytes].decode("utf-8", "ignore").rstrip(" .-")
    if _RESERVED.fullmatch(name):
        name = "_" + name
    return name


def ascii_component(name: str, max_chars: int = 100) -> str:
    """One path component made of ``[A-Za-z0-9._-]`` only (at most ``max_chars``): a file an
    export links to by URL (a site's attachments and plots, a summary's pictures)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:max_chars]
    return "file" if name in ("", ".", "..") else name


@functools.lru_cache(maxsize=256)
def real_folder(out: Path, folder: str) -> Path:
    """``out/folder`` (``out`` resolved already) with links resolved, checked to be inside
    ``out``. Cached for the length of one export (a site has a handful of folders and 10,000
    files in them): an export that starts calls ``real_folder.cache_clear()``."""
    path = (out / folder).resolve() if folder else out
    if not path.is_relative_to(out):
        raise PaperkbError(f"refusing to write into {folder!r}: outside {out}")
    return path


def target(out: Path, rel: str, *, links_inside_only: bool = False) -> Path:
    """Where the export file ``rel`` (``/``-separated) goes under the resolved folder ``out``;
    refuses a name that is no file name and a folder outside ``out``. A link already at the
    file is left to the writer (:func:`replace_file` replaces it, never writes through it);
    ``links_inside_only`` refuses one that points outside ``out`` as well."""
    folder, _, name = rel.rpartition("/")
    if name in ("", ".", "..") or "\x00" in rel:
        raise PaperkbError(f"refusing to write {rel!r}: not a file name")
    path = real_folder(out, folder) / name
    if links_inside_only and path.is_symlink() and not path.resolve().is_relative_to(out):
        raise PaperkbError(f"refusing to write {rel!r}: outside {out}")
    return path


def inside(root: Path | str, path: Path | str) -> Path:
    """``path`` resolved (links followed), checked to lie inside ``root`` (also resolved);
    a PaperkbError otherwise."""
    root_r = Path(root).resolve()
    real = (root_r / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if real != root_r and not real.is_relative_to(root_r):
        raise PaperkbError(f"refusing to write {path}: outside {root}")
    return real


def _folder(root: Path | str, path: Path) -> Path:
    """The real folder ``path`` is written into, created when missing, checked inside ``root``."""
    parent = inside(root, path.parent)
    parent.mkdir(parents=True, exist_ok=True)
    inside(root, parent)  # a link planted while the folders were made
    return parent


def write_new(root: Path | str, path: Path | str, data: str | bytes) -> Path:
    """Create ``path`` (inside ``root``) with ``data``; never replaces anything and never
    follows a link (``O_CREAT | O_EXCL``). Raises ``FileExistsError`` when the name is
    taken, PaperkbError when it would land outside ``root``."""
    path = Path(path) if Path(path).is_absolute() else Path(root) / path
    target = _folder(root, path) / path.name
    if isinstance(data, str):
        data = data.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags, 0o666)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
    os.close(fd)
    return target


def replace_file(root: Path | str, path: Path | str, data: str | bytes) -> Path:
    """Write ``path`` (inside ``root``) whole or not at all: a temporary made with
    ``O_EXCL`` beside it (``mkstemp``), then an atomic rename. A link at ``path`` is
    replaced by the file, never written through; a folder there is refused."""
    path = Path(path) if Path(path).is_absolute() else Path(root) / path
    folder = _folder(root, path)
    target = folder / path.name
    if target.is_dir() and not target.is_symlink():
        raise PaperkbError(f"cannot write {path}: a folder is in the way")
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".paperkb-tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)  # rename(2) replaces a link itself, not what it points to
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def copy_file(root: Path | str, path: Path | str, source: Path | str, limit: int = 1 << 31) -> Path:
    """``replace_file`` with the bytes of ``source`` (a regular file, up to ``limit`` bytes)."""
    return replace_file(root, path, read_regular(source, limit))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_regular(path: Path | str, limit: int = DEFAULT_READ_LIMIT, what: str = "") -> bytes:
    """The bytes of ``path``, only if it is a regular file of at most ``limit`` bytes.

    Opened without blocking (a FIFO does not hang), checked with ``fstat`` on the open
    descriptor (no race with a swapped name), read up to ``limit + 1`` bytes (a file that
    grows, or lies about its size, is still refused). Errors are one PaperkbError line."""
    shown = f"{what} {path}".strip()
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise PaperkbError(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PaperkbError(f"cannot read {shown}: not a regular file")
        if info.st_size > limit:
            raise PaperkbError(f"cannot read {shown}: {info.st_size:,} bytes is over the {limit:,}-byte limit")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise PaperkbError(f"cannot read {shown}: over the {limit:,}-byte limit")
        return b"".join(chunks)
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            raise PaperkbError(f"cannot read {shown}: not a regular file") from None
        raise PaperkbError(f"cannot read {shown}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


__all__ = [
    "safe_component",
    "ascii_component",
    "real_folder",
    "target",
    "inside",
    "write_new",
    "replace_file",
    "copy_file",
    "read_regular",
    "DEFAULT_READ_LIMIT",
]
