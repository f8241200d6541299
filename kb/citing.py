"""Which links of a note count as citations: one rule, read from ``.paperkb/papers.yaml``.

A link is a **citation** when it stands in a section whose heading starts with one of
the rule's words (the section runs to the next heading of the same or a higher level),
or anywhere in the body when the vault says so::

    # <vault>/.paperkb/papers.yaml
    citations:
      headings: [References, Bibliography, Related, Cites, Citations, Works Cited]
      anywhere: false        # true: every link in a paper's body is a citation

The default matches the seed template's ``## Reference and Related Notes`` and the
usual ``References`` / ``Bibliography`` / ``Related Work`` headings, and not
``## Questions Related to Me`` (the word must open the heading): a paper that talks
about a later paper in its questions mentions it, it does not cite it.

Every other link is a **mention**. The parser marks each link (``Link.is_citation``)
with this rule; the graph (``cites`` edges), ``links``/``backlinks``, the reading summary
("Cites" and "Cited by") and the site all read that one mark. The summary and the site
list papers only, so a citing link from a note that is not a paper shows there as a
mention. The index stores the rule's fingerprint and re-reads every note when it changes.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from kb.errors import VaultError

RULE_FILE = "papers.yaml"
DEFAULT_HEADINGS = ("References", "Bibliography", "Related", "Cites", "Citations", "Works Cited")
_MAX_WORDS = 100
_MAX_WORD_CHARS = 200


@dataclass(frozen=True)
class CitationRule:
    headings: tuple[str, ...] = DEFAULT_HEADINGS
    anywhere: bool = False

    @functools.cached_property
    def _heading_re(self) -> re.Pattern[str] | None:
        words = [w.strip() for w in self.headings if w.strip()]
        if not words:
            return None
        # each word is literal text (no regex from a config file); blanks match any run of
        # blanks; an optional numbering ("7.", "A.2") and a trailing letter "s" are allowed
        alts = "|".join(r"\s+".join(re.escape(p) for p in _singular(w).split()) + "s?" for w in words)
        return re.compile(rf"(?:(?:\d+(?:\.\d+)*\.?|[A-Z]\.\d+(?:\.\d+)*\.?|[A-Z]\.)\s+)?(?:{alts})(?![^\W_])", re.I)

    def is_citing_heading(self, text: str) -> bool:
        """Whether a section under this heading (emphasis already stripped) cites."""
        pattern = self._heading_re
        return pattern is not None and pattern.match(text.strip()) is not None

    def fingerprint(self) -> str:
        if self == DEFAULT_CITATION_RULE:
            return "default"
        raw = repr((self.headings, self.anywhere)).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(raw, digest_size=8).hexdigest()

    def describe(self) -> str:
        if self.anywhere:
            return "every link in the body"
        return "links under a heading starting with " + ", ".join(self.headings)


DEFAULT_CITATION_RULE = CitationRule()


def _singular(word: str) -> str:
    """``References`` -> ``Reference`` (the pattern adds an optional ``s`` back)."""
    return word[:-1] if len(word) > 3 and word[-1] in "sS" and word[-2] not in "sS" else word


def load_citation_rule(vault_root: Path | str) -> CitationRule:
    """The ``citations:`` part of ``<vault>/.paperkb/papers.yaml``, else the default.
    A malformed value is an error naming the file, never a silent default."""
    path = Path(vault_root) / ".paperkb" / RULE_FILE
    try:
        st = path.stat()
    except OSError:
        return DEFAULT_CITATION_RULE
    return _load(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(path: str, _size: int, _mtime_ns: int) -> CitationRule:
    from kb.frontmatter import load_frontmatter
    from paperkb.files import read_regular

    # a regular file of bounded size only (a FIFO would hang), read with note frontmatter's
    # YAML limits (size, aliases, depth), as kb.publish.papers reads the same file
    try:
        text = read_regular(path, 100_000).decode("utf-8", "replace")
    except OSError as exc:
        raise VaultError(f"{path}: cannot read: {exc.strerror or exc}") from None
    data, _, issues = load_frontmatter(text, first_line=1) if text.strip() else ({}, None, [])
    errors = [(line, message) for line, severity, message in issues if severity == "error"]
    if errors:
        raise VaultError(f"{path}:{errors[0][0]}: not valid YAML") from None
    if not isinstance(data, dict):
        raise VaultError(f"{path}: expected a mapping of rule keys")
    section = data.get("citations")
    if section is None:
        return DEFAULT_CITATION_RULE
    if not isinstance(section, dict):
        raise VaultError(f"{path}: 'citations' should be a mapping (headings: [...], anywhere: true|false)")
    unknown = sorted(str(k) for k in section if k not in ("headings", "anywhere"))
    if unknown:
        raise VaultError(f"{path}: unknown key 'citations.{unknown[0]}' (known: headings, anywhere)")
    headings = section.get("headings", list(DEFAULT_HEADINGS))
    if isinstance(headings, str):
        headings = [headings]
    if not isinstance(headings, list) or not all(isinstance(h, str) for h in headings):
        raise VaultError(f"{path}: 'citations.headings' should be a list of heading words")
    if len(headings) > _MAX_WORDS or any(len(h) > _MAX_WORD_CHARS for h in headings):
        raise VaultError(f"{path}: 'citations.headings' is too long (at most {_MAX_WORDS} words)")
    anywhere = section.get("anywhere", False)
    if not isinstance(anywhere, bool):
        raise VaultError(f"{path}: 'citations.anywhere' should be true or false")
    return CitationRule(headings=tuple(h.strip() for h in headings if h.strip()), anywhere=anywhere)
