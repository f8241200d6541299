"""Packing several examples into one row (Section 3.1: "we concatenate all the prompts and
answers from the training set" into fixed-length sequences) without letting one example
see another: each example restarts at position 0 and attends only to itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from repro.finetune.losses import IGNORE


@dataclass
class PackedBatch:
    tokens: torch.Tensor  # (R, N) token ids, pad = 0
    labels: torch.Tensor  # (R, N) -100 where there is no loss
    positions: torch.Tensor  # (R, N) position inside the example
    doc: torch.Tensor  # (R, N) example index within the row, -1 for padding

    def mask(self) -> torch.Tensor:
        return document_mask(self.doc)


def pack(examples: Sequence[tuple[Sequence[int], Sequence[int]]], seq_len: int) -> PackedBatch:
    """Greedy first-fit packing of (ids, labels) pairs into rows of ``seq_len`` tokens, in
    order. An example longer than a row is truncated (its tail dropped)."""
    rows: list[list[tuple[list[int], list[int]]]] = []
    used: list[int] = []
    for ids, labels in examples:
        ids, labels = list(ids)[:seq_len], list(labels)[:seq_len]
        for r, n in enumerate(used):
            if n + len(ids) <= seq_len:
                rows[r].append((ids, labels))
                used[r] += len(ids)
                break
        else:
            rows.append([(ids, labels)])
            used.append(len(ids))
    R = len(rows)
    tokens = torch.zeros(R, seq_len, dtype=torch.long)
    lab = torch.full((R, seq_len), IGNORE, dtype=torch.long)
    pos = torch.zeros(R, seq_len, dtype=torch.long)
    doc = torch.full((R, seq_len), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for d, (ids, labels) in enumerate(row):
            n = len(ids)
            tokens[r, at : at + n] = torch.tensor(ids)
            lab[r, at : at + n] = torch.tensor(labels)
            # the first label of an example is never predicted from the previous example
            lab[r, at] = IGNORE
            pos[r, at : at + n] = torch.arange(n)
            doc[r, at : at + n] = d
            at += n
        pos[r, at:] = torch.arange(seq_len - at)
    return PackedBatch(tokens, lab, pos, doc)


def document_mask(doc: torch.Tensor) -> torch.Tensor:
    """(R, N) example indices -> (R, 1, N, N) bool: query i may see key j when j <= i and
    both belong to the same example (padding forms one example of its own)."""
    n = doc.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=doc.device).tril()
    same = doc[:, :, None] == doc[:, None, :]
    return (same & causal).unsqueeze(1)


def pad_right(seqs: Sequence[Sequence[int]], value: int = 0, length: int | None = None) -> torch.Tensor:
    n = length or max(len(s) for s in seqs)
    out = torch.full((len(seqs), n), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = list(s)[:n]
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out
