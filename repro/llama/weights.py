"""Llama 2 checkpoints: the Hugging Face layout and Meta's ``consolidated.*.pth``.

Meta's rotary embedding reads each head's features as consecutive (re, im) pairs; Hugging
Face's reads them as two halves (``rotate_half``). The two are the same model once the
rows of ``wq`` and ``wk`` are permuted within each head, which is what ``_to_half_split``
and ``_to_interleaved`` do (the same permutation as transformers'
``convert_llama_weights_to_hf.py``).

Loading never holds two copies of the model: the module is built on the meta device
(shapes only) and ``load_state_dict(assign=True)`` adopts the loaded tensors, which come
from memory-mapped files (safetensors, or ``torch.load(mmap=True)``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import torch

from paperkb.errors import PaperkbError
from repro.llama.model import ModelArgs, Transformer, build_on_meta

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------------------
# The q/k permutation
# ---------------------------------------------------------------------------------------
def _to_half_split(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of wq/wk (n_heads·d, dim) from interleaved pairs to half-split order."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, out_dim // n_heads // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def _to_interleaved(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of ``_to_half_split``."""
    out_dim, in_dim = w.shape
    return w.view(n_heads, 2, out_dim // n_heads // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


# ---------------------------------------------------------------------------------------
# Names and configs
# ---------------------------------------------------------------------------------------
_LAYER_MAP = {
    "attention.wq": "self_attn.q_proj",
    "attention.wk": "self_attn.k_proj",
    "attention.wv": "self_attn.v_proj",
    "attention.wo": "self_attn.o_proj",
    "feed_forward.w1": "mlp.gate_proj",
    "feed_forward.w2": "mlp.down_proj",
    "feed_forward.w3": "mlp.up_proj",
    "attention_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_MAP = {"tok_embeddings": "model.embed_tokens", "norm": "model.norm", "output": "lm_head"}
_LAYER_RE = re.compile(r"^layers\.(\d+)\.(.+)\.weight$")
_HF_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")


def hf_name(name: str) -> str:
    m = _LAYER_RE.match(name)
    if m:
        return f"model.layers.{m.group(1)}.{_LAYER_MAP[m.group(2)]}.weight"
    return f"{_TOP_MAP[name.removesuffix('.weight')]}.weight"


def meta_name(name: str) -> str:
    m = _HF_LAYER_RE.match(name)
    if m:
        inverse = {v: k for k, v in _LAYER_MAP.items()}
        if m.group(2) not in inverse:
            raise KeyError(name)
        return f"layers.{m.group(1)}.{inverse[m.group(2)]}.weight"
    inverse = {v: k for k, v in _TOP_MAP.items()}
    return f"{inverse[name.removesuffix('.weight')]}.weight"


def hf_config(args: ModelArgs, dtype: torch.dtype = torch.float32) -> dict:
    """config.json for transformers' LlamaConfig (4.x and 5.x field names both given)."""
    dtype_name = {v: k for k, v in _DTYPES.items()}[dtype]
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": args.vocab_size,
        "hidden_size": args.dim,
        "intermediate_size": args.hidden_dim,
        "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads,
        "num_key_value_heads": args.n_kv_heads,
        "head_dim": args.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": args.max_seq_len,
        "rms_norm_eps": args.norm_eps,
        "rope_theta": args.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": args.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": dtype_name,
        "dtype": dtype_name,
    }


def args_from_hf_config(cfg: dict, **overrides) -> ModelArgs:
    try:
        rope = cfg.get("rope_parameters") or {}
        theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
        if rope.get("rope_type", "default") != "default" or cfg.get("rope_scaling"):
            raise PaperkbError("config.json asks for scaled RoPE, which Llama 2 does not use")
        if cfg.get("tie_word_embeddings") or cfg.get("attention_bias") or cfg.get("mlp_bias"):
            raise PaperkbError("config.json describes tied embeddings or biases, which Llama 2 does not have")
        args = dict(
            dim=cfg["hidden_size"],
            n_layers=cfg["num_hidden_layers"],
            n_heads=cfg["num_attention_heads"],
            n_kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
            vocab_size=cfg["vocab_size"],
            ffn_hidden_dim=cfg["intermediate_size"],
            norm_eps=cfg.get("rms_norm_eps", 1e-5),
            rope_theta=float(theta),
            max_seq_len=cfg.get("max_position_embeddings", 4096),
        )
    except KeyError as exc:
        raise PaperkbError(f"config.json lacks the field {exc.args[0]!r}") from None
    head_dim = cfg.get("head_dim")
    if head_dim is not None and head_dim != args["dim"] // args["n_heads"]:
        raise PaperkbError(f"config.json head_dim {head_dim} is not hidden_size / num_attention_heads")
    args.update(overrides)
    return ModelArgs(**args)


# ---------------------------------------------------------------------------------------
# State-dict conversion
# ---------------------------------------------------------------------------------------
def to_hf_state_dict(state: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in state.items():
        if name.endswith("attention.wq.weight"):
            t = _to_half_split(t, args.n_heads)
        elif name.endswith("attention.wk.weight"):
            t = _to_half_split(t, args.n_kv_heads)
        out[hf_name(name)] = t.contiguous()
    return out


def from_hf_state_dict(state: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in state.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue  # a buffer some exports include
        try:
            ours = meta_name(name)
        except KeyError:
            raise PaperkbError(f"unexpected tensor {name!r} in a Llama checkpoint") from None
        if name.endswith("q_proj.weight"):
            t = _to_interleaved(t, args.n_heads)
        elif name.endswith("k_proj.weight"):
            t = _to_interleaved(t, args.n_kv_heads)
        out[ours] = t
    return out


def _adopt(model: Transformer, state: dict[str, torch.Tensor], source: str) -> Transformer:
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise PaperkbError(f"{source}: weights do not fit the config (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, shape in expected.items():
        if state[k].shape != shape:
            raise PaperkbError(f"{source}: {k} has shape {tuple(state[k].shape)}, config wants {tuple(shape)}")
    model.load_state_dict(state, assign=True, strict=True)
    model.reset_rope()
    return model


# ---------------------------------------------------------------------------------------
# Hugging Face layout
# ---------------------------------------------------------------------------------------
def save_hf(
    model: Transformer, directory: str | Path, max_shard_bytes: int = 5 * 2**30, dtype: Optional[torch.dtype] = None
) -> Path:
    """Write config.json and safetensors (sharded, with an index, above max_shard_bytes)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    args = model.params
    state = to_hf_state_dict(model.state_dict(), args)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    out_dtype = next(iter(state.values())).dtype
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    metadata = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(directory / SINGLE_NAME), metadata=metadata)
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, str(directory / fname), metadata=metadata)
            weight_map.update({name: fname for name in shard})
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    (directory / "config.json").write_text(json.dumps(hf_config(args, out_dtype), indent=2) + "\n")
    return directory


def _safetensors_files(directory: Path) -> list[Path]:
    from repro.llama.checkpoint_check import MAX_INDEX_BYTES, check_index, read_json_object

    index = directory / INDEX_NAME
    if index.exists():
        weight_map = check_index(read_json_object(index, MAX_INDEX_BYTES), index)
        files = []
        for fname in dict.fromkeys(weight_map.values()):
            path = (directory / fname).resolve()
            if path.parent != directory.resolve():
                raise PaperkbError(f"{index}: shard {fname!r} is outside the checkpoint folder")
            files.append(path)
        return files
    single = directory / SINGLE_NAME
    if single.exists():
        return [single]
    raise PaperkbError(f"{directory}: no {SINGLE_NAME} or {INDEX_NAME}")


def load_hf(
    directory: str | Path,
    device: str | torch.device = "cpu",
    dtype: Optional[torch.dtype] = None,
    max_memory: Optional[int] = None,
    **overrides,
) -> Transformer:
    """A Transformer from a local Hugging Face folder (config.json + safetensors); refused
    (one line) when the config is malformed or the model would not fit ``max_memory``
    (default: this machine's memory)."""
    from safetensors import safe_open

    from repro.llama.checkpoint_check import check_hf_config, check_model_memory, check_safetensors, read_json_object

    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.exists():
        raise PaperkbError(f"{directory}: no config.json")
    # untrusted: checked (types, ranges, consistency, memory) before anything is built
    cfg = read_json_object(cfg_path)
    check_hf_config(cfg, cfg_path)
    args = args_from_hf_config(cfg, **overrides)
    check_model_memory(args, f"the model of {cfg_path}", max_memory)
    files = _safetensors_files(directory)
    for path in files:
        if not path.exists():
            raise PaperkbError(f"{path}: missing shard")
        check_safetensors(path, directory)
    model = build_on_meta(args)
    hf_state: dict[str, torch.Tensor] = {}
    for path in files:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            for name in f.keys():
                t = f.get_tensor(name)
                hf_state[name] = t if dtype is None else t.to(dtype)
    return _adopt(model, from_hf_state_dict(hf_state, args), str(directory))


# ---------------------------------------------------------------------------------------
# Meta's consolidated.*.pth
# ---------------------------------------------------------------------------------------
_META_ARGS = (
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "vocab_size",
    "multiple_of",
    "ffn_dim_multiplier",
    "ffn_hidden_dim",
    "max_seq_len",
)

# How Meta's model-parallel shards split each weight (fairscale layers): column-parallel
# layers along the output rows, row-parallel ones and the embedding along the columns.
_CONCAT_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1, "tok_embeddings": 1}


def _concat_dim(name: str) -> Optional[int]:
    for part in reversed(name.split(".")[:-1]):
        if part in _CONCAT_DIM:
            return _CONCAT_DIM[part]
    return None  # norms are replicated


def merge_shards(shards: Iterable[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    shards = list(shards)
    if len(shards) == 1:
        return shards[0]
    merged = {}
    for name in shards[0]:
        dim = _concat_dim(name)
        merged[name] = shards[0][name] if dim is None else torch.cat([s[name] for s in shards], dim=dim)
    return merged


def load_meta(
    directory: str | Path,
    device: str | torch.device = "cpu",
    dtype: Optional[torch.dtype] = None,
    max_memory: Optional[int] = None,
    **overrides,
) -> Transformer:
    """A Transformer from Meta's download folder: params.json + consolidated.NN.pth
    (checked as ``load_hf`` checks config.json)."""
    from repro.llama.checkpoint_check import check_meta_params, check_model_memory, read_json_object

    directory = Path(directory)
    params_path = directory / "params.json"
    shard_paths = sorted(directory.glob("consolidated.*.pth"))
    if not params_path.exists() or not shard_paths:
        raise PaperkbError(f"{directory}: expected params.json and consolidated.*.pth")
    params = read_json_object(params_path)
    check_meta_params(params, params_path)
    sized = {k: v for k, v in params.items() if k in _META_ARGS and v not in (None, -1)}
    try:
        check_model_memory(ModelArgs(**sized), f"the model of {params_path}", max_memory)
    except (TypeError, ValueError) as exc:
        raise PaperkbError(f"{params_path}: {exc}") from None
    shards = []
    for p in shard_paths:
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            raise PaperkbError(f"{p}: cannot load ({type(exc).__name__}: {exc})") from None
        sd.pop("rope.freqs", None)  # Meta's older checkpoints store the RoPE table
        shards.append(sd)
    state = merge_shards(shards)
    if params.get("vocab_size", -1) in (-1, None):
        params["vocab_size"] = state["tok_embeddings.weight"].shape[0]
    params.update(overrides)
    args = ModelArgs.from_dict(params)
    if dtype is not None or str(device) != "cpu":
        state = {k: v.to(device=device, dtype=dtype or v.dtype) for k, v in state.items()}
    return _adopt(build_on_meta(args), state, str(directory))


def save_meta(model: Transformer, directory: str | Path) -> Path:
    """params.json + consolidated.00.pth (one shard), as Meta distributes the 7B model."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    a = model.params
    params = {
        "dim": a.dim,
        "n_layers": a.n_layers,
        "n_heads": a.n_heads,
        "n_kv_heads": a.n_kv_heads,
        "multiple_of": a.multiple_of,
        "ffn_dim_multiplier": a.ffn_dim_multiplier,
        "norm_eps": a.norm_eps,
        "rope_theta": a.rope_theta,
        "vocab_size": a.vocab_size,
        "max_seq_len": a.max_seq_len,
    }
    if a.ffn_hidden_dim is not None:
        params["ffn_hidden_dim"] = a.ffn_hidden_dim
    (directory / "params.json").write_text(json.dumps(params) + "\n")
    torch.save(model.state_dict(), directory / "consolidated.00.pth")
    return directory


def to_transformers(model: Transformer, attn_implementation: str = "eager"):
    """The same weights in a transformers ``LlamaForCausalLM`` (built in memory)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = hf_config(model.params, model.output.weight.dtype)
    for key in ("architectures", "model_type", "torch_dtype", "dtype", "rope_theta"):
        cfg.pop(key)
    config = LlamaConfig(**cfg)
    config._attn_implementation = attn_implementation
    with torch.device(model.output.weight.device):
        # typed as a Module: transformers wraps its .to() in functools.wraps, which type checkers read unbound
        hf: torch.nn.Module = LlamaForCausalLM(config)
    hf = hf.to(model.output.weight.dtype)
    state = to_hf_state_dict(model.state_dict(), model.params)
    hf.load_state_dict(state, strict=True)
    return hf.eval()
