"""Template prompts: the question callouts a note template writes for the user to answer.

An imported note (Zotero, BibTeX) arrives with the template's questions ("What are the
*primary assumptions* behind this paper?") and nothing under them. Those are prompts,
not questions the user asked: an unanswered prompt is not an "open question" (``paperkb
questions --open``, the summary's "Open questions"). Once answered, it counts as any
other answered question.

The prompts are the seed template's (below) and, when the vault has its own template
(``.paperkb/templates/paper.md``), the question callouts written in it. The index keeps
a fingerprint of them and re-reads the notes when the vault's template changes.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

TEMPLATE_FILE = Path("templates") / "paper.md"
_MAX_TEMPLATE_BYTES = 1_000_000

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


def load_prompts(vault_root: Path | str) -> frozenset[str]:
    """The seed's prompts and those of ``<vault>/.paperkb/templates/paper.md``. A template
    that cannot be read adds nothing (it is the import's business to report it)."""
    path = Path(vault_root) / ".paperkb" / TEMPLATE_FILE
    try:
        st = path.stat()
    except OSError:
        return DEFAULT_PROMPTS
    return _load(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: str, _size: int, _mtime_ns: int) -> frozenset[str]:
    from kb.parse import parse_note

    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_TEMPLATE_BYTES)
    except OSError:
        return DEFAULT_PROMPTS
    template = parse_note(data, "template.md")
    own = {prompt_key(q.text) for q in template.questions if q.text.strip() and "{{" not in q.text}
    return DEFAULT_PROMPTS | frozenset(own)
