"""Benchmark claims through lm-evaluation-harness, with our Llama as the harness's model.

``llama/lm-eval`` runs one lm-eval task (a local task folder: input ``lm-eval-tasks``) on
a checkpoint twice: through our implementation (:class:`repro.evaluation.lm.PaperkbLlama`)
and through transformers' ``LlamaForCausalLM`` (lm-eval's own ``hf`` model, the reference).
The harness builds the prompts and computes the metrics; the check is that our model
gives the same log-likelihood to every answer choice as the reference (so the score is
our implementation's), and a claim's ``expect::`` judges the score itself (``acc``,
``acc_norm``, ``exact_match`` ... as the harness names them). The paper's setting (Llama 2
Table 3: MMLU 5-shot, ...) is the ``paper`` preset on Meta's 7B weights; the task and
shot count come from the claim's ``params::``.

Declaration module: no torch or lm-eval import at module level.
"""

from __future__ import annotations

from repro.registry import Control, Metric, Param, Preset, Requirements, Result, RunContext, experiment


@experiment(
    "llama/lm-eval",
    "a benchmark task through lm-evaluation-harness on a local checkpoint: our Llama's log-likelihoods equal "
    "transformers' on every answer choice, and the harness's score is recorded for the claim's expectation",
    params=[
        Param("task", str, "paperkb_letters", "lm-eval task name, from the lm-eval-tasks folder"),
        Param("num_fewshot", int, 0, "few-shot examples (the paper's: MMLU 5, ARC 0, ...)"),
        Param("limit", int, 0, "documents to evaluate (0: all)"),
        Param("batch_size", int, 8, "requests per forward pass"),
        Param(
            "tolerance",
            float,
            1e-3,
            "largest |log-likelihood difference| allowed between ours and transformers'",
            threshold=True,
        ),
    ],
    presets={
        "smoke": Preset(
            requires=Requirements(inputs=("eval-checkpoint", "lm-eval-tasks")),
            description="any small HF Llama checkpoint on the CPU (a toy one will do)",
        ),
        "full": Preset(
            requires=Requirements(inputs=("eval-checkpoint", "lm-eval-tasks")),
            description="as smoke: the scale is the checkpoint's",
        ),
        "paper": Preset(
            requires=Requirements(device="cuda", min_gpu_memory_gb=40, inputs=("llama-2-7b", "lm-eval-tasks")),
            description="Meta's Llama 2 7B weights in fp32 on one GPU (ours, then transformers'), the claim's task "
            "and shot count",
            timeout_s=6 * 3600,
        ),
    },
    controls=[Control("no-rope", "our model with its rotary position embeddings switched off")],
    metrics=[
        Metric("acc", "", "the harness's accuracy on the task, our model"),
        Metric("acc_norm", "", "the harness's length-normalised accuracy, our model"),
        Metric("exact_match", "", "the harness's exact-match score (generation tasks), our model"),
        Metric("{name}_stderr", "", "the harness's standard error of a score"),
        Metric("{name}_reference", "", "the same score of transformers' Llama on the same checkpoint (reference)"),
        Metric("documents", "", "documents evaluated"),
        Metric(
            "max_abs_loglikelihood_diff",
            "nats",
            "largest |log-likelihood difference| between ours and transformers' over every answer choice",
        ),
    ],
)
def lm_eval_benchmark(ctx: RunContext) -> Result:
    from repro.evaluation import workloads

    return workloads.lm_eval_benchmark(ctx)
