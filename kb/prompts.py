"""Template prompts: the question callouts a note template writes for the user to answer.

An imported note (Zotero, BibTeX) arrives with the template's questions ("What are the
*primary assumptions* behind this paper?") and nothing under them. Those are prompts,
not questions the user asked: an unanswered prompt is not an "open question" (``paperkb
questions --open``, the summary's "Open questions"). Once answered, it counts as any
other answered question.

The prompts are the seed template's (below) and, when the vault has its own template
(``.paperkb/templates/paper.md``), the question callouts written in it. The index keeps
a fingerprint of them and re-reads the notes when the vault's template changes. Reading the
vault's template (which needs kb.parse, itself a user of ``prompt_key``) is kb.vault_prompts'.
"""

from __future__ import annotations

import hashlib
import re

# The question callouts of the seed's Zotero template (and of `paperkb import bibtex`).
SEED_PROMPTS = (
    "What are the *primary assumptions* behind this paper?",
    "What are the major *problems of concern* behind this paper? If i had to guess, what does the "
    "author seems to be concerned.",
    "What are the major *problems of concern* behind this paper?",
    "What are *the main contributions* of the paper?",
    "Is the problem behind this paper related to problem of mine?",
    "What impact does this paper have on me?",
)


def prompt_key(text: str) -> str:
    """The comparison form of a question: emphasis marks and case dropped, blanks folded."""
    return " ".join(re.sub(r"[*_`]", "", text).casefold().split())


DEFAULT_PROMPTS: frozenset[str] = frozenset(prompt_key(p) for p in SEED_PROMPTS)


def prompts_fingerprint(prompts: frozenset[str]) -> str:
    if prompts == DEFAULT_PROMPTS:
        return "default"
    raw = "\x00".join(sorted(prompts)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=8).hexdigest()
