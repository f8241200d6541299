"""A byte-level tokenizer with Llama's special ids, for small local models.

Llama 2's real tokenizer is a 32k SentencePiece model that would have to be downloaded;
the experiments here train and decode small models from scratch, for which UTF-8 bytes
are enough. Ids: 0 = <unk>, 1 = <s> (BOS), 2 = </s> (EOS) as in Llama, then byte b -> b + 3.
"""

from __future__ import annotations


class ByteTokenizer:
    unk_id = 0
    bos_id = 1
    eos_id = 2
    pad_id = -1  # as in Meta's tokenizer: no padding token; generation pads internally
    offset = 3
    n_words = 256 + offset

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = [b + self.offset for b in text.encode("utf-8")]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids) -> str:
        data = bytes(i - self.offset for i in ids if self.offset <= i < self.n_words)
        return data.decode("utf-8", errors="replace")

    def save(self, directory) -> None:
        """Mark a checkpoint folder as using this tokenizer (it has no vocabulary file)."""
        import json
        from pathlib import Path

        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / BYTE_MARKER).write_text(json.dumps({"tokenizer": "byte"}) + "\n")


BYTE_MARKER = "byte_tokenizer.json"
