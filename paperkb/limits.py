"""Bounds a command line or a note cannot lift: processes and seeds (the machine's), memory.

Every check is a usage error (exit status 2) or a one-line error before anything starts.
"""

from __future__ import annotations

import os
import re

from paperkb.errors import PaperkbError, UsageError

MAX_SEED = 2**63 - 1  # what SQLite's INTEGER and torch.manual_seed both hold


def check_nproc(nproc: int, option: str = "--nproc") -> int:
    """``nproc`` if it is from 1 to this machine's CPU count (each worker is a process);
    else a usage error."""
    cpus = os.cpu_count() or 1
    if nproc < 1:
        raise UsageError(f"{option} must be at least 1, not {nproc}")
    if nproc > cpus:
        raise UsageError(f"{option} must be at most {cpus} (this machine's CPUs), not {nproc}")
    return nproc


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or less under a cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.I)


def parse_memory(text: str, option: str = "--max-memory") -> int:
    """``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"1000000"`` -> bytes (binary units); else a usage error."""
    m = _SIZE.fullmatch(str(text))
    if not m:
        raise UsageError(f"{option} takes a size such as 8G, 512M or 1.5GiB, not {text!r}")
    value = float(m.group(1))
    if m.group(2):
        value *= 1024 ** ("kmgt".index(m.group(2).lower()) + 1)
    if value < 1:
        raise UsageError(f"{option} must be more than 0, not {text!r}")
    return int(value)


def check_memory(estimate: int, limit: int | None, what: str) -> None:
    """Refuse (one line) to start ``what`` when its estimated peak memory exceeds ``limit``
    (default: this machine's memory)."""
    cap = limit if limit is not None else machine_memory()
    if estimate > cap:
        source = "--max-memory" if limit is not None else "this machine's memory"
        raise PaperkbError(
            f"{what} would need about {human_bytes(estimate)} of memory, more than {source} ({human_bytes(cap)}): "
            "refused before starting (smaller parameters, or a larger --max-memory)"
        )


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


__all__ = ["MAX_SEED", "check_nproc", "machine_memory", "parse_memory", "check_memory"]
