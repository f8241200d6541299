"""Decoding for Llama 2: greedy, temperature and nucleus (top-p) sampling with the KV
cache, and the Llama 2-Chat prompt format (section 3 of the paper; defaults T = 0.6,
p = 0.9 as in Meta's ``generation.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Protocol, TypedDict

import torch

from repro.llama.model import Transformer

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


class Tokenizer(Protocol):
    bos_id: int
    eos_id: int

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]: ...


# ---------------------------------------------------------------------------------------
# Chat format
# ---------------------------------------------------------------------------------------
def chat_segments(dialog: Sequence[Message]) -> list[tuple[str, bool, bool]]:
    """The dialog as (text, bos, eos) pieces, each encoded separately, as Meta does: an
    optional system prompt is folded into the first user turn inside <<SYS>> tags; each
    finished (user, assistant) exchange is "<s>[INST] u [/INST] a </s>"; the last user
    turn is left open for the model to answer."""
    dialog = list(dialog)
    if not dialog:
        raise ValueError("empty dialog")
    if dialog[0]["role"] == "system":
        if len(dialog) < 2:
            raise ValueError("a system prompt must be followed by a user message")
        first = Message(role=dialog[1]["role"], content=B_SYS + dialog[0]["content"] + E_SYS + dialog[1]["content"])
        dialog = [first, *dialog[2:]]
    roles = [m["role"] for m in dialog]
    if roles[::2] != ["user"] * len(roles[::2]) or roles[1::2] != ["assistant"] * len(roles[1::2]):
        raise ValueError(
            "the dialog must alternate user and assistant turns, starting with the user "
            "(after an optional system prompt)"
        )
    if roles[-1] != "user":
        raise ValueError("the last message must come from the user")
    segments = [
        (f"{B_INST} {user['content'].strip()} {E_INST} {answer['content'].strip()} ", True, True)
        for user, answer in zip(dialog[:-1:2], dialog[1::2])
    ]
    segments.append((f"{B_INST} {dialog[-1]['content'].strip()} {E_INST}", True, False))
    return segments


def format_chat(dialog: Sequence[Message]) -> str:
    """The prompt as text, with <s> and </s> written out (for display and tests)."""
    return "".join(("<s>" if bos else "") + text + ("</s>" if eos else "") for text, bos, eos in chat_segments(dialog))


def chat_prompt_tokens(dialog: Sequence[Message], tokenizer: Tokenizer) -> list[int]:
    tokens: list[int] = []
    for text, bos, eos in chat_segments(dialog):
        tokens += tokenizer.encode(text, bos=bos, eos=eos)
    return tokens


# ---------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------
def sample_top_p(probs: torch.Tensor, p: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Nucleus sampling (Holtzman et al., 2020), with Meta's boundary rule: keep a token
    while the mass of the tokens more likely than it is at most p, renormalise, draw.
    probs (B, V) -> (B, 1)."""
    probs_sort, probs_idx = torch.sort(probs, dim=-1, descending=True)
    mass_before = torch.cumsum(probs_sort, dim=-1) - probs_sort
    probs_sort = probs_sort.masked_fill(mass_before > p, 0.0)  # the top token always stays
    probs_sort = probs_sort / probs_sort.sum(dim=-1, keepdim=True)
    choice = torch.multinomial(probs_sort, num_samples=1, generator=generator)
    return torch.gather(probs_idx, -1, choice)


def next_token(
    logits: torch.Tensor, temperature: float, top_p: float, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """logits (B, V) -> tokens (B,); temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return sample_top_p(probs, top_p, generator).squeeze(-1)


def _flash_decoding_impl(model: Transformer, device: torch.device, wanted: Optional[bool]) -> Optional[str]:
    """The attention impl for the cached one-token steps: "auto" (which picks split-KV
    flash-decoding for a few queries on CUDA, repro.attention.api) when the model runs
    torch's sdpa on a CUDA device and triton is installed; None to leave the model as is."""
    if wanted is False or device.type != "cuda" or model.params.attn_impl not in ("sdpa", "auto"):
        return None
    from repro.attention.api import triton_available

    return "auto" if triton_available() else None


@torch.inference_mode()
def generate(
    model: Transformer,
    prompt_tokens: Sequence[Sequence[int]],
    max_gen_len: int,
    temperature: float = 0.6,
    top_p: float = 0.9,
    eos_id: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    use_cache: bool = True,
    flash_decoding: Optional[bool] = None,
) -> list[list[int]]:
    """Continue each prompt by up to ``max_gen_len`` tokens; return the new tokens of each
    row, cut after its EOS. Rows of different lengths are decoded together, as in Meta's
    reference: decoding starts at the shortest prompt and a longer prompt's own tokens
    overwrite the samples until it runs out. ``use_cache=False`` recomputes the whole
    prefix at each step (for checking the cache). ``flash_decoding`` (default: on CUDA
    with triton) runs the cached steps after the prompt through split-KV decoding."""
    bsz = len(prompt_tokens)
    if bsz == 0 or any(len(t) == 0 for t in prompt_tokens):
        raise ValueError("every prompt needs at least one token")
    params = model.params
    device = model.output.weight.device
    min_len = min(len(t) for t in prompt_tokens)
    max_len = max(len(t) for t in prompt_tokens)
    total_len = min(params.max_seq_len, max_gen_len + max_len)
    if max_len >= total_len:
        raise ValueError(f"prompt of {max_len} tokens leaves no room within max_seq_len {params.max_seq_len}")
    pad = -1
    tokens = torch.full((bsz, total_len), pad, dtype=torch.long, device=device)
    for i, t in enumerate(prompt_tokens):
        tokens[i, : len(t)] = torch.tensor(list(t), dtype=torch.long, device=device)
    is_prompt = tokens != pad
    done = torch.zeros(bsz, dtype=torch.bool, device=device)
    cache = model.new_cache(bsz, total_len) if use_cache else None
    prev = 0
    decode_impl = _flash_decoding_impl(model, device, flash_decoding) if use_cache else None
    own_impl = model.params.attn_impl
    try:
        for cur in range(min_len, total_len):
            if use_cache:
                logits = model(tokens[:, prev:cur], prev, cache, last_only=True)[:, -1]
                if prev == 0 and decode_impl is not None:
                    model.set_attn_impl(decode_impl)  # the prompt is in the cache: one token at a time now
                prev = cur
            else:
                logits = model(tokens[:, :cur], 0, None, last_only=True)[:, -1]
            nxt = next_token(logits, temperature, top_p, generator)
            nxt = torch.where(is_prompt[:, cur], tokens[:, cur], nxt)
            tokens[:, cur] = nxt
            if eos_id is not None:
                done |= ~is_prompt[:, cur] & (nxt == eos_id)
                if bool(done.all()):
                    break
    finally:
        if model.params.attn_impl != own_impl:
            model.set_attn_impl(own_impl)
    out = []
    for i, t in enumerate(tokens.tolist()):
        start = len(prompt_tokens[i])
        new = [x for x in t[start : start + max_gen_len] if x != pad]
        if eos_id is not None and eos_id in new:
            new = new[: new.index(eos_id) + 1]
        out.append(new)
    return out
