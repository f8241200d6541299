"""A multi-turn chat with a local Llama checkpoint, in the Llama 2-Chat format.

Library side of ``paperkb chat``: it loads a checkpoint folder (Hugging Face layout,
Meta's ``consolidated.*.pth``, or one written by ``repro.finetune``), keeps the dialog,
and refuses user or system text containing the template's own tags, as Meta's
``chat_completion`` does (otherwise a user could forge a system prompt or a turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

from paperkb.errors import PaperkbError

if TYPE_CHECKING:
    from repro.llama.generation import Message, Tokenizer
    from repro.llama.model import Transformer

    class ChatTokenizer(Tokenizer, Protocol):
        """A tokenizer that also decodes (every one in repro.llama.tokenizers_real does)."""

        def decode(self, ids: Sequence[int]) -> str: ...


SPECIAL_TAGS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
# A checkpoint with this file is a reward model (repro.finetune.heads writes it): a score, no text.
SCORE_HEAD_FILE = "score_head.safetensors"


class UnsafeTagError(PaperkbError):
    """User or system text that contains one of the chat template's tags."""


def check_no_tags(text: str, who: str = "user") -> str:
    for tag in SPECIAL_TAGS:
        if tag in text:
            raise UnsafeTagError(f"special tags are not allowed in {who} text (found {tag})")
    return text


def checkpoint_kind(directory: str | Path) -> str:
    """ "hf" (config.json + safetensors), "meta" (params.json + consolidated.*.pth)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PaperkbError(f"{directory}: not a folder")
    if (directory / "config.json").is_file():
        return "hf"
    if (directory / "params.json").is_file():
        return "meta"
    raise PaperkbError(f"{directory}: no config.json (Hugging Face layout) or params.json (Meta layout)")


def load_checkpoint(directory: str | Path, device: str = "cpu"):
    """(model, tokenizer) from a checkpoint folder of any supported layout."""
    from repro.llama.tokenizers_real import load_tokenizer
    from repro.llama.weights import load_hf, load_meta

    directory = Path(directory)
    kind = checkpoint_kind(directory)
    if (directory / SCORE_HEAD_FILE).is_file():
        raise PaperkbError(
            f"{directory}: a reward model (a scalar score head, {SCORE_HEAD_FILE}), not a generative model; "
            "chat with a policy checkpoint (sft, rejection, ppo, dpo or gatt)"
        )
    from repro.llama.checkpoint_check import check_tokenizer_files

    check_tokenizer_files(directory)  # before the model: all of the folder is checked first
    model = load_hf(directory, device=device) if kind == "hf" else load_meta(directory, device=device)
    tokenizer = load_tokenizer(directory)
    if tokenizer.n_words > model.params.vocab_size:
        raise PaperkbError(
            f"{directory}: the tokenizer has {tokenizer.n_words} tokens, the model only {model.params.vocab_size}"
        )
    return model.eval(), tokenizer


def until_end_of_turn(ids: Sequence[int], tokenizer: ChatTokenizer) -> list[int]:
    """An answer's tokens up to its end of turn: ``</s>``, or where a small model goes on to
    open the next turn itself (``<s>`` or an ``[INST]`` token) without ending its own."""
    from repro.llama.generation import B_INST

    inst = tokenizer.encode(B_INST)
    stops = {tokenizer.eos_id, tokenizer.bos_id, *(inst if len(inst) == 1 else ())}
    out: list[int] = []
    for t in ids:
        if t in stops:
            break
        out.append(t)
    return out


def end_of_turn(text: str) -> str:
    """The answer's text before any template tag (a byte-level model spells ``[INST]`` out)."""
    for tag in SPECIAL_TAGS:
        text = text.split(tag, 1)[0]
    return text.strip()


@dataclass
class ChatSession:
    model: Transformer
    tokenizer: ChatTokenizer
    system: Optional[str] = None
    temperature: float = 0.6
    top_p: float = 0.9
    max_gen_len: int = 64
    seed: int = 0
    history: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        import torch

        if self.system is not None:
            check_no_tags(self.system, "system")
        self.generator = torch.Generator().manual_seed(self.seed)

    def dialog(self, user_text: str) -> list[Message]:
        msgs: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + self.history + [{"role": "user", "content": user_text}]

    def reply(self, user_text: str) -> str:
        """Answer one user turn and remember the exchange."""
        from repro.llama.generation import chat_prompt_tokens, generate

        check_no_tags(user_text, "user")
        prompt = chat_prompt_tokens(self.dialog(user_text), self.tokenizer)
        room = self.model.params.max_seq_len - len(prompt)
        if room <= 0:
            raise PaperkbError(
                f"the dialog ({len(prompt)} tokens) no longer fits the model's "
                f"{self.model.params.max_seq_len}-token context; start a new chat"
            )
        out = generate(
            self.model,
            [prompt],
            min(self.max_gen_len, room),
            self.temperature,
            self.top_p,
            eos_id=self.tokenizer.eos_id,
            generator=self.generator,
        )[0]
        answer = end_of_turn(self.tokenizer.decode(until_end_of_turn(out, self.tokenizer)))
        self.history += [{"role": "user", "content": user_text}, {"role": "assistant", "content": answer}]
        return answer
