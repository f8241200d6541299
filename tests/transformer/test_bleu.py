"""BLEU through sacrebleu on a tiny translation set, with the signature recorded."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("sacrebleu")

from repro.transformer.bleu import corpus_bleu, read_lines


def test_hand_computed_bleu_and_signature():
    # one sentence, 5 tokens, the last one wrong: precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty
    bleu = corpus_bleu(["a b c d e"], ["a b c d f"], smooth_method="none")
    assert bleu.score == pytest.approx(100 * math.exp(sum(math.log(p) for p in (4 / 5, 3 / 4, 2 / 3, 1 / 2)) / 4))
    assert bleu.precisions == pytest.approx((80.0, 75.0, 200 / 3, 50.0))
    assert bleu.brevity_penalty == 1.0
    assert "tok:13a" in bleu.signature and "smooth:none" in bleu.signature and "nrefs:1" in bleu.signature


def test_tiny_translation_set(tmp_path):
    refs = ["Der Hund schläft.", "Die Katze sitzt auf der Matte.", "Es regnet heute."]
    (tmp_path / "ref.de").write_text("\n".join(refs) + "\n", encoding="utf-8")
    read = read_lines(tmp_path / "ref.de")
    assert read == refs
    assert corpus_bleu(read, refs).score == pytest.approx(100.0)
    short = corpus_bleu(["Der Hund.", "Die Katze sitzt auf der Matte.", "Es regnet heute."], refs)
    assert 0 < short.score < 100 and short.brevity_penalty < 1.0  # a shorter output pays the brevity penalty
    assert corpus_bleu(refs, refs, tokenize="intl").signature != corpus_bleu(refs, refs).signature
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        corpus_bleu(refs[:2], refs)
