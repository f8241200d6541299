"""``paperkb watch``: keep the index (and a static site) current while the user edits.

Built on `watchfiles <https://watchfiles.helpmanual.io>`_ (the Rust ``notify`` crate:
inotify, FSEvents, ReadDirectoryChangesW; or polling with ``poll=True`` for network and
other slow disks where events do not arrive). What it does:

* one update first (the index, and the site when asked), so that it starts current;
* then it waits for changes in the vault: notes and attachments, the vault's rules
  (``.paperkb/papers.yaml``, ``.paperkb/templates/``); not paperkb's own files
  (``.paperkb/`` otherwise), Obsidian's workspace (``.obsidian/``), other hidden
  folders, editors' swap and backup files, nor the site's own folder;
* changes that arrive together (a burst of saves, a folder renamed, a sync tool
  writing many files) are gathered for ``debounce_ms`` and handled by one incremental
  update; changes made while an update runs are kept for the next one, so a slow
  disk only makes updates less frequent, never lost;
* renames and deletions need nothing special: each update compares the files on disk
  with the index (``kb.index.update``), so whatever the events said, the index ends as
  the disk is;
* a failing update (a broken ``papers.yaml``, a full disk) is reported in one line and
  watching goes on; the next change tries again.

It stops when ``stop`` is set (tests, embedding code) or on Ctrl-C (KeyboardInterrupt,
which the CLI turns into exit status 130).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError

# Files editors write beside the real ones while saving.
_EDITOR_DROPPINGS = (".swp", ".swx", ".swo", "~", ".tmp", ".crswap", ".part", ".paperkb-tmp")
_RULE_FILES = ("papers.yaml", "templates")
_IDLE_MS = 250  # how long the watcher waits before it reports "nothing changed"  # under .paperkb/: they change how notes are read


@dataclass
class WatchUpdate:
    """One update: what changed on disk, what the index did, the site's report."""

    changes: list[str] = field(default_factory=list)  # vault paths the events named
    stats: Any = None  # kb.index.IndexStats
    site: Any = None  # kb.publish.site.SiteReport, with a site
    error: str | None = None  # one line, when the update failed
    seconds: float = 0.0
    first: bool = False  # the update made on start


class VaultFilter:
    """Which changed paths matter to the index (a ``watchfiles`` filter: ``(change, path)``)."""

    def __init__(self, root: Path, ignore: list[Path] | None = None) -> None:
        self.root = os.path.realpath(root)
        self.ignore = [os.path.realpath(p) for p in ignore or []]

    def __call__(self, _change: Any, path: str) -> bool:
        real = os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
        for folder in self.ignore:
            if real == folder or real.startswith(folder + os.sep):
                return False
        rel = os.path.relpath(os.path.abspath(path), self.root)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return False
        parts = rel.split(os.sep)
        if parts[0] == ".paperkb":
            return len(parts) > 1 and parts[1] in _RULE_FILES
        if any(p.startswith(".") for p in parts):
            return False
        name = parts[-1]
        return not (name.endswith(_EDITOR_DROPPINGS) or name.startswith(".#"))


def watch_vault(
    vault: Any,
    *,
    on_update: Callable[[WatchUpdate], None],
    site: Callable[[], Any] | None = None,
    ignore: list[Path] | None = None,
    debounce_ms: int = 300,
    poll: bool = False,
    poll_delay_ms: int = 500,
    stop: threading.Event | None = None,
) -> None:
    """Update ``vault`` (a ``kb.vault.Vault``) now and after every batch of changes until
    ``stop`` is set; ``site()`` (re)writes the static site after each update that changed
    the index. ``on_update`` hears of each update. ``ignore``: folders inside the vault
    whose changes never matter (the site's output folder)."""
    try:
        import watchfiles
    except ImportError:
        raise PaperkbError(
            "paperkb watch needs watchfiles, which is not installed; install it with: pip install watchfiles"
        ) from None
    if debounce_ms < 0 or poll_delay_ms < 1:
        raise PaperkbError("watch: the debounce must be >= 0 ms and the poll delay >= 1 ms")
    root = Path(vault.root)
    changes_of = watchfiles.watch(
        root,
        watch_filter=VaultFilter(root, ignore),
        debounce=max(debounce_ms, 1),
        step=min(50, max(debounce_ms, 1)),
        stop_event=stop,
        force_polling=poll,
        poll_delay_ms=poll_delay_ms,
        # an empty batch now and then: the first one says the watcher is set up, so the
        # update on start runs with it listening (no edit can fall between the two)
        rust_timeout=_IDLE_MS,
        yield_on_timeout=True,
        raise_interrupt=True,
        recursive=True,
        ignore_permission_denied=True,
    )
    started = False
    for batch in changes_of:
        if not started:
            started = True
            on_update(_update(vault, site, [], first=True))
        if batch:
            paths = sorted({_shown(root, p) for _, p in batch})
            on_update(_update(vault, site, paths))
        if stop is not None and stop.is_set():
            return


def _update(vault: Any, site: Callable[[], Any] | None, paths: list[str], *, first: bool = False) -> WatchUpdate:
    start = time.perf_counter()
    update = WatchUpdate(changes=paths, first=first)
    try:
        update.stats = vault.index()
        if site is not None and (first or update.stats.changed or update.stats.rebuilt):
            update.site = site()
    except PaperkbError as exc:
        update.error = str(exc)
    except OSError as exc:
        update.error = f"{exc.filename or vault.root}: {exc.strerror or exc}"
    update.seconds = time.perf_counter() - start
    return update


def _shown(root: Path, path: str) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path
