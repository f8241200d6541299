"""Benchmarks through the standard engines: lm-evaluation-harness for the Llama 2 benchmark
claims (``repro.evaluation.harness``), sacrebleu for BLEU (``repro.transformer.bleu``).

Both libraries are imported inside functions only: no knowledge-base command pays for them.
"""
