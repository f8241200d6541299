"""The prompts of a vault: the seed template's (kb.prompts) and the question callouts of the
vault's own template, ``<vault>/.paperkb/templates/paper.md``, read with kb.parse."""

from __future__ import annotations

import functools
from pathlib import Path

from kb.prompts import DEFAULT_PROMPTS, prompt_key

TEMPLATE_FILE = Path("templates") / "paper.md"
_MAX_TEMPLATE_BYTES = 1_000_000


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
    from kb.parse import parse_note  # only when the vault has a template: keeps start-up lean

    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_TEMPLATE_BYTES)
    except OSError:
        return DEFAULT_PROMPTS
    template = parse_note(data, "template.md")
    own = {prompt_key(q.text) for q in template.questions if q.text.strip() and "{{" not in q.text}
    return DEFAULT_PROMPTS | frozenset(own)
