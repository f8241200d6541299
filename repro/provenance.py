"""Where an experiment's code comes from, recorded with each run beside paperkb's own git state.

For an experiment of a third-party package (registered through the ``paperkb.experiments``
entry points): the distribution that provides its module, its version, how it was
installed (``editable`` or a plain copy, from a local folder, a VCS URL or an index, as
pip's ``direct_url.json`` says), and when its code lives in a git checkout, that
checkout's commit, branch and dirty state:

* installed editable (``pip install -e``): the module's own folder is the checkout;
* installed from a local folder (``pip install ./checkout``): the folder pip installed
  from, read now (``"read_at": "run"``: it may have moved on since the install; the
  installed copy itself is not in git);
* installed from a VCS URL (``pip install git+https://...@commit``): the commit pip
  recorded at install time.

Built-in experiments (``repro.*``) need none of this: paperkb's own git state is in the
environment already. Torch-free and quick (one ``git`` call per checkout, cached).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


def experiment_source(exp_id: str) -> dict[str, Any] | None:
    """The provenance of experiment ``exp_id``'s code, or None for paperkb's own."""
    from repro import registry

    try:
        exp = registry.get(exp_id)
    except registry.RegistryError:
        return None
    return module_source(exp.module)


@functools.lru_cache(maxsize=64)
def module_source(module: str) -> dict[str, Any] | None:
    top = module.split(".", 1)[0]
    if top in ("repro", "kb", "cli", "paperkb"):
        return None
    info: dict[str, Any] = {"module": module, "package": None, "version": None, "install": None, "git": None}
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    info["path"] = str(Path(file).resolve().parent) if file else None
    dist = _distribution_of(top)
    if dist is not None:
        info["package"] = dist.metadata["Name"]
        info["version"] = dist.version
        info["install"] = _install(dist)
    install = info["install"] or {}
    if install.get("folder") and install.get("kind") == "folder":
        git = _git_of(install["folder"])
        if git is not None:
            info["git"] = {**git, "read_at": "run", "where": "installed from " + install["folder"]}
    elif install.get("kind") == "vcs" and install.get("vcs_commit"):
        info["git"] = {
            "commit": install["vcs_commit"],
            "dirty": None,
            "read_at": "install",
            "where": install.get("url"),
        }
    elif info["path"] and not {"site-packages", "dist-packages"} & set(Path(info["path"]).parts):
        # an editable install, or a checkout on PYTHONPATH: the code runs from the checkout
        git = _git_of(info["path"])
        if git is not None:
            info["git"] = {**git, "read_at": "run", "where": "module folder"}
    return info


def _distribution_of(top: str):
    from importlib import metadata

    try:
        names = metadata.packages_distributions().get(top) or []
    except Exception:
        names = []
    for name in names:
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _install(dist) -> dict[str, Any]:
    """What pip's ``direct_url.json`` (PEP 610) says of the install; index installs have none."""
    try:
        raw = dist.read_text("direct_url.json")
    except Exception:
        raw = None
    if not raw:
        return {"kind": "index"}
    try:
        data = json.loads(raw)
    except ValueError:
        return {"kind": "unknown"}
    url = str(data.get("url") or "")
    out: dict[str, Any] = {"url": url}
    if "vcs_info" in data:
        out["kind"] = "vcs"
        out["vcs_commit"] = (data.get("vcs_info") or {}).get("commit_id")
    elif "dir_info" in data:
        out["kind"] = "editable" if (data.get("dir_info") or {}).get("editable") else "folder"
        parsed = urlparse(url)
        if parsed.scheme == "file":
            out["folder"] = unquote(parsed.path)
    else:
        out["kind"] = "archive"
    return out


@functools.lru_cache(maxsize=32)
def _git_of(folder: str) -> dict[str, Any] | None:
    from repro.environment import git_state

    if not Path(folder).is_dir():
        return None
    state, _diff = git_state(Path(folder))
    if state.get("commit") is None:
        return None
    return {"commit": state["commit"], "branch": state["branch"], "dirty": state["dirty"]}
