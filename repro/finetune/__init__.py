"""Llama 2-Chat's fine-tuning steps (Touvron et al., 2023, Section 3), at toy scale on a CPU
and under torchrun on GPUs.

- ``losses``: the objectives as small pure functions (answer-only LM loss, the margin
  ranking loss with Table 27's margins, DPO's sigmoid loss, PPO's pieces: whitening, the
  safety gate, the KL-penalised reward, GAE, the clipped surrogate);
- ``packing``: several examples in one row without attention or positions crossing over;
- ``data``: JSONL readers and synthetic tasks whose hidden rules the code knows;
- ``heads``: a scalar head on the Llama backbone (reward model, PPO value head);
- ``loop``: AdamW (0.9/0.95, eps 1e-5, wd 0.1), clipping 1.0, cosine with warmup, DDP/FSDP,
  safetensors checkpoints that resume exactly;
- the trainers: ``sft``, ``reward``, ``rejection``, ``ppo``, ``gatt``, ``dpo``;
- ``experiments``: the registered experiments behind the Llama 2 note's claims.

Importing the package does not import torch.
"""
