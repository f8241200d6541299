"""Workloads of repro/transformer/experiments.py: what each declared experiment trains or measures."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from repro.plots import Panel, save_panels
from repro.registry import Result, RunContext

PAPER_PARAMS_M = {"base": 65.0, "big": 213.0}  # Table 3, printed to the nearest million


def closed_form_count(
    vocab: int,
    d_model: int,
    encoder_layers: int,
    decoder_layers: int,
    d_ff: int,
    *,
    learned_positions: int = 0,
    token_types: int = 0,
    embedding_norm: bool = False,
    pooler: bool = False,
    tied_output: bool = True,
    cross_attention: bool = True,
) -> int:
    """Parameters of a post-norm Transformer stack, counted by hand: one token embedding
    (shared by encoder, decoder and, when ``tied_output``, the pre-softmax projection, as in
    section 3.4), attention blocks of four d x d projections with biases, FFNs of d x d_ff
    and d_ff x d with biases (equation 2), two LayerNorm vectors per sub-layer. Sinusoidal
    positions (``learned_positions=0``) have no parameters."""
    d = d_model
    attention = 4 * (d * d + d)
    ffn = d * d_ff + d_ff + d_ff * d + d
    norm = 2 * d
    encoder = attention + ffn + 2 * norm
    decoder = attention + (attention if cross_attention else 0) + ffn + 3 * norm
    n = vocab * d + learned_positions * d + token_types * d + (norm if embedding_norm else 0)
    n += encoder_layers * encoder + decoder_layers * decoder
    if not tied_output:
        n += vocab * d
    if pooler:
        n += d * d + d
    return n


def _custom_model_on_meta(p):
    """A stack of this package's Transformer layers for a configuration other than the
    paper's (e.g. BERT: an encoder with learned positions, token types and a pooler)."""
    import torch
    from torch import nn

    from repro.transformer.model import DecoderLayer, EncoderLayer, TransformerConfig

    d = p["d_model"]
    cfg = TransformerConfig(
        vocab_size=p["vocab_size"], d_model=d, n_layers=p["n_layers"], n_heads=p["n_heads"], d_ff=p["d_ff"] or 4 * d
    )
    with torch.device("meta"):
        parts = nn.ModuleDict({"embed": nn.Embedding(cfg.vocab_size, d)})
        if p["learned_positions"]:
            parts["positions"] = nn.Embedding(p["learned_positions"], d)
        if p["token_types"]:
            parts["token_types"] = nn.Embedding(p["token_types"], d)
        if p["embedding_norm"]:
            parts["embedding_norm"] = nn.LayerNorm(d)
        parts["encoder"] = nn.ModuleList(EncoderLayer(cfg) for _ in range(p["n_layers"]))
        parts["decoder"] = nn.ModuleList(DecoderLayer(cfg) for _ in range(p["decoder_layers"]))
        if not p["tied_output"]:
            parts["output"] = nn.Linear(d, cfg.vocab_size, bias=False)
        if p["pooler"]:
            parts["pooler"] = nn.Linear(d, d)
    return parts


def param_count(ctx: RunContext) -> Result:
    from repro.transformer.model import build_on_meta, config, count_parameters

    p = ctx.params
    forget = ctx.control == "forget-cross-attention"
    if p["d_model"]:
        return _custom_param_count(ctx, forget)
    vocab, slack = p["vocab_size"], p["vocab_precision"]
    v_lo, v_hi = vocab - slack, vocab + slack
    convention = (
        f"one vocabulary of {v_lo:,}-{v_hi:,} tokens ('about {vocab:,}', read as rounded to the nearest "
        f"{2 * slack:,}) shared by source, target and the output projection (section 3.4); biases in every "
        "projection; post-norm, no final LayerNorm; sinusoidal positions"
    )
    ctx.log(f"convention: {convention}")
    counts, nearest = {}, {}
    for name, paper in PAPER_PARAMS_M.items():
        cfg = config(name, vocab_size=vocab)
        n_built = count_parameters(build_on_meta(cfg))
        n = closed_form_count(vocab, cfg.d_model, cfg.n_layers, cfg.n_layers, cfg.d_ff, cross_attention=not forget)
        counts[name] = n
        ctx.log_metric(f"params_{name}", n)
        ctx.log_metric(f"params_{name}_millions", n / 1e6)
        ctx.check(
            f"closed_form_equals_built_{name}",
            n,
            "==",
            n_built,
            f"{name}: the hand count equals our model's parameters (built on the meta device)",
        )
        # The paper's uncertainty, propagated: the count over every vocabulary "about 37000"
        # admits (it is linear in the vocabulary, so the two ends bound it), against the
        # printed figure's own rounding to the million.
        lo, hi = (
            closed_form_count(v, cfg.d_model, cfg.n_layers, cfg.n_layers, cfg.d_ff, cross_attention=not forget) / 1e6
            for v in (v_lo, v_hi)
        )
        ctx.log_metric(f"params_{name}_millions_at_vocab_{v_lo}", lo)
        ctx.log_metric(f"params_{name}_millions_at_vocab_{v_hi}", hi)
        off = 0.0 if lo <= paper <= hi else min(abs(lo - paper), abs(hi - paper))
        nearest[name] = (lo, hi, off)
        ctx.log_metric(f"params_{name}_millions_off_paper", off)
        ctx.check(
            f"params_{name}_millions_off_paper",
            off,
            "<=",
            0.5,
            f"{name}: over vocabularies {v_lo:,}-{v_hi:,} our count spans {lo:.2f}M-{hi:.2f}M; its nearest "
            f"point is within the rounding of the paper's printed {paper:.0f}M (±0.5M). Convention: {convention}",
        )
        ctx.log(
            f"{name}: {n:,} parameters at {vocab:,} tokens ({n / 1e6:.2f}M); {lo:.2f}M-{hi:.2f}M over "
            f"{v_lo:,}-{v_hi:,} tokens; paper: {paper:.0f}M ± 0.5M; off by {off:.2f}M"
        )
    return ctx.result(
        f"base {nearest['base'][0]:.2f}-{nearest['base'][1]:.2f}M, big {nearest['big'][0]:.2f}-"
        f"{nearest['big'][1]:.2f}M over vocabularies {v_lo:,}-{v_hi:,} (paper: 65M, 213M); counted under "
        f"the convention: {convention}"
    )


def _custom_param_count(ctx: RunContext, forget: bool) -> Result:
    """The count for a configuration given in params (``d_model`` set), e.g. BERT's."""
    from repro.transformer.model import count_parameters

    p = ctx.params
    d_ff = p["d_ff"] or 4 * p["d_model"]
    n_built = count_parameters(_custom_model_on_meta(p))
    n = closed_form_count(
        p["vocab_size"],
        p["d_model"],
        p["n_layers"],
        p["decoder_layers"],
        d_ff,
        learned_positions=p["learned_positions"],
        token_types=p["token_types"],
        embedding_norm=p["embedding_norm"],
        pooler=p["pooler"],
        tied_output=p["tied_output"],
        cross_attention=not forget,
    )
    ctx.log_metric("params", n)
    ctx.log_metric("params_millions", n / 1e6)
    ctx.log(
        f"d_model {p['d_model']}, {p['n_layers']} encoder + {p['decoder_layers']} decoder layers, "
        f"d_ff {d_ff}, vocabulary {p['vocab_size']}: {n:,} parameters ({n / 1e6:.2f}M)"
    )
    ctx.check(
        "closed_form_equals_built_model",
        n,
        "==",
        n_built,
        "the hand count equals the parameters of the layers built on the meta device",
    )
    return ctx.result(f"{n / 1e6:.2f}M parameters for the configuration given")


def sinusoid_linear(ctx: RunContext) -> Result:
    import math

    import torch

    from repro.transformer.model import sinusoidal_positions

    p = ctx.params
    d, n = p["d_model"], p["n_positions"]
    pe = sinusoidal_positions(n + max(int(k) for k in p["offsets"]), d, dtype=torch.float64)
    if ctx.control == "nonlinear-phase":
        pos = torch.arange(pe.shape[0], dtype=torch.float64).unsqueeze(1) ** 1.5
        freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    control = torch.randn(pe.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(ctx.seed))
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)

    def fit(table, k):
        x, y = table[:n], table[k : k + n]
        # SVD-based solver: the low-frequency columns are nearly collinear (rank-deficient x)
        m = torch.linalg.lstsq(x, y, driver="gelsd").solution  # y ≈ x @ m
        return m, ((x @ m - y).norm() / y.norm()).item()

    worst, worst_control, worst_analytic = 0.0, math.inf, 0.0
    for k in (int(k) for k in p["offsets"]):
        m, resid = fit(pe, k)
        _, resid_control = fit(control, k)
        # the fitted map should be the block rotation by angle k·ω_i on each (sin, cos) pair
        analytic = torch.zeros(d, d, dtype=torch.float64)
        c, s = torch.cos(k * inv_freq), torch.sin(k * inv_freq)
        i = torch.arange(0, d, 2)
        # sin((p+k)ω) = sin(pω)cos(kω) + cos(pω)sin(kω); cos((p+k)ω) = cos(pω)cos(kω) - sin(pω)sin(kω)
        analytic[i, i], analytic[i + 1, i] = c, s
        analytic[i, i + 1], analytic[i + 1, i + 1] = -s, c
        x = pe[:n]
        dev = ((x @ analytic - pe[k : k + n]).norm() / pe[k : k + n].norm()).item()
        ctx.log_metric("residual", resid, step=k)
        ctx.log_metric("residual_random_positions", resid_control, step=k)
        ctx.log_metric("residual_closed_form_rotation", dev, step=k)
        ctx.log(
            f"k={k}: relative residual {resid:.2e} (random positions: {resid_control:.2f}; "
            f"closed-form rotation: {dev:.2e})"
        )
        worst = max(worst, resid)
        worst_control = min(worst_control, resid_control)
        worst_analytic = max(worst_analytic, dev)
    ctx.check(
        "max_relative_residual", worst, "<=", p["tolerance"], "PE(pos+k) = PE(pos) M_k fits exactly for every offset"
    )
    ctx.check(
        "random_positions_residual",
        worst_control,
        ">=",
        0.1,
        "control: the same fit fails for random position vectors (the test can tell)",
    )
    ctx.check(
        "closed_form_rotation_residual",
        worst_analytic,
        "<=",
        p["tolerance"],
        "M_k is the rotation by k·ω_i of each (sin, cos) pair",
    )
    return ctx.result(f"largest residual {worst:.1e} over offsets {p['offsets']} (random vectors: {worst_control:.2f})")


def scaled_dot_product(ctx: RunContext) -> Result:
    import math

    import torch

    p = ctx.params
    gen = torch.Generator().manual_seed(ctx.seed)
    dks = [int(d) for d in p["d_k"]]
    rows: dict[str, list[tuple[float, float]]] = {"scaled": [], "unscaled": []}
    for dk in dks:
        # unit-variance components, as the paper assumes: q·k then has variance d_k
        q = torch.randn(p["n_queries"], dk, generator=gen)
        k = torch.randn(p["n_keys"], dk, generator=gen)
        v = torch.randn(p["n_keys"], generator=gen)
        scaled = 1.0 if ctx.control == "no-scaling" else 1 / math.sqrt(dk)
        for label, scale in (("scaled", scaled), ("unscaled", 1.0)):
            logits = (q @ k.T * scale).requires_grad_(True)  # (n_queries, n_keys)
            probs = torch.softmax(logits, dim=-1)
            entropy = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1).mean()
            # the gradient reaching the logits from a downstream loss (here: the output's sum)
            (probs @ v).sum().backward()
            assert logits.grad is not None
            grad = logits.grad.norm(dim=-1).mean()
            rows[label].append((entropy.item(), grad.item()))
            ctx.log_metric(f"entropy_{label}", entropy.item(), step=dk)
            ctx.log_metric(f"grad_norm_{label}", grad.item(), step=dk)
    h_max = math.log(p["n_keys"])
    _check_saturation(ctx, rows, dks, h_max)
    save_panels(
        ctx.artifact_path("softmax_saturation.png"),
        [
            Panel(
                {label: (dks, [r[0] for r in rows[label]]) for label in rows},
                "d_k",
                "softmax entropy (nats)",
                log2_x=True,
                levels={"uniform": h_max},
            ),
            Panel(
                {label: (dks, [r[1] for r in rows[label]]) for label in rows},
                "d_k",
                "mean gradient norm at the logits",
                log2_x=True,
                log_y=True,
            ),
        ],
        title="Dot-product attention with and without 1/sqrt(d_k)",
    )
    return ctx.result(
        f"at d_k={dks[-1]}: entropy {rows['unscaled'][-1][0]:.3f} unscaled vs {rows['scaled'][-1][0]:.3f} scaled "
        f"(uniform {h_max:.2f})"
    )


def _check_saturation(
    ctx: RunContext, rows: dict[str, list[tuple[float, float]]], dks: list[int], h_max: float
) -> None:
    """Section 3.2.1: without 1/sqrt(d_k) the softmax saturates as d_k grows (entropy and
    gradient collapse); with it both stay roughly constant. rows: label -> [(entropy, grad)] per d_k."""
    s_ent = [r[0] for r in rows["scaled"]]
    u_ent = [r[0] for r in rows["unscaled"]]
    u_grad = [r[1] for r in rows["unscaled"]]
    s_grad = [r[1] for r in rows["scaled"]]
    ctx.log(
        f"entropy (max {h_max:.2f}) unscaled: {[round(e, 3) for e in u_ent]}; scaled: {[round(e, 3) for e in s_ent]}"
    )
    ctx.check(
        "unscaled_entropy_fraction_at_max_dk",
        u_ent[-1] / h_max,
        "<",
        0.1,
        f"unscaled softmax nearly one-hot at d_k={dks[-1]}",
    )
    ctx.check(
        "unscaled_grad_vs_peak",
        u_grad[-1] / max(u_grad),
        "<",
        0.3,
        "unscaled gradient norm collapses as d_k grows (last over peak)",
    )
    ctx.check(
        "unscaled_vs_scaled_grad_at_max_dk",
        u_grad[-1] / s_grad[-1],
        "<",
        0.5,
        f"at d_k={dks[-1]} the unscaled softmax passes back under half the scaled gradient",
    )
    ctx.check("scaled_entropy_spread", max(s_ent) / min(s_ent), "<", 1.25, "scaled entropy roughly independent of d_k")
    ctx.check(
        "scaled_grad_spread", max(s_grad) / min(s_grad), "<", 2.0, "scaled gradient norm roughly independent of d_k"
    )


def _fit_exponent(xs, ys) -> float:
    """Slope of log y against log x (least squares)."""
    import math

    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def crossover(xs, cost_a, cost_b) -> float:
    """Where ``cost_a`` (sampled at ``xs``) meets ``cost_b``: the x at which log(a / b)
    changes sign, interpolated linearly in log x. NaN when it never changes sign (no
    crossover inside the sweep) or changes sign more than once (no single crossover)."""
    import math

    logs = [math.log(a / b) for a, b in zip(cost_a, cost_b)]
    signs = [r > 0 for r in logs]
    flips = [i for i in range(len(xs) - 1) if signs[i] != signs[i + 1]]
    if len(flips) != 1:
        return float("nan")
    i = flips[0]
    lx0, lx1 = math.log(xs[i]), math.log(xs[i + 1])
    t = logs[i] / (logs[i] - logs[i + 1])
    return math.exp(lx0 + t * (lx1 - lx0))


def attention_cost(ctx: RunContext) -> Result:
    import functools

    import torch

    p = ctx.params
    torch.manual_seed(ctx.seed)
    attend = functools.partial(_self_attention, heads=p["n_heads"], control=ctx.control)
    with torch.no_grad():
        by_n = {int(n): _measure(attend, p["batch"], int(n), p["d_fixed"], p["repeats"]) for n in p["ns"]}
        by_d = {int(d): _measure(attend, p["batch"], p["n_fixed"], int(d), p["repeats"]) for d in p["ds"]}
    found = {}
    for axis, table, fixed in (("n", by_n, p["d_fixed"]), ("d", by_d, p["n_fixed"])):
        found.update(_crossovers(ctx, axis, table, fixed))
    _check_crossovers(ctx, found)
    _check_sequential_operations(ctx, attend)

    def at(x: float) -> str:
        return f"{x:.0f}" if math.isfinite(x) else "none in the range swept"

    return ctx.result(
        f"measured crossover: n = {at(found[('n', 'flops')])} at d = {p['d_fixed']}, "
        f"d = {at(found[('d', 'flops')])} at n = {p['n_fixed']} (FLOPs); "
        f"in time n = {at(found[('n', 'time')])}, d = {at(found[('d', 'time')])}"
    )


def _self_attention(x: Any, heads: int, control: str | None) -> Any:
    """Table 1's self-attention row: scores and weighted sum over n positions, h heads of
    width d / h (equation 1 per head). x (B, n, d) -> (B, H, n, d/H)."""
    import torch

    from repro.transformer.model import scaled_dot_product_attention

    b, n, d = x.shape
    width = d if control == "heads-full-width" else d // heads
    qkv = x.repeat(1, 1, heads) if control == "heads-full-width" else x
    h = qkv.view(b, n, heads, width).transpose(1, 2)  # (B, H, n, d/H)
    if control == "attention-query-loop":
        rows = [scaled_dot_product_attention(h[:, :, t : t + 1], h, h) for t in range(n)]
        return torch.cat(rows, dim=2)
    return scaled_dot_product_attention(h, h, h)  # (B, H, n, d/H)


def _recurrent(x: Any, w_h: Any, w_x: Any) -> Any:
    """Table 1's recurrent row: n sequential steps, each a d x d product. x (B, n, d) -> (B, d)."""
    import torch

    h = torch.zeros(x.shape[0], x.shape[2])
    for t in range(x.shape[1]):
        h = torch.tanh(h @ w_h + x[:, t] @ w_x)
    return h


def _measure(attend: Callable[[Any], Any], bsz: int, n: int, d: int, repeats: int) -> dict[str, tuple[float, float]]:
    """FLOPs (torch's dispatcher count) and best-of-``repeats`` seconds of both layers at (n, d)."""
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(bsz, n, d)
    w_h, w_x = torch.randn(d, d) / d**0.5, torch.randn(d, d) / d**0.5
    out = {}
    for label, fn in (("attention", lambda: attend(x)), ("recurrent", lambda: _recurrent(x, w_h, w_x))):
        with FlopCounterMode(display=False) as counter:
            fn()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[label] = (counter.get_total_flops(), best)
    return out


def _crossovers(ctx: RunContext, axis: str, table: dict, fixed: int) -> dict[tuple[str, str], float]:
    """Log a sweep along ``axis`` and find where the two layers cost the same, in FLOPs and in time."""
    xs = list(table)
    for x in xs:
        for label in ("attention", "recurrent"):
            ctx.log_metric(f"{label}_flops_vs_{axis}", table[x][label][0], step=x)
            ctx.log_metric(f"{label}_seconds_vs_{axis}", table[x][label][1], step=x)
    for label in ("attention", "recurrent"):  # recorded: they follow from the shapes
        ctx.log_metric(f"{label}_flops_exponent_{axis}", _fit_exponent(xs, [table[x][label][0] for x in xs]))
    found = {}
    for kind, k in (("flops", 0), ("time", 1)):
        x_star = crossover(xs, [table[x]["attention"][k] for x in xs], [table[x]["recurrent"][k] for x in xs])
        found[(axis, kind)] = x_star
        ctx.log_metric(f"{kind}_crossover_{axis}", x_star)
        ctx.log_metric(f"{kind}_crossover_{axis}_over_{'d' if axis == 'n' else 'n'}", x_star / fixed)
        where = f"at {axis} = {x_star:.1f}" if math.isfinite(x_star) else f"nowhere in the {axis} swept"
        ctx.log(
            f"{kind}: self-attention and the recurrent layer cost the same {where} "
            f"({'d' if axis == 'n' else 'n'} = {fixed})"
        )
    return found


def _check_crossovers(ctx: RunContext, found: dict[tuple[str, str], float]) -> None:
    """Table 1: self-attention is cheaper than a recurrent layer while n < d."""
    import math

    p = ctx.params

    def log2_ratio(x_star, fixed):
        return abs(math.log2(x_star / fixed)) if x_star == x_star else float("inf")

    kinds = ("flops", "time") if p["check_time"] else ("flops",)
    for kind in kinds:
        what = "FLOPs counted by torch's dispatcher" if kind == "flops" else "wall time (best of repeats)"
        ctx.check(
            f"{kind}_crossover_n_log2_off_d",
            log2_ratio(found[("n", kind)], p["d_fixed"]),
            "<=",
            1.0,
            f"in {what}, self-attention becomes the costlier layer at a measured n within a factor 2 of "
            f"d = {p['d_fixed']} (cheaper below it, Table 1)",
        )
        ctx.check(
            f"{kind}_crossover_d_log2_off_n",
            log2_ratio(found[("d", kind)], p["n_fixed"]),
            "<=",
            1.0,
            f"in {what}, the recurrent layer becomes the costlier one at a measured d within a factor 2 of "
            f"n = {p['n_fixed']}",
        )


def _check_sequential_operations(ctx: RunContext, attend: Callable[[Any], Any]) -> None:
    """Table 1's sequential operations: one batched product for attention, n dependent steps for the RNN."""
    import torch

    p = ctx.params
    n = int(p["ns"][-1])
    tokens = torch.randn(1, n, p["d_fixed"])
    w = torch.randn(p["d_fixed"], p["d_fixed"])
    seq_ops = {}
    for label, fn in (("attention", lambda: attend(tokens)), ("recurrent", lambda: _recurrent(tokens, w, w))):
        with torch.profiler.profile() as prof:
            fn()
        seq_ops[label] = sum(e.count for e in prof.key_averages() if e.key in ("aten::bmm", "aten::mm"))
        ctx.log_metric(f"{label}_matmul_calls_n{n}", seq_ops[label])
    ctx.check(
        "recurrent_sequential_steps_per_position",
        seq_ops["recurrent"] / n,
        "between",
        (1.0, 3.0),
        "the recurrent layer needs O(n) dependent matrix products",
    )
    ctx.check(
        "attention_matmul_calls", seq_ops["attention"], "<=", 2, "self-attention needs O(1) matrix products, whatever n"
    )


def copy_task(ctx: RunContext) -> Result:
    import time

    import torch

    from repro.transformer.model import Transformer, TransformerConfig, beam_decode, greedy_decode, make_optimizer

    p = ctx.params
    t_start = time.perf_counter()
    torch.manual_seed(ctx.seed)
    cfg = TransformerConfig(
        vocab_size=3 + p["n_symbols"],
        d_model=p["d_model"],
        n_layers=p["n_layers"],
        n_heads=p["n_heads"],
        d_ff=p["d_ff"],
        dropout=0.1,
        warmup_steps=p["warmup"],
        max_len=p["seq_len"] + 2,
    )
    gen = torch.Generator().manual_seed(ctx.seed)

    def batch(n):
        sym = torch.randint(3, cfg.vocab_size, (n, p["seq_len"]), generator=gen)
        out = sym.flip(1) if p["task"] == "reverse" else sym
        eos = torch.full((n, 1), cfg.eos_id)
        src = torch.cat([sym, eos], 1)
        tgt_in = torch.cat([torch.full((n, 1), cfg.bos_id), out], 1)
        tgt_out = torch.cat([out, eos], 1)
        return src, tgt_in, tgt_out

    model = Transformer(cfg)
    opt, sched = make_optimizer(model, cfg, scale=p["lr_scale"])
    for step in range(p["steps"]):
        src, tgt_in, tgt_out = batch(p["batch"])
        if ctx.control == "no-target-shift":
            tgt_in = tgt_out
        loss = model.loss(src, tgt_in, tgt_out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 25 == 0:
            ctx.log_metric("train_loss", loss.item(), step=step + 1)
            ctx.progress(step + 1, p["steps"], f"loss {loss.item():.3f}")

    model.eval()
    src, _, tgt_out = batch(p["eval_size"])
    hyp = greedy_decode(model, src, p["seq_len"] + 1)
    n = min(hyp.shape[1], tgt_out.shape[1])
    correct = (hyp[:, :n] == tgt_out[:, :n]).sum().item()
    acc = correct / tgt_out.numel()
    seq_acc = (hyp[:, :n] == tgt_out[:, :n]).all(1).float().mean().item() if n == tgt_out.shape[1] else 0.0
    beams = beam_decode(model, src[:20], p["seq_len"] + 1, beam_size=4)
    beam_acc = sum(b == t.tolist() for b, t in zip(beams, tgt_out[:20])) / 20
    elapsed = time.perf_counter() - t_start
    ctx.log_metric("token_accuracy", acc)
    ctx.log_metric("sequence_accuracy", seq_acc)
    ctx.log_metric("beam_sequence_accuracy_20", beam_acc)
    ctx.log_metric("seconds", elapsed)
    ctx.check(
        "token_accuracy",
        acc,
        ">=",
        p["target_accuracy"],
        f"greedy decoding of {p['eval_size']} unseen sequences ({p['task']})",
    )
    return ctx.result(f"{p['task']}: {acc:.2%} token accuracy, {seq_acc:.1%} of sequences exact, in {elapsed:.0f} s")
