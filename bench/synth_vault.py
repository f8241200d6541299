"""Generate a synthetic Obsidian vault of N paper notes in the seed note's template.

Each note is about 2 KB: YAML frontmatter (tags, citekey alias, year, name, authors, DOI),
an info callout with abstract, sources, bibliography and ``[[@citekey]]``, a Highlights
callout, three question callouts (some answered), a claim, and a "Reference and Related
Notes" section. Every note has 10 links: the cite key, two mentions in the text and seven
references (one of them to a work without a note: a ghost). Output is deterministic for a
given N and seed.

Usage: python bench/synth_vault.py OUT_DIR [--notes 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

WORDS = (
    "attention transformer model training scaling layer token sequence memory kernel gradient "
    "optimizer dataset benchmark language vision retrieval alignment reward policy inference "
    "latency throughput parameter embedding decoder encoder softmax normalization dropout"
).split()
FIRST = "Ada Alan Grace Edsger Barbara Donald John Frances Leslie Tony Radia Shafi Yoshua Geoffrey Fei".split()
LAST = "Lovelace Turing Hopper Dijkstra Liskov Knuth Backus Allen Lamport Hoare Perlman Goldwasser Bengio Hinton Li".split()
TOPICS = ["deep_learning/models", "deep_learning/generative_models", "nlp", "vision", "systems/gpu", "theory"]


def citekey(i: int) -> str:
    return f"{LAST[i % len(LAST)].lower()}Paper{i:05d}{2000 + i % 24}"


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def title_of(i: int) -> str:
    rng = random.Random(i)
    return f"{sentence(rng, 5)[:-1].title()} {i}"


def note_text(i: int, n_notes: int, rng: random.Random) -> str:
    key = citekey(i)
    year = 2000 + i % 24
    title = title_of(i)
    authors = ", ".join(f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(3, 8)))
    refs = [rng.randrange(n_notes) for _ in range(6)]
    mentions = [rng.randrange(n_notes) for _ in range(2)]
    tags = rng.sample(TOPICS, 2)
    answer = sentence(rng, 14) if rng.random() < 0.5 else ""
    lines = [
        "---",
        "tags:",
        '  - "#paper"',
        *[f"  - {t}" for t in tags],
        "aliases:",
        f"  - {key}",
        f"year: {year}",
        f'name: "{title}"',
        f"authors: {authors}",
        'publication: ""',
        "type: preprint",
        f"DOI: 10.48550/arXiv.{2000 + i % 500}.{i:05d}",
        "date of note:",
        "---",
        "# Descriptions",
        "",
        f"## {title}",
        "> [!info]",
        f"> - **Abstract:** {sentence(rng, 30)} {sentence(rng, 20)}",
        f"> - **Sources**: [online](http://example.org/items/{i}) [pdf](file:///papers/{i}.pdf)",
        f"> - **Bibliography**: {authors.split(',')[0]} et al. ({year}). _{title}_. arXiv.",
        f"> - **Cite Key:** [[@{key}]]",
        f"> - **Tags:** #{tags[0].replace('/', '-')}",
        "",
        ">[!note] Highlights:",
        f">- {sentence(rng, 8)}",
        f">- {sentence(rng, 8)}",
        "",
        f"This work builds on [[{citekey(mentions[0])}]] and compares with [[{citekey(mentions[1])}]].",
        "",
        "> [!claim] " + sentence(rng, 10),
        f"> experiment:: synthetic/exp-{i % 7}",
        f"^claim-{i}",
        "",
        "# Questions",
        "## Questions Regarding to This Paper",
        "",
        ">[!question]",
        ">What are the *primary assumptions* behind this paper?",
        "",
        answer,
        "",
        ">[!question]",
        ">What are the major *problems of concern* behind this paper?",
        "",
        ">[!question]",
        ">What are *the main contributions* of the paper?",
        "",
        sentence(rng, 12),
        "",
        "----",
        "",
        "## Reference and Related Notes",
        "",
        *[f"- [[{citekey(r)}]]" for r in refs],
        f"- [[@ghostWork{rng.randrange(n_notes // 4 + 1):05d}]]",
        "",
    ]
    return "\n".join(lines)


def generate(out: Path, n_notes: int, seed: int = 0, *, folders: int = 20) -> Path:
    """Write ``n_notes`` notes under ``out`` (emptied first), spread over ``folders`` folders."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = random.Random(seed)
    for i in range(n_notes):
        folder = out / f"topic{i % folders:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"{title_of(i)}.md").write_text(note_text(i, n_notes, rng), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    generate(args.out, args.notes, args.seed)
    print(f"wrote {args.notes} notes to {args.out}")


if __name__ == "__main__":
    main()
