"""Named inputs: the user's own checkpoints and data sets, named once per vault.

A ``paper`` preset that needs weights or data names them in its requirements
(``Requirements(inputs=("llama-2-7b",))``); this module declares each name with the form
it must have, reads the vault's ``.paperkb/inputs.yaml`` (name -> local path) and the
``--input NAME=PATH`` overrides, checks each path before anything runs, and fingerprints
the files a run reads (size and SHA-256, cached by path, size and modification time), so
two runs on different weights never look alike. Nothing is ever downloaded: a missing
input reads ``needs the input llama-2-7b (...)`` with where to get it.

``.paperkb/inputs.yaml``::

    llama-2-7b: /models/Llama-2-7b-hf
    lm-eval-tasks: /data/lm-eval-tasks

Paths may be relative (to the vault folder) and start with ``~``. The file is read with
the bounded safe YAML loader of the frontmatter parser; a malformed file gives one line
with the file and line.

Torch-free: ``paperkb inputs`` and the run planner import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError, UsageError

INPUTS_FILE = "inputs.yaml"  # inside the vault's .paperkb/
FINGERPRINTS_FILE = "fingerprints.json"  # the hash cache, inside .paperkb/
MAX_CONFIG_BYTES = 1_000_000  # a config.json / params.json / index larger than this is refused
MAX_FILES = 10_000  # files one input may hold (a data pattern matching more is refused)
MAX_CACHE_ENTRIES = 20_000

# The forms an input can take, and what each must hold.
FORMS = {
    "hf-checkpoint": "a Hugging Face checkpoint folder: config.json, model.safetensors (or an index and its "
    "shards) and tokenizer.json or tokenizer.model",
    "meta-checkpoint": "a checkpoint in Meta's layout: params.json, consolidated.*.pth and tokenizer.model "
    "(in the folder or the one above it)",
    "llama-checkpoint": "a Llama checkpoint folder in Hugging Face or Meta layout",
    "transformer-checkpoint": "a checkpoint of paperkb's Transformer: config.json, model.safetensors and "
    "tokenizer.json (see repro.transformer.checkpoint)",
    "data": "a data folder or file",
}


@dataclass(frozen=True)
class InputSpec:
    """One named input: its form, what it is, and where a user gets it (never fetched here).
    ``pattern`` (for ``data``): a glob the folder must match at least once, e.g. ``*.jsonl``."""

    name: str
    form: str
    description: str
    get: str
    pattern: str = ""

    def needs(self) -> str:
        """The ``needs …`` words for a claim whose run lacks this input."""
        return f"the input {self.name} ({self.description}; {self.get})"


_DECLARED: dict[str, InputSpec] = {}


def declare_input(name: str, form: str, description: str, get: str, pattern: str = "") -> InputSpec:
    """Declare input ``name`` (experiment modules call this beside the presets needing it)."""
    if form not in FORMS:
        raise ValueError(f"input {name!r}: unknown form {form!r} (one of {', '.join(FORMS)})")
    spec = InputSpec(name, form, description, get, pattern)
    old = _DECLARED.get(name)
    if old is not None and old != spec:
        raise ValueError(f"input {name!r} declared twice, differently")
    _DECLARED[name] = spec
    return spec


def declared() -> dict[str, InputSpec]:
    """Every declared input, once the experiment modules are loaded."""
    from repro import registry

    registry.load_all()
    return dict(_DECLARED)


# The paper artefacts the built-in experiments read. Declared here (not in the experiment
# modules) so that `paperkb inputs` lists them even when an area fails to import.
declare_input(
    "llama-2-7b",
    "llama-checkpoint",
    "Meta's Llama 2 7B weights, Hugging Face layout (Llama-2-7b-hf) or Meta's own",
    "request access at llama.meta.com, then download meta-llama/Llama-2-7b-hf with huggingface-cli",
)
declare_input(
    "llama-2-70b",
    "llama-checkpoint",
    "Meta's Llama 2 70B weights, Hugging Face layout (Llama-2-70b-hf) or Meta's own",
    "request access at llama.meta.com, then download meta-llama/Llama-2-70b-hf with huggingface-cli",
)
declare_input(
    "eval-checkpoint",
    "hf-checkpoint",
    "any Llama checkpoint in Hugging Face layout to evaluate at small scale (a toy model will do)",
    "write one with repro.llama.weights.save_hf, or point it at a downloaded model",
)
declare_input(
    "lm-eval-tasks",
    "data",
    "a folder of lm-evaluation-harness task YAML files whose data files are on disk",
    "write task YAMLs with dataset_path: json and local data_files (the benchmark data fetched beforehand)",
    pattern="*.yaml",
)

# The Transformer's BLEU claims (repro.transformer.translation): our model's checkpoint and a test set.
_TRAIN = (
    "train our Transformer big with `python -m repro.transformer.translate train --config big` on the WMT14 "
    "{pair} training data ({size}): a cluster job, 3.5 days on 8 P100 GPUs in the paper (docs/reproducing.md)"
)
_NEWSTEST = (
    "a folder with newstest2014.en and newstest2014.{tgt}, one sentence a line (3003 lines): "
    "`sacrebleu -t wmt14/full -l en-{tgt} --echo src > newstest2014.en` and `--echo ref > newstest2014.{tgt}`"
)
declare_input(
    "transformer-big-en-de",
    "transformer-checkpoint",
    "our Transformer big trained on WMT14 English-German",
    _TRAIN.format(pair="English-German", size="4.5M sentence pairs"),
)
declare_input(
    "transformer-big-en-fr",
    "transformer-checkpoint",
    "our Transformer big trained on WMT14 English-French",
    _TRAIN.format(pair="English-French", size="36M sentence pairs"),
)
declare_input(
    "wmt14-en-de-newstest2014",
    "data",
    "the WMT14 English-German test set newstest2014",
    _NEWSTEST.format(tgt="de"),
    pattern="*.de",
)
declare_input(
    "wmt14-en-fr-newstest2014",
    "data",
    "the WMT14 English-French test set newstest2014",
    _NEWSTEST.format(tgt="fr"),
    pattern="*.fr",
)
declare_input(
    "translation-checkpoint",
    "transformer-checkpoint",
    "any checkpoint of our Transformer to score at small scale (a toy one will do)",
    "write one with `python -m repro.transformer.translate train` on a small parallel corpus",
)
declare_input(
    "translation-test-set",
    "data",
    "a test set for that checkpoint: a folder with <name>.<source language> and <name>.<target language>",
    "two files of the same number of lines, sources and their reference translations",
)


# --------------------------------------------------------------------------------------
# The vault's inputs.yaml and --input overrides
# --------------------------------------------------------------------------------------
def inputs_file(vault: Path | str) -> Path:
    return Path(vault) / ".paperkb" / INPUTS_FILE


def load_inputs(vault: Path | str, overrides: Iterable[str] = ()) -> dict[str, str]:
    """name -> absolute path: the vault's ``.paperkb/inputs.yaml``, then ``--input
    NAME=PATH`` items (relative paths there are relative to the working folder)."""
    table = read_inputs_file(vault)
    for item in overrides:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise UsageError(f"--input expects NAME=PATH, got {item!r}")
        known = declared()
        if name not in known:
            raise UsageError(f"--input {name}: no experiment declares that input (known: {', '.join(sorted(known))})")
        table[name] = str(Path(os.path.expanduser(path)).absolute())
    return table


def read_inputs_file(vault: Path | str) -> dict[str, str]:
    """The vault's inputs.yaml as name -> absolute path ({} when there is none)."""
    from kb.frontmatter import load_frontmatter

    path = inputs_file(vault)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PaperkbError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise PaperkbError(f"{path}: too large ({len(raw)} bytes) for a list of inputs")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PaperkbError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if text.lstrip().startswith("---"):
        text = text.lstrip()[3:]
    table, _fmt, issues = load_frontmatter(text, first_line=1)
    for line, level, message in issues:
        if level == "error":
            message = message.replace("YAML frontmatter", "YAML").replace("frontmatter", "the file")
            raise PaperkbError(f"{path}:{line}: {message}")
    out: dict[str, str] = {}
    for name, value in table.items():
        if not isinstance(value, str) or not value.strip():
            line = _line_of(text, str(name))
            raise PaperkbError(f"{path}:{line}: input {name!r} must be a path (text), got {value!r}")
        p = Path(os.path.expanduser(value.strip()))
        out[str(name)] = str(p if p.is_absolute() else (Path(vault) / p).absolute())
    return out


def _line_of(text: str, key: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith((f"{key}:", f'"{key}":', f"'{key}':")):
            return i
    return 1


# --------------------------------------------------------------------------------------
# Validation: the form each input declares, checked before anything runs
# --------------------------------------------------------------------------------------
class InputProblem(PaperkbError):
    """An input whose path does not hold what its form asks for."""


def validate(spec: InputSpec, path: str | Path) -> list[Path]:
    """The files of input ``spec`` at ``path`` (those a run reads); raises InputProblem
    with one line naming what is wrong. Reads configs (bounded), never weights."""
    p = Path(path)
    if not p.exists():
        raise InputProblem(f"input {spec.name}: {p} does not exist")
    if spec.form == "data":
        return _data_files(spec, p)
    if not p.is_dir():
        raise InputProblem(f"input {spec.name}: {p} is not a folder ({FORMS[spec.form]})")
    if spec.form == "hf-checkpoint":
        return _hf_files(spec, p)
    if spec.form == "meta-checkpoint":
        return _meta_files(spec, p)
    if spec.form == "transformer-checkpoint":
        from repro.transformer.checkpoint import CheckpointError, files

        try:
            return files(p)
        except CheckpointError as exc:
            raise InputProblem(f"input {spec.name}: {exc}") from None
    # llama-checkpoint: either layout
    if (p / "config.json").is_file():
        return _hf_files(spec, p)
    if (p / "params.json").is_file():
        return _meta_files(spec, p)
    raise InputProblem(
        f"input {spec.name}: {p} has neither config.json (Hugging Face layout) nor params.json (Meta layout)"
    )


def _json_object(spec: InputSpec, path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise InputProblem(f"input {spec.name}: {path} is too large for a config ({size} bytes)")
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputProblem(f"input {spec.name}: {path} is not readable JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(value, dict):
        raise InputProblem(f"input {spec.name}: {path} is not a JSON object")
    return value


def _inside(spec: InputSpec, folder: Path, name: str) -> Path:
    target = (folder / name).resolve()
    if target.parent != folder.resolve():
        raise InputProblem(f"input {spec.name}: {name!r} points outside {folder}")
    return target


def _hf_files(spec: InputSpec, folder: Path) -> list[Path]:
    config = folder / "config.json"
    if not config.is_file():
        raise InputProblem(f"input {spec.name}: {folder} has no config.json ({FORMS['hf-checkpoint']})")
    cfg = _json_object(spec, config)
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if not isinstance(cfg.get(key), int) or isinstance(cfg.get(key), bool):
            raise InputProblem(f"input {spec.name}: {config} has no integer {key!r}")
    files = [config]
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if index.is_file():
        weight_map = _json_object(spec, index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputProblem(f"input {spec.name}: {index} has no weight_map")
        files.append(index)
        for shard in dict.fromkeys(str(v) for v in weight_map.values()):
            shard_path = _inside(spec, folder, shard)
            if not shard_path.is_file():
                raise InputProblem(f"input {spec.name}: shard {shard} named by {index.name} is missing")
            files.append(shard_path)
    elif single.is_file():
        files.append(single)
    else:
        raise InputProblem(f"input {spec.name}: {folder} has no model.safetensors or model.safetensors.index.json")
    tokenizer = [folder / n for n in ("tokenizer.json", "tokenizer.model") if (folder / n).is_file()]
    if not tokenizer:
        raise InputProblem(f"input {spec.name}: {folder} has no tokenizer.json or tokenizer.model")
    return files + tokenizer


def _meta_files(spec: InputSpec, folder: Path) -> list[Path]:
    params = folder / "params.json"
    if not params.is_file():
        raise InputProblem(f"input {spec.name}: {folder} has no params.json ({FORMS['meta-checkpoint']})")
    cfg = _json_object(spec, params)
    for key in ("dim", "n_layers", "n_heads"):
        if not isinstance(cfg.get(key), int) or isinstance(cfg.get(key), bool):
            raise InputProblem(f"input {spec.name}: {params} has no integer {key!r}")
    shards = sorted(folder.glob("consolidated.*.pth"))
    if not shards:
        raise InputProblem(f"input {spec.name}: {folder} has no consolidated.*.pth")
    tokenizer = next(
        (d / "tokenizer.model" for d in (folder, folder.parent) if (d / "tokenizer.model").is_file()), None
    )
    if tokenizer is None:
        raise InputProblem(f"input {spec.name}: no tokenizer.model in {folder} or the folder above it")
    return [params, *shards, tokenizer]


def _data_files(spec: InputSpec, path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputProblem(f"input {spec.name}: {path} is neither a file nor a folder")
    pattern = spec.pattern or "*"
    files: list[Path] = []  # every file below it: the task YAMLs and the data files they read
    for f in sorted(path.rglob("*")):
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts):
            files.append(f)
        if len(files) > MAX_FILES:
            raise InputProblem(f"input {spec.name}: {path} holds more than {MAX_FILES} files")
    if not any(f.relative_to(path).match(pattern) for f in files):
        raise InputProblem(f"input {spec.name}: {path} has no file matching {pattern}")
    return files


# --------------------------------------------------------------------------------------
# Fingerprints: size and SHA-256 of the files read, computed once per file version
# --------------------------------------------------------------------------------------
def fingerprint(files: list[Path], cache_dir: Path | str | None = None) -> dict[str, Any]:
    """``{"sha256", "bytes", "files"}`` over ``files`` (names, sizes and contents). Each
    file's hash is cached in ``cache_dir/fingerprints.json`` under its path, size and
    modification time, so a 13 GB checkpoint is read once, not on every run."""
    cache_path = Path(cache_dir) / FINGERPRINTS_FILE if cache_dir is not None else None
    cache = _read_cache(cache_path)
    changed = False
    whole = hashlib.sha256()
    total = 0
    root = os.path.commonpath([str(f.parent) for f in files]) if files else ""
    for f in sorted(files):
        st = f.stat()
        key = str(f.resolve())
        entry = cache.get(key)
        if not (
            isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        ):
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _file_sha256(f), "at": time.time()}
            cache[key] = entry
            changed = True
        total += st.st_size
        rel = os.path.relpath(f, root) if root else f.name
        whole.update(f"{rel}\0{st.st_size}\0{entry['sha256']}\n".encode())
    if changed and cache_path is not None:
        _write_cache(cache_path, cache)
    return {"sha256": whole.hexdigest(), "bytes": total, "files": len(files)}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _read_cache(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a lost or damaged cache only costs a re-hash
    return value if isinstance(value, dict) else {}


def _write_cache(path: Path, cache: dict[str, Any]) -> None:
    if len(cache) > MAX_CACHE_ENTRIES:  # keep the newest entries
        newest = sorted(cache.items(), key=lambda kv: -float(kv[1].get("at") or 0) if isinstance(kv[1], dict) else 0)
        cache = dict(newest[:MAX_CACHE_ENTRIES])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new cache
    except OSError:
        tmp.unlink(missing_ok=True)


def record(names: Iterable[str], table: dict[str, str], cache_dir: Path | str | None) -> dict[str, dict[str, Any]]:
    """What a run records of its inputs: name -> ``{"path", "form", "sha256", "bytes", "files"}``."""
    specs = declared()
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = specs[name]
        files = validate(spec, table[name])
        out[name] = {"path": table[name], "form": spec.form, **fingerprint(files, cache_dir)}
    return out


# --------------------------------------------------------------------------------------
# `paperkb inputs`
# --------------------------------------------------------------------------------------
def inputs_table(table: dict[str, str], claims: list[Any]) -> list[dict[str, Any]]:
    """One row per declared input (and per name inputs.yaml sets that nothing declares):
    its form, path here, whether it is present and valid, and the presets and claims needing it."""
    from repro import registry

    specs = declared()
    exps = registry.load_all()
    needed_by: dict[str, list[str]] = {}
    for exp in exps.values():
        for pname, preset in exp.presets.items():
            for name in preset.requires.inputs:
                needed_by.setdefault(name, []).append(f"{exp.id} [{pname}]")
    rows = []
    for name in sorted(set(specs) | set(table)):
        spec = specs.get(name)
        path = table.get(name)
        if spec is None:
            state, problem = "unknown", "no experiment declares this input"
        elif path is None:
            state, problem = "missing", f"get it: {spec.get}"
        else:
            try:
                validate(spec, path)
                state, problem = "valid", ""
            except InputProblem as exc:
                state, problem = "invalid", str(exc).removeprefix(f"input {name}: ")
        exp_ids = {e.split(" [")[0] for e in needed_by.get(name, [])}
        rows.append(
            {
                "name": name,
                "form": spec.form if spec else "",
                "description": spec.description if spec else "",
                "path": path or "",
                "state": state,
                "problem": problem,
                "presets": needed_by.get(name, []),
                "claims": sorted({c.id for c in claims if exp_ids & set(c.experiments)}),
            }
        )
    return rows
