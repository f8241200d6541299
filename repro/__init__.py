"""paperkb's reproduction side: the experiments registry, the runner, the tracker, and the
science (attention kernels, Llama 2, the Transformer, Llama 2-Chat fine-tuning)."""
