"""Training data: readers for the usual JSONL forms, and synthetic tasks whose hidden rules
the code knows (so every experiment can score its model exactly, with nothing downloaded).

JSONL forms (one object per line; a bad line is reported as ``file:line``):
- SFT: ``{"prompt": ..., "completion": ...}`` or ``{"messages": [{"role", "content"}, ...]}``;
- preferences: ``{"prompt": ..., "chosen": ..., "rejected": ..., "rating": 0-3 or a label}``
  (rating levels of Table 8, 0 = "significantly better"; missing = 3);
- prompts (rejection sampling, PPO): ``{"prompt": ...}`` (any of the forms above also gives
  its prompt: the first user message of a dialog).

``repro.finetune.examples`` writes a small file of each form.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from paperkb.errors import PaperkbError
from repro.finetune.losses import RATING_LEVELS

MAX_LINE = 1 << 20  # a line longer than this is refused, not parsed


# ---------------------------------------------------------------------------------------
# JSONL readers
# ---------------------------------------------------------------------------------------
def _lines(path: str | Path) -> Iterator[tuple[int, dict]]:
    path = Path(path)
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise PaperkbError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        for n, line in enumerate(fh, 1):
            if len(line) > MAX_LINE:
                raise PaperkbError(f"{path}:{n}: line longer than {MAX_LINE} characters")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PaperkbError(f"{path}:{n}: not JSON ({exc.msg})") from None
            except ValueError as exc:  # also raised for well-formed input, e.g. an integer too long to convert
                raise PaperkbError(f"{path}:{n}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise PaperkbError(f"{path}:{n}: expected a JSON object")
            yield n, obj


def _text(obj: dict, key: str, where: str) -> str:
    val = obj.get(key)
    if not isinstance(val, str):
        raise PaperkbError(f"{where}: {key!r} must be a string")
    return val


def read_sft(path: str | Path) -> list[list[dict]]:
    """Dialogs (lists of messages) from prompt/completion or messages lines."""
    out = []
    for n, obj in _lines(path):
        where = f"{path}:{n}"
        if "messages" in obj:
            msgs = obj["messages"]
            if not isinstance(msgs, list) or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in msgs
            ):
                raise PaperkbError(f"{where}: 'messages' must be a list of {{role, content}} objects")
            roles = [m["role"] for m in msgs if m["role"] != "system"]
            if not roles or roles[-1] != "assistant":
                raise PaperkbError(f"{where}: the dialog must end with an assistant message")
            out.append([{"role": m["role"], "content": m["content"]} for m in msgs])
        else:
            out.append(
                [
                    {"role": "user", "content": _text(obj, "prompt", where)},
                    {"role": "assistant", "content": _text(obj, "completion", where)},
                ]
            )
    return out


def read_prompts(path: str | Path) -> list[str]:
    """The user prompts of a prompts, SFT or preferences file (rejection sampling and PPO
    sample their own answers, so only the prompt is read)."""
    out = []
    for n, obj in _lines(path):
        where = f"{path}:{n}"
        if "messages" in obj and "prompt" not in obj:
            msgs = obj["messages"]
            users = (
                [m.get("content") for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
                if isinstance(msgs, list)
                else []
            )
            if not users or not isinstance(users[0], str):
                raise PaperkbError(f"{where}: 'messages' holds no user message")
            out.append(users[0])
        else:
            out.append(_text(obj, "prompt", where))
    if not out:
        raise PaperkbError(f"{path}: no prompts")
    return out


@dataclass
class Pair:
    prompt: str
    chosen: str
    rejected: str
    level: int = 3  # index into RATING_LEVELS


def read_preferences(path: str | Path) -> list[Pair]:
    out = []
    for n, obj in _lines(path):
        where = f"{path}:{n}"
        rating = obj.get("rating", 3)
        if isinstance(rating, str):
            low = rating.strip().lower()
            if low not in RATING_LEVELS:
                raise PaperkbError(f"{where}: unknown rating {rating!r} (one of {', '.join(RATING_LEVELS)})")
            level = RATING_LEVELS.index(low)
        elif isinstance(rating, int) and not isinstance(rating, bool) and 0 <= rating < len(RATING_LEVELS):
            level = rating
        else:
            raise PaperkbError(f"{where}: rating must be 0-3 or a level name")
        out.append(Pair(_text(obj, "prompt", where), _text(obj, "chosen", where), _text(obj, "rejected", where), level))
    return out


# ---------------------------------------------------------------------------------------
# A synthetic world with hidden rules
# ---------------------------------------------------------------------------------------
TEMPLATE_TAGS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")

# Ghost Attention: a system attribute and the word that marks an answer respecting it.
ATTRIBUTES = {"pirate": "arr", "french": "oui", "robot": "beep"}
DEFAULT_MARKER = "ok"


@dataclass
class ToyWorld:
    """A closed vocabulary of content words, each with a hidden quality weight.

    Helpfulness of an answer (a few content words) = the sum of its words' weights;
    annotators prefer the better of two answers with probability σ(k·gap) (Bradley-Terry
    noise, so near-ties are coin flips, as Table 8's "negligibly better" column), and rate
    the pair by the size of the gap."""

    n_words: int = 24
    answer_len: int = 6
    seed: int = 0
    annotator_sharpness: float = 3.0
    level_gaps: tuple = (1.5, 0.9, 0.4)  # gap thresholds of levels 0, 1, 2 (else 3)
    words: list = field(init=False)
    weights: dict = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.words = [f"w{i:02d}" for i in range(self.n_words)]
        ws = [i / (self.n_words - 1) for i in range(self.n_words)]
        rng.shuffle(ws)
        self.weights = dict(zip(self.words, ws))

    def vocabulary(self) -> list[str]:
        extra = ["rate", "speak", "as", *ATTRIBUTES, *ATTRIBUTES.values(), DEFAULT_MARKER]
        return self.words + extra

    def tokenizer(self, directory: str | Path):
        from repro.llama.tokenizers_real import train_wordlevel

        return train_wordlevel(self.vocabulary(), directory, extra_tokens=TEMPLATE_TAGS)

    # helpfulness ------------------------------------------------------------------
    def prompt(self, rng: random.Random) -> str:
        return "rate " + " ".join(rng.choice(self.words) for _ in range(2))

    def random_answer(self, rng: random.Random) -> str:
        return " ".join(rng.choice(self.words) for _ in range(self.answer_len))

    def score(self, answer: str) -> float:
        """The hidden helpfulness rule; unknown words count 0, a wrong length is penalised."""
        toks = answer.split()
        s = sum(self.weights.get(t, 0.0) for t in toks[: self.answer_len])
        return s - abs(len(toks) - self.answer_len)

    def level(self, gap: float) -> int:
        for i, g in enumerate(self.level_gaps):
            if gap >= g:
                return i
        return len(self.level_gaps)

    def pairs(self, n: int, rng: random.Random, exclude: Optional[set] = None) -> list[Pair]:
        """Annotated pairs; ``exclude`` holds answers that must not appear (held-out sets
        share nothing with training sets)."""
        out: list[Pair] = []
        while len(out) < n:
            prompt, a, b = self.prompt(rng), self.random_answer(rng), self.random_answer(rng)
            if a == b or (exclude and (a in exclude or b in exclude)):
                continue
            gap = self.score(a) - self.score(b)
            p_a = 1 / (1 + math.exp(-self.annotator_sharpness * gap))
            chosen, rejected = (a, b) if rng.random() < p_a else (b, a)
            out.append(Pair(prompt, chosen, rejected, self.level(abs(gap))))
        return out

    def sft_dialogs(self, n: int, rng: random.Random) -> list[list[dict]]:
        """Demonstrations of the answer format (random words: the policy starts with no
        preference, so every reward gain later comes from RLHF)."""
        return [
            [{"role": "user", "content": self.prompt(rng)}, {"role": "assistant", "content": self.random_answer(rng)}]
            for _ in range(n)
        ]


# ---------------------------------------------------------------------------------------
# Ghost Attention's world: an instruction that every later turn must respect
# ---------------------------------------------------------------------------------------
def instruction(attribute: str) -> str:
    return f"speak as {attribute}"


def oracle_reply(user_message: str) -> str:
    """The sampler of the toy: like a chat model without GAtt, it follows an instruction
    only when it can see it in the message it is answering."""
    toks = user_message.split()
    marker = DEFAULT_MARKER
    for attr, m in ATTRIBUTES.items():
        if instruction(attr) in user_message:
            marker = m
    return f"{marker} {toks[-1]}"


def gatt_dialog(
    world: ToyWorld,
    n_turns: int,
    rng: random.Random,
    attribute: str,
    concat_instruction: bool = True,
    respond: Callable[[str], str] = oracle_reply,
    keep_every_turn: bool = False,
) -> list[dict]:
    """Section 3.3: sample a multi-turn dialog with the instruction concatenated to every
    user turn (``concat_instruction``; without it, only the first turn carries it, through
    the system prompt), then keep the instruction in the first turn only. With
    ``keep_every_turn`` the dialog is returned as it was sampled (the instruction in every
    user turn): the data of ordinary multi-turn fine-tuning, the baseline GAtt is set against."""
    inst = instruction(attribute)
    dialog = [{"role": "system", "content": inst}]
    for t in range(n_turns):
        user = rng.choice(world.words)
        seen = f"{inst} {user}" if (concat_instruction or t == 0) else user
        shown = seen if keep_every_turn and t > 0 else user
        dialog += [{"role": "user", "content": shown}, {"role": "assistant", "content": respond(seen)}]
    return dialog
