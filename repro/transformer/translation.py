"""The Transformer's BLEU claims (Vaswani et al., 2017, Table 2): a checkpoint of our model
translates a test set, and the paper's tokenised BLEU is judged against the paper's number.

``transformer/bleu-en-de`` (28.4 on newstest2014) and ``transformer/bleu-en-fr`` (41.8) take
two named inputs (``repro.inputs``): a checkpoint of our Transformer in the format of
``repro.transformer.checkpoint``, written by our trainer (``python -m
repro.transformer.translate train``), and a test set (a folder with ``<name>.<source
language>`` and ``<name>.<target language>``, one sentence a line). The run loads the
checkpoint (safetensors only, its config checked), translates every source sentence with
beam search as section 6.1 sets it (beam 4, length penalty α = 0.6, at most 50 tokens more
than the input), detokenises with the checkpoint's tokenizer and scores the output through
``repro.transformer.bleu``:

- ``bleu``: the paper's kind of BLEU (tokenised: Moses tokenisation, compounds split,
  ``multi-bleu.perl``'s arithmetic), judged against the paper's figure at its printed
  precision: 28.4 is read as [28.35, 28.45), so BLEU >= 28.35 (41.8: >= 41.75);
- ``sacrebleu_13a``: standard detokenised sacreBLEU, recorded with its signature (the
  number others compare with; not judged: the paper did not report it).

The ``paper`` preset reads the big model's checkpoint and newstest2014 (inputs
``transformer-big-en-de`` + ``wmt14-en-de-newstest2014``, or the ``en-fr`` pair); only it can
make a claim ``reproduced``. ``smoke`` and ``full`` score any checkpoint of ours on any test
set (``translation-checkpoint`` + ``translation-test-set``): a proxy for the claim's
setting. Training the big model is not part of the run; at the paper's scale it is a
cluster job (docs/reproducing.md).

Declaration module: no torch at module level.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from paperkb.errors import PaperkbError
from repro.registry import Control, Metric, Param, Preset, Requirements, experiment

# Table 2: the big model's BLEU on newstest2014, printed to one decimal.
PAPER_BLEU = {"de": 28.4, "fr": 41.8}
PRINTED_HALF_UNIT = 0.05  # half the last printed digit: 28.4 stands for [28.35, 28.45)

_SMOKE_INPUTS = ("translation-checkpoint", "translation-test-set")


def _declare(target: str, pair_name: str) -> None:
    paper_inputs = (f"transformer-big-en-{target}", f"wmt14-en-{target}-newstest2014")
    paper = PAPER_BLEU[target]

    @experiment(
        f"transformer/bleu-en-{target}",
        f"Table 2: our Transformer big translates WMT14 {pair_name} newstest2014 to >= {paper} BLEU (the paper's "
        "tokenised BLEU, judged at its printed precision), decoding a checkpoint of ours with beam 4, length "
        "penalty 0.6, output at most input + 50 tokens; sacreBLEU (13a) recorded with its signature",
        params=[
            Param("beam_size", int, 4, "beam width (section 6.1: 4)", bounds=(1, 64)),
            Param("alpha", float, 0.6, "length penalty alpha (section 6.1: 0.6)", bounds=(0.0, 5.0)),
            Param("extra_len", int, 50, "outputs at most this many tokens longer than the input", bounds=(0, 1000)),
            Param("max_sentences", int, 0, "translate only the first N test sentences (0: all)", bounds=(0, 10**6)),
            Param(
                "min_bleu",
                float,
                round(paper - PRINTED_HALF_UNIT, 2),
                f"the paper's {paper} at its printed precision (one decimal): tokenised BLEU >= "
                f"{paper - PRINTED_HALF_UNIT:.2f}",
                threshold=True,
            ),
        ],
        presets={
            "smoke": Preset(
                requires=Requirements(inputs=_SMOKE_INPUTS),
                description="any checkpoint of our Transformer and a test set for it (a toy one will do); the scale "
                "is the checkpoint's, the test set a stand-in for newstest2014",
            ),
            "full": Preset(
                requires=Requirements(inputs=_SMOKE_INPUTS),
                description="as smoke: the scale is the checkpoint's",
            ),
            "paper": Preset(
                requires=Requirements(inputs=paper_inputs),
                description=f"our Transformer big trained on WMT14 {pair_name} (a cluster job), newstest2014 "
                "(3003 sentences), beam 4, alpha 0.6; a GPU is used when there is one",
                timeout_s=12 * 3600,
            ),
        },
        controls=[
            Control("source-blind", "the decoder's cross-attention sees zeros instead of the encoded source"),
            Control(
                "shuffled-references",
                "each translation scored against the reference of the next sentence (a misaligned test set)",
            ),
        ],
        metrics=[
            Metric("bleu", "BLEU", "the paper's tokenised BLEU (Moses tokens, compounds split, no smoothing)"),
            Metric("sacrebleu_13a", "BLEU", "detokenised sacreBLEU, 13a tokenisation (signature in the summary)"),
            Metric("bleu_precision_{n}", "%", "modified n-gram precision of the tokenised BLEU, n = 1..4"),
            Metric("bleu_brevity_penalty", "", "brevity penalty of the tokenised BLEU"),
            Metric("sentences", "", "test sentences translated"),
            Metric("seconds", "s", "time spent translating (recorded, not judged)"),
        ],
        scope="decoding and scoring a given checkpoint of our Transformer; training it happens outside the run "
        "(python -m repro.transformer.translate train), without the paper's averaging of the last 20 checkpoints",
    )
    def bleu_experiment(ctx):
        return _run(ctx, target, paper_inputs)


_declare("de", "English-German")
_declare("fr", "English-French")


def _test_files(folder: str, source_lang: str, target_lang: str) -> tuple[Path, Path]:
    """``<name>.<source_lang>`` and ``<name>.<target_lang>`` in the test-set folder (exactly one each)."""
    path = Path(folder)
    if not path.is_dir():
        raise PaperkbError(f"{path}: a test set is a folder with <name>.{source_lang} and <name>.{target_lang}")
    found = []
    for lang in (source_lang, target_lang):
        matches = sorted(f for f in path.glob(f"*.{lang}") if f.is_file())
        if len(matches) != 1:
            what = "no file" if not matches else f"{len(matches)} files"
            raise PaperkbError(f"{path}: {what} named *.{lang} (the test set needs exactly one)")
        found.append(matches[0])
    return found[0], found[1]


def _run(ctx, target: str, paper_inputs: tuple[str, str]):
    import torch

    from repro.threads import torch_threads
    from repro.transformer.bleu import corpus_bleu, read_lines, tokenized_bleu
    from repro.transformer.checkpoint import load
    from repro.transformer.translate import translate

    p = ctx.params
    checkpoint = ctx.inputs.get(paper_inputs[0]) or ctx.inputs[_SMOKE_INPUTS[0]]
    test_set = ctx.inputs.get(paper_inputs[1]) or ctx.inputs[_SMOKE_INPUTS[1]]
    device = "cuda" if str(ctx.device).startswith("cuda") else "cpu"
    with torch_threads(1 if device == "cpu" and ctx.scale != "paper" else 0):
        model, tokenizer, cfg = load(checkpoint, device)
    src_lang, tgt_lang = cfg["source_lang"], cfg["target_lang"]
    if ctx.scale == "paper" and (src_lang, tgt_lang) != ("en", target):
        raise PaperkbError(
            f"{checkpoint}: the checkpoint translates {src_lang}-{tgt_lang}, the claim is about en-{target}"
        )
    source_file, reference_file = _test_files(test_set, src_lang, tgt_lang)
    sources, references = read_lines(source_file), read_lines(reference_file)
    if len(sources) != len(references) or not sources:
        raise PaperkbError(
            f"{reference_file}: {len(references)} references for {len(sources)} sources in {source_file.name}"
        )
    if p["max_sentences"]:
        sources, references = sources[: p["max_sentences"]], references[: p["max_sentences"]]
    if ctx.control == "source-blind":
        encode = model.encode

        def blind_encode(src):
            memory, mask = encode(src)
            return torch.zeros_like(memory), mask

        model.encode = blind_encode
    if ctx.control == "shuffled-references":
        references = references[1:] + references[:1]
    ctx.log(
        f"{checkpoint}: {src_lang}->{tgt_lang}, d_model {cfg['d_model']}, {cfg['n_layers']} layers; "
        f"{len(sources)} sentences from {source_file.name}, beam {p['beam_size']}, alpha {p['alpha']}"
    )

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            ctx.progress(done, total, "sentences translated")

    t0 = time.perf_counter()
    with torch_threads(1 if device == "cpu" and ctx.scale != "paper" else 0):
        hypotheses = translate(
            model,
            tokenizer,
            sources,
            beam_size=p["beam_size"],
            alpha=p["alpha"],
            extra_len=p["extra_len"],
            device=device,
            progress=progress,
        )
    seconds = time.perf_counter() - t0
    paper_bleu = tokenized_bleu(hypotheses, references, tgt_lang)
    sacre = corpus_bleu(hypotheses, references)  # tok:13a, the standard detokenised score
    ctx.log_metric("bleu", paper_bleu.score)
    for n, precision in enumerate(paper_bleu.precisions, 1):
        ctx.log_metric(f"bleu_precision_{n}", precision)
    ctx.log_metric("bleu_brevity_penalty", paper_bleu.brevity_penalty)
    ctx.log_metric("sacrebleu_13a", sacre.score)
    ctx.log_metric("sentences", len(hypotheses))
    ctx.log_metric("seconds", seconds)
    ctx.artifact_path("hypotheses.txt").write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
    ctx.artifact_path("bleu.json").write_text(
        json.dumps(
            {
                "bleu": paper_bleu.score,
                "bleu_signature": paper_bleu.signature,
                "sacrebleu_13a": sacre.score,
                "sacrebleu_13a_signature": sacre.signature,
                "source": str(source_file),
                "references": str(reference_file),
                "checkpoint": str(checkpoint),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    ctx.check(
        "bleu",
        paper_bleu.score,
        ">=",
        p["min_bleu"],
        f"tokenised BLEU of our model's translations of {source_file.name} ({paper_bleu.signature}) against the "
        f"paper's {PAPER_BLEU[target]} at its printed precision",
        evidence="direct" if ctx.scale == "paper" else "proxy",
    )
    return ctx.result(
        f"BLEU {paper_bleu.score:.2f} [{paper_bleu.signature}]; sacreBLEU {sacre.score:.2f} [{sacre.signature}]; "
        f"{len(hypotheses)} sentences in {seconds:.0f} s"
    )
