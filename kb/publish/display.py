"""How the exports show a note and a claim's status: the status columns and marks, an author
line, a claim's checks and controls, a paper's abstract. Shared by the reading summary
(kb.publish.summary), the static site (kb.publish.site) and BibTeX (kb.publish.bibtex)."""

from __future__ import annotations

import re
from typing import Any

from kb.model import Note

STATUS_ORDER = ("reproduced", "supported at small scale", "contradicted", "error", "needs", "unverified")
# How a dashboard column reads in a sentence ("needs a CUDA GPU" and its kin share one column).
STATUS_LABEL = {"needs": "need what this machine lacks"}
_STATUS_MARK = {
    "reproduced": "✅",
    "supported at small scale": "🟡",
    "supported": "🟡",
    "contradicted": "❌",
    "error": "⚠️",
    "needs": "⏸️",
    "unverified": "⬜",
}
AUTHORS_SHOWN = 3


def status_class(status: str) -> str:
    """The dashboard column of a status string ("supported at small scale (proxy)" ->
    "supported at small scale"); statuses no column names fall under "unverified"."""
    s = (status or "unverified").strip().casefold()
    for word in STATUS_ORDER:
        if s.startswith(word):
            return word
    if s.startswith("supported"):
        return "supported at small scale"
    return "unverified"


def status_mark(status: str) -> str:
    s = (status or "unverified").strip()
    mark = next((m for word, m in _STATUS_MARK.items() if s.casefold().startswith(word)), "⬜")
    return f"{mark} {s}"


_ABSTRACT = re.compile(r"^\s*-?\s*\*\*Abstract:?\*\*:?\s*(.*)$", re.IGNORECASE)


def abstract_of(note: Note) -> str:
    """The abstract line of the template's info callout, else the frontmatter ``abstract``."""
    for callout in note.callouts:
        for line in callout.content.splitlines():
            m = _ABSTRACT.match(line)
            if m and m.group(1).strip():
                return m.group(1).strip()
    value = note.frontmatter.get("abstract") or note.frontmatter.get("abstractNote")
    return str(value).strip() if value else ""


def authors_line(note: Note, limit: int = AUTHORS_SHOWN) -> str:
    """``A, B, C et al. (12 authors)``: the first ``limit`` authors and how many there are."""
    if not note.authors:
        return "unknown authors"
    if len(note.authors) <= limit:
        return ", ".join(note.authors)
    return ", ".join(note.authors[:limit]) + f" et al. ({len(note.authors)} authors)"


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # a count measured as a float: every digit matters
        return f"{value:.6g}"
    return str(value)


def claim_checks(st: dict[str, Any]) -> list[dict[str, Any]]:
    """A claim status's checks and negative controls as rows to print (name, text, mark ...)."""
    out = []
    for c in st.get("checks") or []:
        if not isinstance(c, dict):
            continue
        passed = c.get("passed")
        out.append(
            {
                "name": str(c.get("name", "")),
                "text": f"{c.get('name', '')} = {_number(c.get('value'))} {c.get('op', '')} {_number(c.get('threshold'))}".strip(),
                "passed": passed,
                "mark": "✓" if passed else ("✗" if passed is False else "?"),
                "evidence": c.get("evidence") or "",
                "scale": c.get("scale") or "",
                "run_id": c.get("run_id"),
            }
        )
    # the negative controls: a sabotaged implementation that must end contradicted
    for c in st.get("controls") or []:
        if not isinstance(c, dict):
            continue
        ok = c.get("ok")
        verdict = c.get("verdict") or c.get("error") or "not run"
        out.append(
            {
                "name": f"control {c.get('control', '')}",
                "text": f"negative control {c.get('control', '')} ({c.get('experiment', '')}): {verdict}",
                "passed": ok,
                "mark": "✓" if ok else "✗",
                "evidence": "",
                "scale": "",
                "run_id": c.get("run_id"),
            }
        )
    return out
