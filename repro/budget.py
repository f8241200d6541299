"""What a run may take of the machine, decided before it starts (issue 23, item 8).

A claim's ``params::`` and ``--param`` are untrusted: ``ns=[60000], impls=["naive"]``
asks the standard attention for a 60,000 x 60,000 score matrix, ``n_layers=20000`` for
a model no machine holds. Before a run starts, :func:`estimate_bytes` estimates its peak
host memory from its parameters (the largest tensors each kind of experiment makes:
attention's N x N scores and probabilities, a model's weights with their gradients and
Adam moments, the activations of a batch) and :func:`memory_refusal` refuses a run whose
estimate exceeds this machine's memory or ``--max-memory``. The estimates are upper
bounds of the dominant terms, not profiles: they decide only what cannot fit.

Every preset has a time limit: its own ``timeout_s``, else :data:`DEFAULT_TIMEOUT_S` of
its scale, so no parameter can keep a run going for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paperkb.limits import human_bytes, machine_memory

# a preset without its own timeout ends after this long (seconds), by scale
DEFAULT_TIMEOUT_S = {"smoke": 1800.0, "full": 6 * 3600.0, "paper": 24 * 3600.0}

FLOAT = 4  # bytes: estimates assume float32, the widest dtype the experiments use on the CPU
# experiments that build their models on the meta device or compute a formula: no tensor
# grows with their parameters (their time is bounded by the preset's timeout)
NO_TENSORS = frozenset({"transformer/param-count", "llama/param-count", "flash-attention/io-complexity"})


def _int(value: Any) -> int:
    """The largest whole number in a parameter value (a number, a list, ``"113x203"``)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value) if value == value and abs(value) < 1e30 else 0
    if isinstance(value, str):
        parts = [p for p in value.lower().split("x") if p.strip().isdigit()]
        return max((int(p) for p in parts), default=0)
    if isinstance(value, (list, tuple)):
        return max((_int(v) for v in value), default=0)
    return 0


def _first(params: dict[str, Any], *names: str, default: int = 0) -> int:
    for name in names:
        if name in params and _int(params[name]) > 0:
            return _int(params[name])
    return default


def _pair_area(params: dict[str, Any]) -> int:
    """The largest Nq x Nk of ``pairs`` parameters (``["113x203", ...]``)."""
    best = 0
    for name in ("pairs", "triton_cpu_pairs"):
        for item in params.get(name) or ():
            dims = [int(p) for p in str(item).lower().split("x") if p.strip().isdigit()]
            if len(dims) == 2:
                best = max(best, dims[0] * dims[1])
    return best


def attention_bytes(params: dict[str, Any]) -> int:
    """The standard algorithm's N x N scores and softmax (x3 with a backward pass), for the
    batch and heads (Dao et al. 2022, §3: its memory is quadratic in N)."""
    n = _first(params, "ns", "n", "n_values", "seq_len", "seq", "n_positions", "n_keys")
    area = max(n * n, _pair_area(params), _first(params, "n_keys") * _first(params, "n_queries"))
    batch = _first(params, "batch", default=1)
    heads = _first(params, "heads", "n_heads", "n_head", default=1)
    if params.get("batch_tokens") and n:
        batch = max(batch, _int(params["batch_tokens"]) // max(1, n))
    passes = 3 if params.get("backward") or "bwd" in str(params.get("modes", "")) else 1
    return 2 * batch * heads * area * FLOAT * passes


def model_bytes(params: dict[str, Any]) -> int:
    """A transformer's weights, gradients and Adam's two moments (16 bytes a parameter),
    plus the activations a training step keeps (about 16 floats per token, layer and width)."""
    d = _first(params, "dim", "d_model", "n_embd")
    layers = _first(params, "n_layers", "n_layer") + _first(params, "decoder_layers")
    if not d or not layers:
        return 0
    ff = _first(params, "d_ff", default=4 * d)
    vocab = _first(params, "vocab_size", default=32_000)
    n_params = layers * (4 * d * d + 3 * d * ff) + 2 * vocab * d
    tokens = _first(params, "batch", default=1) * _first(params, "seq_len", "seq", "prompt_len", default=512)
    return 4 * FLOAT * n_params + 16 * FLOAT * tokens * d * layers


def tiled_bytes(params: dict[str, Any]) -> int:
    """Tiled attention: Q, K, V, O and the gradients, linear in N."""
    n = _first(params, "ns", "n", "seq")
    d = _first(params, "d", "head_dims", default=64)
    return 8 * _first(params, "batch", default=1) * _first(params, "heads", default=1) * n * d * FLOAT


def _linear_memory(params: dict[str, Any]) -> int:
    impls = {str(i) for i in (params.get("impls") or ())}
    quadratic = bool(impls & {"naive", "sdpa", "math"})
    return max(tiled_bytes(params), attention_bytes(params) if quadratic else 0)


# experiments whose largest tensors the generic rule would misjudge
ESTIMATORS: dict[str, Callable[[dict[str, Any]], int]] = {
    "flash-attention/linear-memory": _linear_memory,
}


def estimate_bytes(experiment: str, params: dict[str, Any]) -> int:
    """Estimated peak host memory (bytes) of a run of ``experiment`` with ``params``."""
    if experiment in NO_TENSORS:
        return 0
    if experiment in ESTIMATORS:
        return ESTIMATORS[experiment](params)
    return max(attention_bytes(params), model_bytes(params), tiled_bytes(params))


def memory_refusal(experiment: str, params: dict[str, Any], device: str, max_memory: int | None) -> str | None:
    """Why a run cannot start (one line), or None. On a GPU run the host holds little:
    only ``--max-memory`` is checked there (the preset states the GPU memory it needs)."""
    need = estimate_bytes(experiment, params)
    if max_memory is not None and need > max_memory:
        return (
            f"these parameters need about {human_bytes(need)} of memory, more than --max-memory ({human_bytes(max_memory)}); "
            "refused before starting"
        )
    if device == "cpu" and max_memory is None and need > machine_memory():
        return (
            f"these parameters need about {human_bytes(need)} of memory, more than this machine has "
            f"({human_bytes(machine_memory())}); refused before starting"
        )
    return None


def preset_timeout(preset: Any, scale: str) -> float:
    """A preset's time limit: its own, else the default of its scale."""
    own = getattr(preset, "timeout_s", None)
    return float(own) if own else DEFAULT_TIMEOUT_S.get(scale, DEFAULT_TIMEOUT_S["full"])


__all__ = ["DEFAULT_TIMEOUT_S", "estimate_bytes", "memory_refusal", "preset_timeout"]
