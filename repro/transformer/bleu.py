"""BLEU through sacrebleu, with its signature recorded (Vaswani et al., 2017, Section 6.1).

The paper reports BLEU on newstest2014; sacrebleu computes it from detokenised text with a
named tokenisation, and its *signature* (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|
version:2.x``) states every choice that changes the number, so a score is comparable only
with scores of the same signature. :func:`corpus_bleu` returns both; an experiment logs the
score and keeps the signature beside it. The paper used tokenised BLEU (``multi-bleu.perl``
on its own tokenisation, compound splitting for German), which sacrebleu's ``13a`` does not
reproduce exactly; the signature makes that difference visible rather than hiding it.

:func:`tokenized_bleu` is the paper's own kind of number: the tensor2tensor recipe behind its
Table 2 (Moses ``tokenizer.perl`` on hypotheses and references, compounds split as
``a ##AT##-##AT## b``, then ``multi-bleu.perl``: no smoothing, case-sensitive), here with
sacremoses (the Moses tokenizer in Python) and sacrebleu on the tokens (``tok:none``,
``smooth:none``); its signature names the pre-tokenisation beside sacrebleu's own.

sacrebleu and sacremoses are imported inside the functions: knowledge-base commands never pay for them.
"""

from __future__ import annotations

import re
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
    force: bool = False,
) -> Bleu:
    """Corpus BLEU of ``hypotheses`` against one reference each (same order, same count).
    ``force``: score text that is already tokenised without sacrebleu's warning."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    metric = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method, force=force)
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return Bleu(
        float(result.score), str(metric.get_signature()), tuple(float(p) for p in result.precisions), float(result.bp)
    )


# tensor2tensor's compound splitting (get_ende_bleu.sh): perl -ple 's{(\S)-(\S)}{$1 ##AT##-##AT## $2}g'
_COMPOUND = re.compile(r"(\S)-(\S)")


def tokenized_bleu(hypotheses: Sequence[str], references: Sequence[str], lang: str) -> Bleu:
    """The paper's tokenised BLEU of detokenised ``hypotheses`` against ``references`` in
    language ``lang`` (Moses tokenisation, compound splitting, no smoothing). The signature is
    sacrebleu's (``tok:none``) with ``|pretok:moses.<lang>+atat|sacremoses:<version>`` appended."""
    from importlib.metadata import version

    from sacremoses import MosesTokenizer

    moses = MosesTokenizer(lang=lang)

    def prepare(text: str) -> str:
        return _COMPOUND.sub(r"\1 ##AT##-##AT## \2", moses.tokenize(text, return_str=True))

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu = corpus_bleu(
        [prepare(h) for h in hypotheses],
        [prepare(r) for r in references],
        tokenize="none",
        smooth_method="none",
        force=True,
    )
    signature = f"{bleu.signature}|pretok:moses.{lang}+atat|sacremoses:{version('sacremoses')}"
    return Bleu(bleu.score, signature, bleu.precisions, bleu.brevity_penalty)


def read_lines(path: str | Path, max_lines: int = 1_000_000, max_chars: int = 100_000) -> list[str]:
    """A test-set file, one sentence a line (UTF-8; bounded in lines and line length)."""
    lines = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= max_lines:
                raise ValueError(f"{path}: more than {max_lines} lines")
            if len(line) > max_chars:
                raise ValueError(f"{path}:{i + 1}: a line of more than {max_chars} characters")
            lines.append(line.rstrip("\n"))
    return lines
