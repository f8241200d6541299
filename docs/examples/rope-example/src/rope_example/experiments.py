"""paperkb experiments for RoFormer's claims about rotary position embedding.

Imported by paperkb through the ``paperkb.experiments`` entry point (see pyproject.toml);
the decorators register each experiment. No torch at module level: ``paperkb
experiments`` imports this module only to list what it declares.
"""

from __future__ import annotations

from repro.registry import Control, Param, Preset, Requirements, experiment

CONTROLS = [
    Control("layout-mismatch", "queries rotated in (2i, 2i+1) pairs, keys in (i, i + d/2) pairs"),
    Control("no-pairs", "scales each channel by cos(m theta) instead of rotating the pair"),
]


@experiment(
    "rope-example/relative-position",
    "RoPE scores depend only on the relative position m - n, and the rotation keeps norms (RoFormer 3.4.2)",
    params=[
        Param("dim", int, 64, "channels per head (even)"),
        Param("positions", int, 256, "positions compared, 0..positions-1"),
        Param("shifts", int, 8, "how many offsets s to add to both positions"),
        Param("base", float, 10000.0, "the frequency base of theta_i = base^(-2i/d)"),
        Param("dtype", str, "float64", "the precision of q and k", choices=("float64", "float32")),
    ],
    presets={
        "smoke": Preset(params={"positions": 64, "shifts": 4}, description="under a second on a CPU"),
        "full": Preset(params={"dim": 128, "positions": 2048, "shifts": 16}, timeout_s=600),
        "full-gpu": Preset(
            params={"dim": 128, "positions": 8192, "shifts": 16},
            requires=Requirements(device="cuda", min_gpu_memory_gb=1.0),
            scale="full",
            description="the same on a GPU, at longer context",
        ),
    },
    controls=CONTROLS,
)
def relative_position(ctx):
    import torch

    from rope_example.rope import apply_rope

    p = ctx.params
    if p["dim"] % 2:
        raise ValueError("dim must be even: RoPE rotates pairs of channels")
    dtype = getattr(torch, p["dtype"])
    gen = torch.Generator().manual_seed(ctx.seed)
    n = p["positions"]
    q = torch.randn(n, p["dim"], generator=gen, dtype=torch.float64).to(dtype) / p["dim"] ** 0.5  # (N, d)
    k = torch.randn(n, p["dim"], generator=gen, dtype=torch.float64).to(dtype) / p["dim"] ** 0.5
    pos = torch.arange(n)

    def scores(shift: int) -> torch.Tensor:
        """One query and one key, placed at every position and moved together by ``shift``:
        entry (m, n) is q_(m+shift) . k_(n+shift).  (N, N)"""
        rq, rk = apply_rope(q[:1].expand(n, -1), k[:1].expand(n, -1), pos + shift, p["base"], ctx.control)
        return rq @ rk.T

    base_scores = scores(0)
    worst = 0.0
    for s in range(1, p["shifts"] + 1):
        worst = max(worst, float((scores(7 * s) - base_scores).abs().max()))
        ctx.progress(s, p["shifts"], f"shift {7 * s}")
    rq, _ = apply_rope(q, k, pos, p["base"], ctx.control)
    norm_error = float((rq.norm(dim=-1) - q.norm(dim=-1)).abs().max())

    ctx.log_metric("max_shift_error", worst)
    ctx.log_metric("max_norm_error", norm_error)
    table = ctx.artifact_path("errors.tsv")
    table.write_text(f"metric\tvalue\nmax_shift_error\t{worst:.3e}\nmax_norm_error\t{norm_error:.3e}\n")

    # the claims are exact: all that is allowed is rounding, a thousand units in the last
    # place of the dtype on unit-scale scores (2e-13 in float64, 1e-4 in float32)
    tolerance = 1000 * torch.finfo(dtype).eps
    ctx.check("max_shift_error", worst, "<=", tolerance, "q_m . k_n unchanged when m and n move together")
    ctx.check("max_norm_error", norm_error, "<=", tolerance, "the rotation keeps each vector's norm")
    return ctx.result(f"shift error {worst:.1e}, norm error {norm_error:.1e}")
