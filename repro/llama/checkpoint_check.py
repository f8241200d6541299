"""A checkpoint folder checked before anything is built from it (issue 23, item 13).

A checkpoint is untrusted: its ``config.json`` / ``params.json`` could ask for a billion
positions, 200,000 layers or a hidden size of ``"abc"``, its index could map tensors to
files outside the folder, a safetensors header could lie about its length or offsets.
Everything here runs before a tensor is allocated: configs are read as regular files of
bounded size, checked for types, ranges and consistency; the model's memory is estimated
from them and refused above the machine's (or ``max_memory``); safetensors headers are
read and checked by hand (8-byte length, JSON, dtypes, shapes, offsets inside the file).
Every problem is one line naming the file.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError
from paperkb.files import read_regular
from paperkb.limits import check_memory

MAX_CONFIG_BYTES = 1_000_000
MAX_INDEX_BYTES = 50_000_000
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
MAX_TENSORS = 100_000

# field -> (smallest, largest): far above any published Llama, far below what breaks a machine
INT_FIELDS = {
    "hidden_size": (2, 1 << 16),
    "num_hidden_layers": (1, 1024),
    "num_attention_heads": (1, 1024),
    "num_key_value_heads": (1, 1024),
    "vocab_size": (1, 1 << 21),
    "intermediate_size": (1, 1 << 20),
    "max_position_embeddings": (1, 1 << 20),
    "head_dim": (2, 1 << 12),
}
META_FIELDS = {  # params.json's names for the same
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "vocab_size": "vocab_size",
    "ffn_hidden_dim": "intermediate_size",
    "max_seq_len": "max_position_embeddings",
    "multiple_of": "intermediate_size",
}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_json_object(path: Path, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """The JSON object in ``path`` (a regular file of at most ``limit`` bytes)."""
    data = read_regular(path, limit)
    try:
        value = json.loads(data.decode("utf-8", "strict"))
    except (ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else f"bad JSON ({str(exc).splitlines()[0]})"
        raise PaperkbError(f"{path}: {why}") from None
    if not isinstance(value, dict):
        raise PaperkbError(f"{path}: expected a JSON object, not a {type(value).__name__}")
    return value


def _int(cfg: dict[str, Any], key: str, path: Path, bounds: tuple[int, int], shown: str | None = None) -> None:
    value = cfg[key]
    shown = shown or key
    if isinstance(value, bool) or not isinstance(value, int):
        raise PaperkbError(f"{path}: {shown} must be a whole number, not {value!r:.40}")
    low, high = bounds
    if not low <= value <= high:
        raise PaperkbError(f"{path}: {shown} {value} is outside {low}..{high}")


def _float(cfg: dict[str, Any], key: str, path: Path, low: float, high: float) -> None:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PaperkbError(f"{path}: {key} must be a number, not {value!r:.40}")
    if not low < value <= high:
        raise PaperkbError(f"{path}: {key} {value} is outside ({low}, {high}]")


def check_hf_config(cfg: dict[str, Any], path: Path) -> None:
    """Types, ranges and consistency of a Hugging Face Llama ``config.json``."""
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"):
        if key not in cfg:
            raise PaperkbError(f"{path}: lacks the field {key!r}")
    for key, bounds in INT_FIELDS.items():
        if cfg.get(key) is not None:
            _int(cfg, key, path, bounds)
    if cfg.get("rms_norm_eps") is not None:
        _float(cfg, "rms_norm_eps", path, 0.0, 1.0)
    if cfg.get("rope_theta") is not None:
        _float(cfg, "rope_theta", path, 0.0, 1e12)
    _consistent(cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("num_key_value_heads"), path)


def check_meta_params(params: dict[str, Any], path: Path) -> None:
    """The same for Meta's ``params.json``."""
    for key in ("dim", "n_layers", "n_heads"):
        if key not in params:
            raise PaperkbError(f"{path}: lacks the field {key!r}")
    for key, like in META_FIELDS.items():
        if params.get(key) is not None and not (key == "vocab_size" and params[key] == -1):
            _int(params, key, path, INT_FIELDS[like], key)
    if params.get("norm_eps") is not None:
        _float(params, "norm_eps", path, 0.0, 1.0)
    if params.get("rope_theta") is not None:
        _float(params, "rope_theta", path, 0.0, 1e12)
    if params.get("ffn_dim_multiplier") is not None:
        _float(params, "ffn_dim_multiplier", path, 0.0, 64.0)
    _consistent(params["dim"], params["n_heads"], params.get("n_kv_heads"), path)


def _consistent(dim: int, heads: int, kv_heads: int | None, path: Path) -> None:
    if dim % heads:
        raise PaperkbError(f"{path}: the hidden size {dim} is not a multiple of the {heads} heads")
    if (dim // heads) % 2:
        raise PaperkbError(f"{path}: the head size {dim // heads} is odd (rotary embeddings need it even)")
    if kv_heads is not None and heads % kv_heads:
        raise PaperkbError(f"{path}: {heads} heads are not a multiple of {kv_heads} key/value heads")


def model_bytes(args: Any, bytes_per_param: int = 4, batch: int = 1) -> int:
    """Peak memory of a Llama model of ``args`` (``repro.llama.model.ModelArgs``) for chat:
    its parameters, the rotary table (2·max_seq_len positions, complex64) and a KV cache of
    ``batch`` sequences of max_seq_len tokens (Touvron et al. 2023, the architecture of §2.2)."""
    dim, layers, kv, hd = args.dim, args.n_layers, args.n_kv_heads, args.head_dim
    ffn = args.hidden_dim
    per_layer = dim * dim * 2 + dim * kv * hd * 2 + 3 * dim * ffn + 2 * dim
    params = 2 * args.vocab_size * dim + layers * per_layer + dim
    rope = args.max_seq_len * 2 * (hd // 2) * 8
    cache = layers * 2 * batch * kv * args.max_seq_len * hd * 4
    return params * bytes_per_param + rope + cache


def check_model_memory(args: Any, what: str, max_memory: int | None = None) -> None:
    """Refuse to build ``args`` when its estimate exceeds the machine (or ``max_memory``)."""
    check_memory(model_bytes(args), max_memory, what)


def check_safetensors(path: Path, folder: Path) -> None:
    """A safetensors file inside ``folder`` (after links) whose header is well formed: a
    length within the file, a JSON object of tensors with known dtypes, sane shapes and
    offsets that fit the data. Read by hand, before the library maps the file."""
    real = path.resolve()
    if real.parent != folder.resolve():
        raise PaperkbError(f"{path}: outside the checkpoint folder")
    try:
        with open(real, "rb") as fh:
            import os
            import stat

            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise PaperkbError(f"{path}: not a regular file")
            head = fh.read(8)
            if len(head) < 8:
                raise PaperkbError(f"{path}: too short for a safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, info.st_size - 8):
                raise PaperkbError(f"{path}: the header length {n} does not fit the file")
            header_bytes = fh.read(n)
    except OSError as exc:
        raise PaperkbError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        header = json.loads(header_bytes)
    except (ValueError, RecursionError):
        raise PaperkbError(f"{path}: the header is not JSON") from None
    if not isinstance(header, dict) or len(header) > MAX_TENSORS:
        raise PaperkbError(f"{path}: the header is not a table of tensors")
    data_size = info.st_size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise PaperkbError(f"{path}: tensor {name!r:.60}: not a tensor entry")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise PaperkbError(f"{path}: tensor {name!r:.60}: unknown dtype {dtype!r:.20}")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(_whole(d) for d in shape)):
            raise PaperkbError(f"{path}: tensor {name!r:.60}: bad shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_whole(o) for o in offsets)):
            raise PaperkbError(f"{path}: tensor {name!r:.60}: bad data offsets")
        start, end = offsets
        if not start <= end <= data_size or end - start != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise PaperkbError(f"{path}: tensor {name!r:.60}: its data does not fit the file")


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < (1 << 48)


def check_index(index: dict[str, Any], path: Path) -> dict[str, str]:
    """The ``weight_map`` of a ``model.safetensors.index.json``: tensor name -> file name."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or len(weight_map) > MAX_TENSORS:
        raise PaperkbError(f"{path}: not a safetensors index (no weight_map of tensor names to files)")
    for name, fname in weight_map.items():
        if not isinstance(fname, str) or not fname or "/" in fname or "\\" in fname or fname in (".", ".."):
            raise PaperkbError(f"{path}: tensor {name!r:.60} maps to {fname!r:.60}, not a file of this folder")
    return weight_map


MAX_TOKENIZER_BYTES = 100_000_000


def check_tokenizer_files(folder: Path, names: tuple[str, ...] = ("tokenizer.json", "tokenizer.model")) -> None:
    """The tokenizer files of ``folder`` (those present) are regular files inside it, of
    bounded size: the tokenizer libraries read them whole."""
    import os
    import stat

    for name in names:
        path = folder / name
        if not os.path.lexists(path):
            continue
        if path.resolve().parent != folder.resolve():
            raise PaperkbError(f"{path}: outside the checkpoint folder")
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise PaperkbError(f"{path}: not a regular file")
        if info.st_size > MAX_TOKENIZER_BYTES:
            raise PaperkbError(f"{path}: {info.st_size:,} bytes is over the {MAX_TOKENIZER_BYTES:,}-byte limit")


__all__ = [
    "check_tokenizer_files",
    "read_json_object",
    "check_hf_config",
    "check_meta_params",
    "model_bytes",
    "check_model_memory",
    "check_safetensors",
    "check_index",
]
