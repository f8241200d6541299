"""How fast kb.parse turns a note into a Note (the cold-index bottleneck).

Usage: python bench/parse_speed.py [N]   (N synthetic notes, default 2000)

The notes follow the seed's template: about 2 KB, 10 links and 3 question callouts each.
Prints ms/note for parse_note (markdown-it's path, and ``fast=True``: kb.scan's scanner,
which the index uses) and, for scale, for markdown-it's bare CommonMark parse of the same
text in the same process (the machine may be shared: compare them).
"""

from __future__ import annotations

import os
import random
import sys
import time

from markdown_it import MarkdownIt

import kb.parse
from kb.parse import parse_note

WORDS = "attention model layer token training data scale loss head query key value memory".split()


def synthetic_note(i: int, rng: random.Random) -> str:
    def words(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    keys = [f"author{rng.randrange(10_000)}Paper{rng.randrange(100)}Title{2000 + rng.randrange(24)}" for _ in range(8)]
    return f"""---
tags:
  - paper
  - topic/t{i % 17}
aliases:
  - author{i}Paper{i}Title2023
year: 2023
name: "Paper {i}: {words(6)}"
authors: Ann Author, Bob Builder, Cy Coder
DOI: 10.1234/x.{i}
---
# Descriptions

## Paper {i}
> [!info]
> - **Abstract:** {words(60)}
> - **Cite Key:** [[@author{i}Paper{i}Title2023]]
> - **Tags:** #topic-{i % 5}, #area/sub{i % 3}

>[!note] Highlights:
>- {words(12)} [[{keys[0]}]]
>- {words(12)}

# Questions
>[!question]
>What are the *primary assumptions* behind this paper?

{words(40)} see [[{keys[1]}#Method]] and [[{keys[2]}|the other one]].

>[!faq]- Is it **fast**?
>{words(10)}

>[!question] Does it scale?
>{words(8)}

{words(30)} `code [[not a link]]` %% hidden [[nope]] %% ([draft](drafts/Paper%20{i}.md))

----

## Reference and Related Notes
- [[{keys[3]}]]
- [[{keys[4]}]]
- [[{keys[5]}]]
- [[{keys[6]}]] and [[{keys[7]}]]
"""


def _ms_per_note(fn, notes: list[bytes]) -> float:
    t0 = time.process_time()
    for k, data in enumerate(notes):
        fn(data, k)
    return (time.process_time() - t0) / len(notes) * 1e3


def main() -> None:
    from kb.syntax.dispatch import restore_debug_logging, silence_debug_logging

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rng = random.Random(0)
    notes = [synthetic_note(i, rng).encode() for i in range(n)]
    sizes = sum(map(len, notes)) / n

    plain = MarkdownIt("commonmark")
    before = kb.parse.obsidian_markdown(dispatch=False)  # markdown-it's rule chains as shipped
    kb.parse.prepare()
    after = kb.parse._MD  # what kb.parse uses: rules dispatched on their first character
    note = parse_note(notes[-1], "last.md")
    assert len(note.links) == 10 and len(note.questions) == 3, (len(note.links), len(note.questions))

    def bare(data: bytes, k: int) -> None:
        plain.parse(data.decode())

    def parse(data: bytes, k: int) -> None:
        parse_note(data, f"n{k}.md")

    def parse_fast(data: bytes, k: int) -> None:
        parse_note(data, f"n{k}.md", fast=True)

    from kb.frontmatter import split_frontmatter
    from kb.model import Note
    from kb.scan import scan_body

    def scanned(data: bytes) -> bool:
        text = data.decode()
        raw, line, offset = split_frontmatter(text)
        return scan_body(Note(path="x.md"), "\n" * line + text[offset:] if raw is not None else text) is not None

    accepted = sum(map(scanned, notes))
    assert parse_note(notes[-1], "last.md", fast=True) == note

    # The machine may be shared: interleave the variants and keep each one's best round.
    best: dict[str, float] = {}
    for _ in range(rounds):
        for label, md, quiet, fn in (
            ("bare MarkdownIt('commonmark').parse, as shipped", None, False, bare),
            ("parse_note before: rule chains and debug logging as shipped", before, False, parse),
            ("parse_note now: rules dispatched, debug logging off", after, True, parse),
            ("parse_note(fast=True): kb.scan, the index's path", after, True, parse_fast),
        ):
            silence_debug_logging() if quiet else restore_debug_logging()
            kb.parse._MD = md
            ms = _ms_per_note(fn, notes)
            best[label] = min(best.get(label, ms), ms)
    silence_debug_logging()
    kb.parse._MD = after
    print(f"{n} notes of {sizes:.0f} B ({accepted} taken by kb.scan's scanner), best of {rounds} interleaved "
          f"rounds, ms/note (CPU), load average {os.getloadavg()[0]:.1f}:")
    for label, ms in best.items():
        print(f"  {label:<64}{ms:.3f}")


if __name__ == "__main__":
    main()
