"""Workloads of repro/evaluation/experiments.py: what each declared experiment trains or measures."""

from __future__ import annotations

from pathlib import Path

from repro.evaluation import controls
from repro.registry import Result, RunContext


def lm_eval_benchmark(ctx: RunContext) -> Result:
    import torch

    from repro.evaluation.harness import evaluate
    from repro.evaluation.lm import PaperkbLlama
    from repro.llama.chat import load_checkpoint

    p = ctx.params
    checkpoint = ctx.inputs.get("llama-2-7b") or ctx.inputs["eval-checkpoint"]
    tasks = ctx.inputs["lm-eval-tasks"]
    if not (Path(checkpoint) / "config.json").is_file():
        from paperkb.errors import PaperkbError

        raise PaperkbError(
            f"{checkpoint}: transformers' reference needs the Hugging Face layout (config.json + safetensors); "
            "convert Meta's layout with transformers' convert_llama_weights_to_hf script"
        )
    limit = p["limit"] or None
    cache = Path(ctx.run_dir) / "hf-datasets-cache" if ctx.run_dir is not None else None
    model, tokenizer = load_checkpoint(checkpoint, device=ctx.device)
    model = model.float().eval()
    if ctx.control == "no-rope":
        controls.without_rope(model)
    ours, our_lls = evaluate(
        PaperkbLlama(model, tokenizer, batch_size=p["batch_size"]),
        p["task"],
        tasks,
        num_fewshot=p["num_fewshot"],
        limit=limit,
        seed=ctx.seed,
        cache_dir=cache,
    )
    del model
    for name, value in ours.items():
        if name != "sample_len":
            ctx.log_metric(name, value)
    ctx.log_metric("documents", len(our_lls))
    summary = ", ".join(f"{k} {v:.4f}" for k, v in ours.items() if k != "sample_len")
    from lm_eval.models.huggingface import HFLM

    if ctx.device.startswith("cuda"):
        torch.cuda.empty_cache()
    reference = HFLM(pretrained=str(checkpoint), device=ctx.device, dtype="float32", batch_size=p["batch_size"])
    theirs, ref_lls = evaluate(
        reference, p["task"], tasks, num_fewshot=p["num_fewshot"], limit=limit, seed=ctx.seed, cache_dir=cache
    )
    for name, value in theirs.items():
        if name != "sample_len":
            ctx.log_metric(f"{name}_reference", value)
    diff = _largest_difference(our_lls, ref_lls)
    ctx.log_metric("max_abs_loglikelihood_diff", diff)
    ctx.check(
        "max_abs_loglikelihood_diff",
        diff,
        "<=",
        p["tolerance"],
        "our Llama gives every answer choice the log-likelihood transformers' gives it, under the same harness",
    )
    for name in sorted(set(ours) & set(theirs) - {"sample_len"}):
        ctx.check(
            f"{name}_reference",
            theirs[name],
            ">=",
            0.0,
            f"transformers' {name} on the same checkpoint (a reference figure)",
            evidence="reference",
        )
    return ctx.result(f"{p['task']} ({p['num_fewshot']}-shot): {summary}; largest log-likelihood gap {diff:.2e}")


def _largest_difference(ours: list[list[float]], theirs: list[list[float]]) -> float:
    """max |ours - theirs| over every document and choice; inf when they do not line up."""
    if len(ours) != len(theirs) or not ours:
        return float("inf")
    worst = 0.0
    for a, b in zip(ours, theirs):
        if len(a) != len(b):
            return float("inf")
        worst = max([worst, *(abs(x - y) for x, y in zip(a, b))])
    return worst
