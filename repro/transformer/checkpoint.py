"""A checkpoint of our Transformer (``repro.transformer.model``): a folder of three files.

::

    checkpoint/
      config.json        {"format": "paperkb-transformer", "format_version": 1,
                          "source_lang": "en", "target_lang": "de",
                          "vocab_size": 37000, "d_model": 1024, "n_layers": 6, "n_heads": 16,
                          "d_ff": 4096, "dropout": 0.3, "label_smoothing": 0.1,
                          "warmup_steps": 4000, "max_len": 512, "pad_id": 0, "bos_id": 1,
                          "eos_id": 2, "training": {...free notes: steps, data, seconds}}
      model.safetensors  the state dict of ``Transformer(cfg)`` (names and shapes exactly its own)
      tokenizer.json     a Hugging Face ``tokenizers`` file: the shared source/target
                         vocabulary (section 5.1), with <pad> <s> </s> as ids 0, 1, 2

written by our trainer (``python -m repro.transformer.translate train``). All three are
untrusted when read: the config is bounded JSON whose every key is checked (one line naming
the file and the key when not), the weights are read with safetensors only (no pickle, no
code) after their names and shapes are compared with the model's, and the tokenizer is JSON
read by ``tokenizers``.

Torch-free at module level: ``repro.inputs`` validates a checkpoint with :func:`read_config`
when a run is planned.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from paperkb.errors import PaperkbError

FORMAT = "paperkb-transformer"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, TOKENIZER = "config.json", "model.safetensors", "tokenizer.json"
MAX_CONFIG_BYTES = 100_000
MAX_TOKENIZER_BYTES = 50_000_000
MAX_PARAMETERS = 3_000_000_000  # the big model has 213M; this bounds what a config can make us allocate
MAX_POSITION_TABLE = 1 << 27  # max_len x d_model of the sinusoid table (512 MB in fp32)
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # ids 0..3: pad, bos, eos, unknown

# key -> (type, low, high): the bounds a config's numbers must lie in.
_INT_KEYS = {
    "vocab_size": (4, 1_000_000),
    "d_model": (2, 16384),
    "n_layers": (1, 64),
    "n_heads": (1, 256),
    "d_ff": (1, 131072),
    "warmup_steps": (0, 10_000_000),
    "max_len": (2, 65536),
    "pad_id": (0, 999_999),
    "bos_id": (0, 999_999),
    "eos_id": (0, 999_999),
}
_FLOAT_KEYS = {"dropout": (0.0, 0.99), "label_smoothing": (0.0, 0.99)}
_LANG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})?")
_KNOWN = {"format", "format_version", "source_lang", "target_lang", "training", *_INT_KEYS, *_FLOAT_KEYS}


class CheckpointError(PaperkbError):
    """A checkpoint folder that does not hold what this format asks for (one line)."""


def read_config(folder: Path | str) -> dict[str, Any]:
    """The checked config of the checkpoint in ``folder``; raises CheckpointError naming the
    file and what is wrong. Checks that the weights and tokenizer files exist (it reads neither)."""
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder (a Transformer checkpoint is {CONFIG}, {WEIGHTS}, {TOKENIZER})")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path}: too large for a config ({size} bytes)")
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{folder}: no {CONFIG} (a Transformer checkpoint is {CONFIG}, {WEIGHTS}, {TOKENIZER})"
        ) from None
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than json allows
        raise CheckpointError(
            f"{path}: not readable JSON ({(str(exc) or type(exc).__name__).splitlines()[0]})"
        ) from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    if cfg.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: 'format' is {cfg.get('format')!r}, not {FORMAT!r} (a paperkb Transformer checkpoint)"
        )
    if cfg.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {cfg.get('format_version')!r} is not {FORMAT_VERSION}")
    unknown = sorted(set(cfg) - _KNOWN)
    if unknown:
        raise CheckpointError(f"{path}: unknown key {unknown[0]!r}")
    for key, (low, high) in _INT_KEYS.items():
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise CheckpointError(f"{path}: {key!r} must be an integer in [{low}, {high}], got {value!r}")
    for key, (lo, hi) in _FLOAT_KEYS.items():
        value = cfg.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
            raise CheckpointError(f"{path}: {key!r} must be a number in [{lo}, {hi}], got {value!r}")
        cfg[key] = float(value)
    for key in ("source_lang", "target_lang"):
        value = cfg.get(key)
        if not isinstance(value, str) or not _LANG.fullmatch(value):
            raise CheckpointError(f"{path}: {key!r} must be a language code such as 'en', got {value!r}")
    if cfg["d_model"] % cfg["n_heads"] or cfg["d_model"] % 2:
        raise CheckpointError(
            f"{path}: d_model {cfg['d_model']} must be even and a multiple of n_heads {cfg['n_heads']}"
        )
    for key in ("pad_id", "bos_id", "eos_id"):
        if cfg[key] >= cfg["vocab_size"]:
            raise CheckpointError(f"{path}: {key} {cfg[key]} is outside the vocabulary of {cfg['vocab_size']}")
    if cfg["max_len"] * cfg["d_model"] > MAX_POSITION_TABLE:
        raise CheckpointError(
            f"{path}: max_len {cfg['max_len']} x d_model {cfg['d_model']} makes a position table larger than "
            f"{MAX_POSITION_TABLE:,} values"
        )
    if not isinstance(cfg.get("training", {}), dict):
        raise CheckpointError(f"{path}: 'training' must be an object")
    n = parameter_count(cfg)
    if n > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: the configuration has {n:,} parameters, more than {MAX_PARAMETERS:,}")
    for name in (WEIGHTS, TOKENIZER):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: no {name} beside {CONFIG}")
    return cfg


def parameter_count(cfg: dict[str, Any]) -> int:
    """Parameters of ``Transformer(cfg)``: shared embedding, attention and FFN projections with
    biases, LayerNorms (the hand count of ``repro.transformer.experiments.closed_form_count``)."""
    d, f, layers = cfg["d_model"], cfg["d_ff"], cfg["n_layers"]
    attention = 4 * (d * d + d)
    ffn = 2 * d * f + f + d
    return cfg["vocab_size"] * d + layers * (attention + ffn + 4 * d) + layers * (2 * attention + ffn + 6 * d)


def files(folder: Path | str) -> list[Path]:
    """The files a run reads (for the input's fingerprint), after :func:`read_config`."""
    folder = Path(folder)
    read_config(folder)
    return [folder / CONFIG, folder / WEIGHTS, folder / TOKENIZER]


# --------------------------------------------------------------------------------------
# Writing and loading (torch, safetensors and tokenizers imported inside)
# --------------------------------------------------------------------------------------
def save(model: Any, tokenizer: Any, folder: Path | str, source_lang: str, target_lang: str, training: dict) -> Path:
    """Write ``model`` (a ``Transformer``) and its ``tokenizer`` (a ``tokenizers.Tokenizer``)
    as a checkpoint folder; returns it."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, "source_lang": source_lang, "target_lang": target_lang}
    cfg.update(asdict(model.cfg))
    cfg["training"] = training
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": FORMAT})
    tokenizer.save(str(folder / TOKENIZER))
    (folder / CONFIG).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    read_config(folder)  # what we write, we can read
    return folder


def load(folder: Path | str, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, config)`` from a checkpoint folder, the model in eval mode.
    Every problem is one CheckpointError line naming the file."""
    import torch
    from safetensors import SafetensorError, safe_open

    from repro.transformer.model import Transformer, TransformerConfig

    folder = Path(folder)
    cfg = read_config(folder)
    fields = {k: cfg[k] for k in (*_INT_KEYS, *_FLOAT_KEYS)}
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Transformer(TransformerConfig(**fields)).state_dict().items()}
    weights = folder / WEIGHTS
    try:
        with safe_open(str(weights), framework="pt") as fh:
            names = set(fh.keys())
            missing, unexpected = sorted(set(shapes) - names), sorted(names - set(shapes))
            if missing or unexpected:
                what = f"lacks {missing[0]!r}" if missing else f"holds an unexpected tensor {unexpected[0]!r}"
                raise CheckpointError(f"{weights}: {what} for the model {CONFIG} describes")
            for name in sorted(names):
                shape = tuple(fh.get_slice(name).get_shape())
                if shape != shapes[name]:
                    raise CheckpointError(
                        f"{weights}: {name} has shape {list(shape)}, {CONFIG} implies {list(shapes[name])}"
                    )
            state = {name: fh.get_tensor(name) for name in sorted(names)}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise CheckpointError(f"{weights}: {name} is {tensor.dtype}, not a floating-point tensor")
    model = Transformer(TransformerConfig(**fields))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model = model.to(device).eval()
    tokenizer = _load_tokenizer(folder / TOKENIZER, cfg)
    return model, tokenizer, cfg


def _load_tokenizer(path: Path, cfg: dict[str, Any]) -> Any:
    from tokenizers import Tokenizer

    size = path.stat().st_size
    if size > MAX_TOKENIZER_BYTES:
        raise CheckpointError(f"{path}: too large for a tokenizer ({size} bytes)")
    try:
        tokenizer = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    except Exception as exc:  # tokenizers raises its own Exception subclass for a bad file
        raise CheckpointError(f"{path}: not a tokenizers file ({str(exc).splitlines()[0][:200]})") from None
    if tokenizer.get_vocab_size() > cfg["vocab_size"]:
        raise CheckpointError(
            f"{path}: {tokenizer.get_vocab_size()} tokens, more than the model's vocabulary of {cfg['vocab_size']}"
        )
    for token, key in zip(SPECIAL_TOKENS, ("pad_id", "bos_id", "eos_id")):
        if tokenizer.token_to_id(token) != cfg[key]:
            raise CheckpointError(
                f"{path}: {token} is id {tokenizer.token_to_id(token)}, {CONFIG} says {key} {cfg[key]}"
            )
    return tokenizer
