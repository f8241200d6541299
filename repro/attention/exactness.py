"""flash-attention's correctness rule, shared by the tests and the ``exact`` experiment.

An implementation is run on some inputs, and so is the standard algorithm in the same
dtype ("the PyTorch reference"); both are compared with the standard algorithm run one
precision higher (fp32 for fp16/bf16 inputs, fp64 for fp32 inputs). The implementation
passes when its error is at most 2x the PyTorch reference's error for the output and
at most 3x for the gradients dQ, dK, dV (the rule of flash-attention's test suite).

flash-attention applies the rule to fp16/bf16 only. For fp32 inputs both errors sit at
the level of fp32 rounding, where a different summation order alone can triple them, so
each fp32 bound also allows ``FP32_ULPS`` units of fp32 rounding of the largest value
in the reference (output and gradients); fp16/bf16 get no allowance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .naive import naive_attention

FWD_FACTOR = 2.0
GRAD_FACTOR = 3.0
FP32_ULPS = 32.0


def reference_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype in (torch.float32, torch.float64) else torch.float32


def random_inputs(batch, heads, heads_kv, n_q, n_k, head_dim, dtype, seed, device="cpu"):
    """Fresh normal q, k, v (never zeros) and an output gradient, from ``seed``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    q = randn(batch, heads, n_q, head_dim)
    k = randn(batch, heads_kv, n_k, head_dim)
    v = randn(batch, heads_kv, n_k, head_dim)
    dout = randn(batch, heads, n_q, head_dim)
    return q, k, v, dout


# ErrorReport's ``torch`` field hides the module inside its class body (for type checkers)
_TorchDtype = torch.dtype
_FLOAT16 = torch.float16


@dataclass
class ErrorReport:
    """Max abs errors against the higher-precision reference, for the implementation
    (``impl``) and the same-dtype PyTorch reference (``torch``)."""

    impl: dict[str, float]
    torch: dict[str, float]
    ref_scale: dict[str, float]  # max |reference| of each tensor, for relative errors
    dtype: _TorchDtype = _FLOAT16

    def ratio(self, name: str) -> float:
        """impl error / torch error (inf when torch is exact and impl is not)."""
        t, i = self.torch[name], self.impl[name]
        if t == 0.0:
            return 0.0 if i == 0.0 else float("inf")
        return i / t

    def relative(self, name: str) -> float:
        return self.impl[name] / max(self.ref_scale[name], 1e-30)

    def bound(self, name: str) -> float:
        factor = FWD_FACTOR if name == "out" else GRAD_FACTOR
        slack = 0.0
        if self.dtype == torch.float32:
            # relative to the problem's largest value: a gradient that is exactly 0 in the
            # reference (e.g. dQ when Nk = 1) still comes out as rounding noise
            slack = FP32_ULPS * torch.finfo(torch.float32).eps * max(self.ref_scale.values())
        return factor * self.torch[name] + slack

    def failures(self) -> list[str]:
        """One line per tensor that breaks the rule (a NaN error breaks it)."""
        return [
            f"{n}: {self.impl[n]:.3g} > bound {self.bound(n):.3g} (torch error {self.torch[n]:.3g})"
            for n in self.impl
            if not self.impl[n] <= self.bound(n)
        ]

    def passes(self) -> bool:
        return not self.failures()


def _run(fn, q, k, v, dout, causal, backward: bool):
    q, k, v = (t.detach().clone().requires_grad_(backward) for t in (q, k, v))
    out = fn(q, k, v, causal)
    result = {"out": out.detach()}
    if backward:
        dq, dk, dv = torch.autograd.grad(out, (q, k, v), dout.to(out.dtype))
        result.update(dq=dq, dk=dk, dv=dv)
    return result


def compare(
    fn: Callable[..., torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dout: torch.Tensor,
    causal: bool,
    backward: bool = True,
    reference: Callable[..., torch.Tensor] | None = None,
) -> ErrorReport:
    """Run ``fn(q, k, v, causal)`` and the two references; return their errors.
    ``reference(q, k, v, causal)`` replaces the standard algorithm (e.g. the standard
    algorithm with a given dropout or block mask)."""
    ref_fn = reference or (lambda a, b, c, m: naive_attention(a, b, c, m))
    ref_dt = reference_dtype(q.dtype)
    q_ref, k_ref, v_ref, dout_ref = (t.to(ref_dt) for t in (q, k, v, dout))
    ref = _run(ref_fn, q_ref, k_ref, v_ref, dout_ref, causal, backward)
    same = _run(ref_fn, q, k, v, dout, causal, backward)
    mine = _run(fn, q, k, v, dout, causal, backward)

    def err(x, name):
        return (x[name].to(ref_dt) - ref[name]).abs().max().item()

    names = list(mine)
    return ErrorReport(
        impl={n: err(mine, n) for n in names},
        torch={n: err(same, n) for n in names},
        ref_scale={n: ref[n].abs().max().item() for n in names},
        dtype=q.dtype,
    )
