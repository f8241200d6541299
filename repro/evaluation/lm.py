"""Our Llama as an lm-evaluation-harness model, so that the harness judges our implementation.

:class:`PaperkbLlama` implements lm-eval's ``TemplateLM`` over
:class:`repro.llama.model.Transformer`: the harness builds the prompts (few-shot examples,
answer choices), calls :meth:`_loglikelihood_tokens` and :meth:`generate_until`, and scores
them with its own metrics. Tokenisation follows Hugging Face's convention for Llama
checkpoints (a BOS token first unless the harness asks for none), so the same checkpoint
scored through transformers (lm-eval's ``hf`` model) sees the same token ids.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM

from repro.llama.model import Transformer


class PaperkbLlama(TemplateLM):
    """lm-eval model: our Transformer and a checkpoint's tokenizer (``repro.llama.tokenizers_real``)."""

    backend = "causal"

    def __init__(self, model: Transformer, tokenizer: Any, *, batch_size: int = 8, max_length: int | None = None):
        super().__init__()
        self.model = model.eval()
        self.tok = tokenizer
        self.batch_size_per_gpu = max(1, int(batch_size))
        self.max_length = int(max_length or model.params.max_seq_len)
        self._device = next(model.parameters()).device

    # tokens ------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return int(self.tok.eos_id)

    @property
    def prefix_token_id(self) -> int:
        return int(self.tok.bos_id)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        # Hugging Face's Llama tokenizers put BOS first by default; so does this one.
        return self.tok.encode(string, bos=add_special_tokens is not False)

    def tok_decode(self, tokens: list[int]) -> str:
        return self.tok.decode(tokens)

    # scoring -----------------------------------------------------------------------
    @torch.inference_mode()
    def _loglikelihood_tokens(
        self, requests: list, disable_tqdm: bool = False, **kwargs: Any
    ) -> list[tuple[float, bool]]:
        """log P(continuation | context) and whether the continuation is the greedy one,
        for each ``((context, continuation), context_ids, continuation_ids)``."""
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        # longest first, so that a batch pads little (right padding: a causal model's
        # positions before the padding never see it)
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1]) - len(requests[i][2]))
        for start in range(0, len(order), self.batch_size_per_gpu):
            chunk = order[start : start + self.batch_size_per_gpu]
            rows, spans = [], []
            for i in chunk:
                _, ctx_ids, cont_ids = requests[i]
                whole = (list(ctx_ids) + list(cont_ids))[-(self.max_length + 1) :]
                inp = whole[:-1]  # (T,): the model predicts whole[1:]
                n_cont = len(cont_ids)
                rows.append(inp)
                spans.append((len(inp) - n_cont, len(inp), whole[-n_cont:]))
            width = max(len(r) for r in rows)
            batch = torch.zeros(len(rows), width, dtype=torch.long, device=self._device)
            for b, r in enumerate(rows):
                batch[b, : len(r)] = torch.tensor(r, dtype=torch.long)
            logprobs = F.log_softmax(self.model(batch, 0).float(), dim=-1)  # (B, T, V)
            for b, i in enumerate(chunk):
                lo, hi, target = spans[b]
                lp = logprobs[b, lo:hi]  # (n_cont, V)
                tgt = torch.tensor(target, dtype=torch.long, device=self._device)
                total = lp.gather(-1, tgt[:, None]).sum().item()
                greedy = bool((lp.argmax(-1) == tgt).all().item())
                results[i] = (float(total), greedy)
        return [r for r in results if r is not None]

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        """Whole-text log-likelihood (perplexity tasks) in windows of the context length."""
        out = []
        for req in requests:
            ids = self.tok_encode(req.args[0], add_special_tokens=False)
            total = 0.0
            prev = [self.prefix_token_id]
            for start in range(0, len(ids), self.max_length):
                piece = ids[start : start + self.max_length]
                context = (prev + ids[:start])[-(self.max_length - len(piece)) :] if start else prev
                [(ll, _)] = self._loglikelihood_tokens([(("", ""), context, piece)])
                total += ll
            out.append(total)
        return out

    @torch.inference_mode()
    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        """Greedy decoding with our KV cache until a stop string or ``max_gen_toks``."""
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            until = list(gen_kwargs.get("until") or [])
            max_new = int(gen_kwargs.get("max_gen_toks", 256))
            ids = self.tok_encode(context)[-(self.max_length - max_new) :]
            cache = self.model.new_cache(1, len(ids) + max_new)
            tokens = torch.tensor([ids], dtype=torch.long, device=self._device)
            logits = self.model(tokens, 0, cache, last_only=True)[:, -1]
            new: list[int] = []
            text = ""
            for step in range(max_new):
                nxt = int(logits.argmax(-1).item())
                if nxt == self.eot_token_id:
                    break
                new.append(nxt)
                text = self.tok_decode(new)
                if any(s in text for s in until):
                    break
                step_in = torch.tensor([[nxt]], dtype=torch.long, device=self._device)
                logits = self.model(step_in, len(ids) + step, cache)[:, -1]
            for s in until:
                text = text.split(s)[0]
            out.append(text)
        return out
