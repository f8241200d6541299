"""The papers' own settings: ``paper`` presets of the built-in experiments, and what the
others would take (issue "The road to reproduced").

Imported by ``repro.registry.load_all`` after the experiment modules. A ``paper`` preset
is the paper's setting and hardware; only a run of one, with direct evidence, can make a
claim ``reproduced``. Where no lab could decide a claim (data never released), no preset
pretends otherwise: :func:`repro.paper.beyond_reach` says what it would take.

Sources: FlashAttention (Dao et al., 2022) Section 4 and Appendix E (A100 40 GB, head
dimension 64, sequence lengths 128 to 64k, fp16); Llama 2 (Touvron et al., 2023) Section 2
(the 7B checkpoint, 4,096-token context).
"""

from __future__ import annotations

from repro.paper import add_paper_preset, beyond_reach
from repro.registry import Preset, Requirements

# An A100 40 GB, the paper's GPU: anything with at least its memory will do.
_A100 = Requirements(device="cuda", triton=True, min_gpu_memory_gb=40)

add_paper_preset(
    "flash-attention/exact",
    Preset(
        params={
            "dtypes": ["float16", "bfloat16"],
            "head_dims": [64, 128],
            "batch": 8,
            "pairs": ["128x128", "1024x1024", "2048x2048", "4096x4096"],
        },
        requires=_A100,
        description="the paper's head sizes (64, 128) and lengths up to 4k in fp16/bf16 on one GPU",
        timeout_s=1800,
    ),
)
add_paper_preset(
    "flash-attention/dropout",
    Preset(
        params={
            "dtypes": ["float16", "bfloat16"],
            "head_dims": [64],
            "batch": 8,
            "pairs": ["1024x1024", "2048x2048"],
            "dropout_p": 0.1,
        },
        requires=_A100,
        description="dropout 0.1 (the paper's GPT-2 and BERT setting), head size 64, fp16/bf16",
        timeout_s=1800,
    ),
)
add_paper_preset(
    "flash-attention/linear-memory",
    Preset(
        params={
            "ns": [1024, 2048, 4096, 8192, 16384],
            "d": 64,
            "heads": 16,
            "impls": ["triton", "naive"],
            "backward": True,
            "dtype": "float16",
        },
        requires=_A100,
        description="Figure 3 right's setting: head size 64, 16 heads, fp16, forward + backward, N up to 16k "
        "(the standard algorithm's N x N scores exceed 40 GB beyond)",
        timeout_s=1800,
    ),
)
add_paper_preset(
    "flash-attention/speed",
    Preset(
        params={
            "ns": [128, 256, 512, 1024, 2048, 4096],
            "head_dims": [64],
            "dtype": "float16",
            "model_dim": 1024,  # 16 heads of 64
            "batch_tokens": 16384,
            "impls": ["triton", "naive"],
            "reps": 10,
        },
        requires=_A100,
        description="Figure 3 left's setting: head size 64, 16 heads, fp16, N = 128 to 4k, against the standard "
        "algorithm",
        timeout_s=1800,
    ),
)
add_paper_preset(
    "flash-attention/block-sparse-speed",
    Preset(
        params={"n": 16384, "d": 64, "heads": 16, "batch": 1, "dtype": "float16", "reps": 10},
        requires=_A100,
        description="Figure 2 right: block-sparse against dense FlashAttention, head size 64, N = 16k, fp16",
        timeout_s=1800,
    ),
)
add_paper_preset(
    "flash-attention/gpt2-end-to-end",
    Preset(
        params={
            "n_layer": 12,
            "n_head": 12,
            "n_embd": 768,
            "vocab_size": 50257,  # GPT-2's own, as Hugging Face's model has it
            "seq": 1024,
            "batch": 8,
            "steps": 30,
            "warmup_steps": 5,
            "lr": 3e-4,
            "impl": "triton",
            "baseline": "hf",
            "dtype": "bfloat16",
            "loss_tolerance": 0.05,
            "compared_steps": 10,
        },
        requires=_A100,
        description="Table 2: GPT-2 small at sequence 1024, our GPT-2 through the Triton kernel against Hugging "
        "Face's GPT2LMHeadModel (standard attention) with the same weights and batches: equal losses (the speed "
        "half is flash-attention/gpt2-speed; one GPU, the paper trained on 8 A100s)",
        timeout_s=3600,
    ),
)
add_paper_preset(
    "flash-attention/gpt2-speed",
    Preset(
        params={"seq": 1024, "batch": 8, "steps": 40, "warmup_steps": 10, "dtype": "bfloat16"},
        requires=_A100,
        description="Table 2: GPT-2 small at sequence 1024 through our Triton kernel against Hugging Face's GPT-2, "
        ">= 3.44x the tokens/s (one GPU; the paper trained on 8 A100s)",
        timeout_s=3600,
    ),
)
add_paper_preset(
    "llama/kv-cache-decode",
    Preset(
        params={"prompt_len": 512, "new_tokens": 128},
        requires=Requirements(device="cuda", min_gpu_memory_gb=40, inputs=("llama-2-7b",)),
        description="Meta's 7B weights loaded into our model (fp32), 512-token prompt + 128 decoded tokens",
        timeout_s=3600,
    ),
)

beyond_reach(
    "flash-attention/io-complexity",
    "HBM traffic read from the GPU's hardware counters (Nsight Compute on an A100); the two-level memory model "
    "counted here is a proxy",
)
beyond_reach(
    "flash-attention/block-sparse-io",
    "HBM traffic read from the GPU's hardware counters (Nsight Compute on an A100); the two-level memory model "
    "counted here is a proxy",
)
beyond_reach(
    "llama/gqa-kv-cache",
    "the Llama 2 70B weights (input llama-2-70b) on GPUs holding them (about 140 GB in fp16); our model runs "
    "on one device only",
)
beyond_reach(
    "llama/hf-parity",
    "a paper preset loading the 7B weights (input llama-2-7b) into both implementations (not written yet)",
)
beyond_reach(
    "llama/train-small",
    "Meta's 2 trillion pretraining tokens (never released) and about 184,000 A100 GPU-hours for the 7B model",
)
for _exp in (
    "finetune/prompt-masking",
    "finetune/reward-margin",
    "finetune/rejection-sampling",
    "finetune/ppo-kl",
    "finetune/ghost-attention",
    "finetune/dpo",
):
    beyond_reach(
        _exp,
        "Meta's supervised fine-tuning and human preference data (never released), which no cluster can replace",
    )
beyond_reach("transformer/copy-task", "the WMT14 data and a cluster: the copy task is a stand-in for translation")
