"""Reading summaries: one Markdown document for a reading group, built from the vault.

For each paper: its bibliographic line, abstract, highlights, claims with their latest
reproduction status, questions with their answers (open ones flagged), what it cites and
what cites it. A table at the top gives the state of the whole vault at a glance.

The summary is a pure function of the notes and the claim statuses
(``render_summary``); ``write_summary`` wires it to a vault.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kb.model import Note

STATUS_ORDER = ("reproduced", "supported at small scale", "contradicted", "error", "unverified")
_STATUS_MARK = {
    "reproduced": "✅ reproduced",
    "supported at small scale": "🟡 supported at small scale",
    "contradicted": "❌ contradicted",
    "error": "⚠️ error",
    "unverified": "⬜ unverified",
}


@dataclass
class PaperSummary:
    note: Note
    abstract: str
    claims: list[dict[str, Any]]
    cites: list[dict[str, Any]]
    cited_by: list[Note]
    status_counts: Counter = field(default_factory=Counter)


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


def _no_html(value: Any) -> Any:
    """Every value printed into the summary: a ``<`` outside code spans becomes ``&lt;``.

    Notes are untrusted; the summary is Markdown that renderers turn into HTML, and a
    ``<script>`` or ``<img onerror=...>`` in a title or claim must arrive as text. Inside
    backtick code spans ``<`` is already literal, so it is left alone there.
    """
    if not isinstance(value, str) or "<" not in value:
        return value
    parts = re.split(r"(`+[^`]*`+)", value)
    return "".join(part if part.startswith("`") else part.replace("<", "&lt;") for part in parts)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _cell(text: str) -> str:
    """Make text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _authors(note: Note, limit: int = 3) -> str:
    if not note.authors:
        return "unknown authors"
    if len(note.authors) <= limit:
        return ", ".join(note.authors)
    return ", ".join(note.authors[:limit]) + f" et al. ({len(note.authors)} authors)"


def build(notes: Iterable[Note], statuses: dict[str, dict[str, Any]]) -> list[PaperSummary]:
    notes = sorted(notes, key=lambda n: (n.year or 0, n.title.casefold()))
    by_path = {n.path: n for n in notes}
    cited_by: dict[str, list[Note]] = {}
    for n in notes:
        for link in n.links:
            if link.resolved in by_path and link.resolved != n.path:
                lst = cited_by.setdefault(link.resolved, [])
                if n not in lst:
                    lst.append(n)
    papers = []
    for n in notes:
        claims = []
        counts: Counter = Counter()
        for c in n.claims:
            st = statuses.get(c.id) or {}
            status = st.get("status") or "unverified"
            counts[status] += 1
            claims.append(
                {
                    "id": c.id,
                    "statement": c.statement,
                    "experiments": c.experiments,
                    "status": status,
                    "mark": _STATUS_MARK.get(status, status),
                    "run_id": st.get("run_id"),
                    "preset": st.get("preset"),
                }
            )
        cites = []
        seen = set()
        for link in n.links:
            if not link.is_citation:
                continue
            key = link.resolved or link.target
            if key in seen:
                continue
            seen.add(key)
            target = by_path.get(link.resolved or "")
            cites.append(
                {
                    "label": target.title if target else link.target.lstrip("@"),
                    "has_note": target is not None,
                }
            )
        papers.append(PaperSummary(n, abstract_of(n), claims, cites, cited_by.get(n.path, []), counts))
    return papers


_TEMPLATE = """\
# Reading summary: {{ vault_name }}

{{ plural(papers|length, "paper") }}, {{ plural(total_claims, "claim") }}\
{% if total_claims %}: {{ status_line }}{% endif %}. {{ plural(open_questions, "open question") }}. Generated {{ generated }} by paperkb.

| Paper | Year | Claims | Reproduced | Small scale | Contradicted / error | Unverified | Open questions |
|---|---|---|---|---|---|---|---|
{% for p in papers -%}
| {{ cell(p.note.title) }} | {{ p.note.year or "" }} | {{ p.claims|length }} | {{ p.status_counts["reproduced"] }} | \
{{ p.status_counts["supported at small scale"] }} | {{ p.status_counts["contradicted"] + p.status_counts["error"] }} | \
{{ p.status_counts["unverified"] }} | {{ p.note.questions|rejectattr("answered")|list|length }} |
{% endfor %}
{% for p in papers %}
## {{ p.note.title }}{% if p.note.year %} ({{ p.note.year }}){% endif %}

{{ authors(p.note) }}{% if p.note.citekey %} · `{{ p.note.citekey }}`{% endif %}\
{% if p.note.doi %} · DOI [{{ p.note.doi }}](https://doi.org/{{ p.note.doi }}){% endif %} · `{{ p.note.path }}`
{% if p.abstract %}
> {{ p.abstract }}
{% endif %}
{%- if p.note.highlights %}
### Highlights

{% for h in p.note.highlights -%}
- {{ h }}
{% endfor %}
{%- endif %}
{%- if p.claims %}
### Claims

| Claim | Experiments | Status |
|---|---|---|
{% for c in p.claims -%}
| {{ cell(c.statement) }} `^{{ c.id }}` | {{ c.experiments|map("string")|map("cell")|join(", ") }} | \
{{ c.mark }}{% if c.run_id %} (run {{ c.run_id }}, {{ c.preset }}){% endif %} |
{% endfor %}
{%- endif %}
{%- if p.note.questions %}
### Questions

{% for q in p.note.questions -%}
- **{{ " ".join(q.text.split()) }}**{% if q.answered %} {{ " ".join(q.answer.split()) }}{% else %} _(open)_{% endif %}
{% endfor %}
{%- endif %}
{%- if p.cites %}
### Cites

{% for c in p.cites -%}
- {{ c.label }}{% if not c.has_note %} _(no note yet)_{% endif %}
{% endfor %}
{%- endif %}
{%- if p.cited_by %}
### Cited by

{% for n in p.cited_by -%}
- {{ n.title }}
{% endfor %}
{%- endif %}
{% endfor %}
"""


def render_summary(
    notes: Iterable[Note],
    statuses: dict[str, dict[str, Any]] | None = None,
    *,
    vault_name: str = "vault",
    generated: str | None = None,
) -> str:
    """Render the reading summary as Markdown."""
    import jinja2

    papers = build(notes, statuses or {})
    totals: Counter = Counter()
    for p in papers:
        totals.update(p.status_counts)
    total_claims = sum(totals.values())
    status_line = ", ".join(f"{totals[s]} {s}" for s in STATUS_ORDER if totals[s])
    open_questions = sum(1 for p in papers for q in p.note.questions if not q.answered)
    env = jinja2.Environment(autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             finalize=_no_html)
    env.filters["cell"] = _cell
    text = env.from_string(_TEMPLATE).render(
        papers=papers,
        vault_name=vault_name,
        total_claims=total_claims,
        status_line=status_line,
        open_questions=open_questions,
        generated=generated or _dt.date.today().isoformat(),
        cell=_cell,
        authors=_authors,
        plural=_plural,
    )
    return re.sub(r"\n{3,}", "\n\n", text)


def write_summary(vault_root: Path | str, output: Path | str | None = None) -> str:
    """Render the summary of the vault at ``vault_root``; write it to ``output`` if given."""
    from kb.vault import Vault

    vault = Vault(vault_root)
    notes = vault.notes()
    try:
        from repro.status import claim_statuses

        statuses = claim_statuses(vault.root)
    except ImportError:
        statuses = {}
    text = render_summary(notes, statuses, vault_name=vault.root.name)
    if output is not None:
        Path(output).write_text(text, encoding="utf-8")
    return text
