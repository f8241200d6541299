"""What a run needs recorded to be rerun: code version, software, machine, command line.

``capture()`` runs in the paperkb process (torch-free, about 0.1 s): git commit, dirty flag
and diff of the paperkb source tree, Python, every installed distribution's version, CPU
model, RAM, host name and the command line. ``torch_environment()`` runs in the child
process, which imports torch anyway: torch/CUDA/cuDNN versions and the device's name and
memory. The runner merges both into the run's ``environment``.

The diff (tracked changes against HEAD, plus untracked source files as "new file"
hunks) is returned separately so the runner can store it as the ``git.diff`` artifact.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the paperkb checkout (repro/..)
_UNTRACKED_SUFFIXES = {".py", ".toml", ".cfg", ".ini", ".txt", ".md", ".yaml", ".yml", ".json", ".sh"}
_UNTRACKED_MAX_BYTES = 2_000_000


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=20,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", "replace")


def git_state(root: Path = SOURCE_ROOT) -> tuple[dict[str, Any], str]:
    """(``{"commit", "branch", "dirty", "untracked"}``, diff text). Commit is None outside git."""
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None:
        return {"commit": None, "branch": None, "dirty": None, "untracked": []}, ""
    top_path = Path(top.strip())
    commit = (_git(["rev-parse", "HEAD"], top_path) or "").strip() or None
    branch = (_git(["rev-parse", "--abbrev-ref", "HEAD"], top_path) or "").strip() or None
    diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff"], top_path) or ""
    others = _git(["ls-files", "--others", "--exclude-standard", "-z"], top_path) or ""
    untracked = sorted(p for p in others.split("\0") if p)
    diff += _untracked_patch(top_path, untracked)
    info = {"commit": commit, "branch": branch, "dirty": bool(diff.strip()) or bool(untracked), "untracked": untracked}
    return info, diff


def _untracked_patch(top: Path, names: list[str]) -> str:
    """Untracked source files as git "new file" hunks (``git apply`` recreates them)."""
    parts: list[str] = []
    budget = _UNTRACKED_MAX_BYTES
    for name in names:
        path = top / name
        if path.suffix.lower() not in _UNTRACKED_SUFFIXES or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if len(data) > budget or b"\0" in data:
            continue
        budget -= len(data)
        text = data.decode("utf-8", "replace")
        lines = text.splitlines()
        if not lines:
            continue
        body = "".join(f"+{line}\n" for line in lines)
        tail = "" if text.endswith("\n") else "\\ No newline at end of file\n"
        parts.append(
            f"diff --git a/{name} b/{name}\nnew file mode 100644\n--- /dev/null\n+++ b/{name}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n{body}{tail}"
        )
    return "".join(parts)


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version (importlib.metadata), sorted by name."""
    from importlib.metadata import distributions

    out: dict[str, str] = {}
    for dist in distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = None
        if name:
            out.setdefault(name, dist.version)
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": None,
    }
    try:
        import psutil

        info["ram_bytes"] = int(psutil.virtual_memory().total)
    except Exception:
        pass
    return info


def capture(argv: list[str] | None = None, source_root: Path = SOURCE_ROOT) -> tuple[dict[str, Any], str]:
    """The environment known to the paperkb process, and the git diff text."""
    git, diff = git_state(source_root)
    env = {
        "git": git,
        "python": {
            "version": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "packages": installed_packages(),
        "machine": machine(),
        "command": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),
    }
    return env, diff


def torch_environment() -> dict[str, Any]:
    """torch/CUDA/cuDNN versions and the visible GPUs; imports torch (child process only)."""
    try:
        import torch
    except Exception as exc:
        return {"torch": {"error": f"{type(exc).__name__}: {exc}"}}
    info: dict[str, Any] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": None,
        "cuda_available": False,
        "devices": [],
        "threads": torch.get_num_threads(),
    }
    try:
        info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:
        pass
    try:
        if torch.cuda.is_available():
            info["cuda_available"] = True
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                info["devices"].append(
                    {
                        "index": i,
                        "name": p.name,
                        "memory_bytes": int(p.total_memory),
                        "capability": f"{p.major}.{p.minor}",
                    }
                )
            info["driver"] = _nvidia_driver()
    except Exception as exc:
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    return {"torch": info}


def _nvidia_driver() -> str | None:
    try:
        return Path("/proc/driver/nvidia/version").read_text().splitlines()[0].strip()
    except OSError:
        return None


# ---- what the machine offers, for refusing unmet requirements before a run -----------
def cuda_probe() -> dict[str, Any]:
    """``{"available", "count", "memory_gb": [..]}``. Without an NVIDIA driver it answers
    at once; with one it asks torch (slow import, but only where a GPU may exist)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "" or not (
        Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()
    ):
        return {"available": False, "count": 0, "memory_gb": []}
    try:
        import torch

        if not torch.cuda.is_available():
            return {"available": False, "count": 0, "memory_gb": []}
        n = torch.cuda.device_count()
        mem = [torch.cuda.get_device_properties(i).total_memory / 2**30 for i in range(n)]
        return {"available": n > 0, "count": n, "memory_gb": mem}
    except Exception:
        return {"available": False, "count": 0, "memory_gb": []}


def triton_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None
