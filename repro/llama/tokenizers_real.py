"""Real subword tokenizers behind the byte tokenizer's interface.

Every tokenizer here has ``bos_id``, ``eos_id``, ``pad_id``, ``n_words``,
``encode(text, bos=False, eos=False) -> list[int]``, ``decode(ids) -> str`` and
``save(directory)``, so the model, the chat template and the trainers take any of them:

- :class:`HFTokenizer`: a Hugging Face ``tokenizer.json`` (the ``tokenizers`` package), as
  shipped in HF checkpoint folders;
- :class:`SentencePieceTokenizer`: a SentencePiece ``tokenizer.model``, the format of Meta's
  Llama 2 release (a 32k BPE model with byte fallback);
- :class:`~repro.llama.tokenizer.ByteTokenizer`: UTF-8 bytes, for models trained from scratch.

``load_tokenizer(folder)`` picks whichever the folder holds. ``train_bpe`` and
``train_sentencepiece`` build small ones offline from text (tests train them on the vault).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

from paperkb.errors import PaperkbError
from repro.llama.tokenizer import BYTE_MARKER, ByteTokenizer

HF_FILE = "tokenizer.json"
SP_FILE = "tokenizer.model"
BOS, EOS, UNK = "<s>", "</s>", "<unk>"


class HFTokenizer:
    """A ``tokenizers.Tokenizer`` with Llama's BOS/EOS conventions."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer

        self.path = Path(path)
        try:
            self.tok = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # the library raises its own exception types
            raise PaperkbError(f"{self.path}: not a tokenizer.json ({exc})") from None
        self.bos_id = self._id(BOS)
        self.eos_id = self._id(EOS)
        self.unk_id = self._id(UNK)
        self.pad_id = -1
        self.n_words = self.tok.get_vocab_size(with_added_tokens=True)

    def _id(self, token: str) -> int:
        i = self.tok.token_to_id(token)
        if i is None:
            raise PaperkbError(f"{self.path}: the vocabulary has no {token} token")
        return i

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = self.tok.encode(text, add_special_tokens=False).ids
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids if int(i) not in (self.bos_id, self.eos_id) and 0 <= int(i) < self.n_words]
        return self.tok.decode(ids, skip_special_tokens=False)

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.tok.save(str(Path(directory) / HF_FILE))


class SentencePieceTokenizer:
    """A SentencePiece model, used as Meta's ``llama/tokenizer.py`` uses it."""

    def __init__(self, path: str | Path):
        import sentencepiece as spm

        self.path = Path(path)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(str(self.path))
        except Exception as exc:
            raise PaperkbError(f"{self.path}: not a SentencePiece model ({exc})") from None
        self.bos_id = self.sp.bos_id()
        self.eos_id = self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        self.pad_id = self.sp.pad_id()
        self.n_words = self.sp.vocab_size()

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = list(self.sp.encode(text))
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids if 0 <= int(i) < self.n_words])

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / SP_FILE).write_bytes(self.path.read_bytes())


def load_tokenizer(directory: str | Path, default_bytes: bool = True):
    """The tokenizer a checkpoint folder holds: tokenizer.json, else tokenizer.model, else
    (a folder of ours marked so, or ``default_bytes``) the byte tokenizer."""
    directory = Path(directory)
    if (directory / HF_FILE).is_file():
        return HFTokenizer(directory / HF_FILE)
    if (directory / SP_FILE).is_file():
        return SentencePieceTokenizer(directory / SP_FILE)
    if (directory / BYTE_MARKER).is_file() or default_bytes:
        return ByteTokenizer()
    raise PaperkbError(f"{directory}: no {HF_FILE} or {SP_FILE}")


# ---------------------------------------------------------------------------------------
# Training small tokenizers offline
# ---------------------------------------------------------------------------------------
def train_bpe(
    texts: Iterable[str], vocab_size: int, out_dir: str | Path, extra_tokens: Sequence[str] = ()
) -> HFTokenizer:
    """A byte-level BPE ``tokenizer.json`` (GPT-2 style pre-tokenisation, so any text
    round-trips) trained on ``texts``; ``extra_tokens`` become single added tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[UNK, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    if extra_tokens:
        tok.add_tokens(list(extra_tokens))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / HF_FILE))
    return HFTokenizer(out_dir / HF_FILE)


def train_wordlevel(words: Iterable[str], out_dir: str | Path, extra_tokens: Sequence[str] = ()) -> HFTokenizer:
    """A whitespace word-level ``tokenizer.json`` over a closed vocabulary (the synthetic
    tasks' words): short sequences, so small models learn long dialogs quickly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {UNK: 0, BOS: 1, EOS: 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    if extra_tokens:
        tok.add_special_tokens(list(extra_tokens))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / HF_FILE))
    return HFTokenizer(out_dir / HF_FILE)


def train_sentencepiece(
    texts: Iterable[str], vocab_size: int, out_dir: str | Path, model_type: str = "bpe"
) -> SentencePieceTokenizer:
    """A SentencePiece model with Llama 2's settings (BPE, byte fallback, split digits,
    identity normalisation, <unk>=0 <s>=1 </s>=2), trained on ``texts``."""
    import io

    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([t for t in texts if t.strip()]),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        allow_whitespace_only_pieces=True,
        max_sentence_length=1 << 16,
        minloglevel=2,
        num_threads=1,
    )
    path = out_dir / SP_FILE
    path.write_bytes(model.getvalue())
    return SentencePieceTokenizer(path)


def vault_texts(vault: str | Path, max_chars: Optional[int] = 2_000_000) -> list[str]:
    """The lines of a vault's Markdown notes (inside the vault only), for training."""
    vault = Path(vault).resolve()
    lines: list[str] = []
    total = 0
    for path in sorted(vault.rglob("*.md")):
        if not path.resolve().is_relative_to(vault) or not path.is_file():
            continue
        for line in path.read_text("utf-8", errors="replace").splitlines():
            if line.strip():
                lines.append(line)
                total += len(line)
                if max_chars is not None and total >= max_chars:
                    return lines
    return lines
