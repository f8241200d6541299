"""The real Llama 2 weights in the experiments' ``paper`` presets (named input ``llama-2-7b``).

A ``paper`` preset that lists ``llama-2-7b`` in its requirements gets a validated checkpoint
folder in ``ctx.inputs``; :func:`checkpoint_model` loads it into our own
:class:`~repro.llama.model.Transformer` (so the check is of our implementation on Meta's
weights) on the run's device. Smaller presets build a random model instead.
"""

from __future__ import annotations

from typing import Any


def checkpoint_model(ctx: Any, name: str = "llama-2-7b") -> Any:
    """Our Transformer with the weights of input ``name`` on ``ctx.device`` (fp32, eval
    mode), or None when the run has no such input (smoke and full presets)."""
    path = (getattr(ctx, "inputs", None) or {}).get(name)
    if not path:
        return None
    from repro.llama.chat import load_checkpoint

    model, _tokenizer = load_checkpoint(path, device=ctx.device)
    ctx.log(f"loaded {name} from {path} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters)")
    return model.float().eval()


def synchronize(device: Any) -> None:
    """Wait for the GPU before reading a clock (a no-op on the CPU)."""
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
