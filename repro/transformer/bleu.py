"""BLEU through sacrebleu, with its signature recorded (Vaswani et al., 2017, Section 6.1).

The paper reports BLEU on newstest2014; sacrebleu computes it from detokenised text with a
named tokenisation, and its *signature* (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|
version:2.x``) states every choice that changes the number, so a score is comparable only
with scores of the same signature. :func:`corpus_bleu` returns both; an experiment logs the
score and keeps the signature beside it. The paper used tokenised BLEU (``multi-bleu.perl``
on its own tokenisation, compound splitting for German), which sacrebleu's ``13a`` does not
reproduce exactly; the signature makes that difference visible rather than hiding it.

sacrebleu is imported inside the function: knowledge-base commands never pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bleu:
    score: float  # 0-100, as the paper reports it
    signature: str  # sacrebleu's, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    precisions: tuple[float, ...]  # modified n-gram precisions (%), n = 1..4
    brevity_penalty: float


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: str = "exp",
) -> Bleu:
    """Corpus BLEU of ``hypotheses`` against one reference each (same order, same count)."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    metric = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return Bleu(
        float(result.score), str(metric.get_signature()), tuple(float(p) for p in result.precisions), float(result.bp)
    )


def read_lines(path: str | Path, max_lines: int = 1_000_000) -> list[str]:
    """A test-set file, one sentence a line (UTF-8; bounded)."""
    lines = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= max_lines:
                raise ValueError(f"{path}: more than {max_lines} lines")
            lines.append(line.rstrip("\n"))
    return lines
