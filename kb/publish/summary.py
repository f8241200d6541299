"""Reading summaries: a document a reading group can be handed, in Markdown or HTML.

For each paper: title, authors (shortened after a few), year, venue, DOI link and tags;
the abstract; highlights; the questions with their answers, open ones apart; a claims
table with each claim's status, the checks behind it with their measured values and a
link to the latest run; the plots those runs saved; the paper's citation neighbourhood
(cites, cited by, ghost works without a note) drawn as a picture; and its BibTeX entry. A
summary of the whole vault starts with a dashboard of every claim. Pictures are inlined in
HTML and in embedded Markdown; a Markdown file gets them as files beside it
(:func:`write_with_files`).

The summary is a pure function of the notes, the claim statuses and the runs folder
(``render_summary``): kb never imports repro, so the caller (the CLI) passes
``repro.status.claim_statuses(...)`` and ``<vault>/.paperkb/runs`` in. Statuses have
the shape ``{claim_id: {"status", "run_id", "preset", "scale", "ended", "checks": [...]}}``;
missing keys are fine.
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from kb.model import Note
from kb.publish.display import (
    STATUS_LABEL,
    STATUS_ORDER,
    abstract_of,
    authors_line,
    claim_checks,
    status_class,
    status_mark,
)
from kb.publish.papers import DEFAULT_RULE, EXPORT_MARKER, Citations, PaperRule

PLOT_MAX_BYTES = 3_000_000  # a plot larger than this is linked, not inlined
PLOTS_PER_RUN = 6
PICTURES_MAX_PAPERS = 500  # past this, a summary is a catalogue: no neighbourhood drawings


@dataclass
class PaperSummary:
    note: Note
    abstract: str
    claims: list[dict[str, Any]]
    cites: list[dict[str, Any]]
    cited_by: list[Note]
    mentioned_by: list[Note] = field(default_factory=list)
    status_counts: Counter = field(default_factory=Counter)
    plots: list[dict[str, Any]] = field(default_factory=list)
    picture: str = ""  # SVG of the citation neighbourhood
    bibtex: str = ""
    mentions: list[dict[str, Any]] = field(default_factory=list)  # links out that are not citations
    venue: str = ""


class _Md(str):
    """Markdown this module built itself from escaped text (a table cell, a code span
    whose content has no backtick, a figure): printed as it is."""


# ``<`` opens raw HTML and autolinks, a backtick opens a code span (which could swallow the
# template's own backticks and turn a code span's content back into live text), and a
# backslash could escape the entity after it. As character references they are text.
_TEXT_ESCAPES = str.maketrans({"<": "&lt;", "`": "&#96;", "\\": "&#92;"})


def _md_text(value: Any) -> str:
    """Untrusted text as Markdown that renders as exactly that text's characters (for HTML's
    sake: no tag, no code span, no escape can come out of it, whatever the renderer's
    HTML setting)."""
    return str(value).translate(_TEXT_ESCAPES)


def _no_html(value: Any) -> Any:
    """Every value printed into the Markdown goes through :func:`_md_text` unless this
    module built it (``_Md``). One rule for every value, with no exception for what looks
    like a code span: a note's ``T `<img onerror=...>` end`` arrives as text."""
    if isinstance(value, _Md) or not isinstance(value, str):
        return value
    return _md_text(value)


def _code(text: Any) -> _Md:
    """Text for the inside of the template's own code spans and fences (literal there): no
    backticks; and, as everywhere, no raw ``<`` from a note, for renderers that are not
    CommonMark's (the summary holds none, in code or out)."""
    return _Md(str(text).replace("`", "").replace("<", "&lt;"))


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _cell(text: Any) -> str:
    """Make text safe inside a Markdown table cell."""
    return _Md(_md_text(" ".join(str(text).split())).replace("|", "\\|"))


def _inline(text: Any) -> str:
    """One line of note text: no line breaks, no Markdown link syntax that could point
    elsewhere (``[x](javascript:...)`` stays text)."""
    return _Md(_md_text(" ".join(str(text).split()).replace("](", "]\u200b(")))


def _safe_run_dir(runs_dir: Path | None, run_id: Any) -> Path | None:
    """The run's folder, only when ``run_id`` is a plain name inside ``runs_dir``."""
    if runs_dir is None or not run_id or not isinstance(run_id, str):
        return None
    if "/" in run_id or "\\" in run_id or run_id in (".", "..") or "\x00" in run_id:
        return None
    path = runs_dir / run_id
    try:
        if path.is_dir() and not path.is_symlink() and path.resolve().is_relative_to(runs_dir.resolve()):
            return path
    except OSError:
        return None
    return None


def run_plots(runs_dir: Path | None, run_id: Any) -> list[Path]:
    """The PNG plots a run saved in its folder (sorted; symlinks skipped)."""
    folder = _safe_run_dir(runs_dir, run_id)
    if folder is None:
        return []
    try:
        return sorted(p for p in folder.rglob("*.png") if p.is_file() and not p.is_symlink())[:PLOTS_PER_RUN]
    except OSError:
        return []


def build(
    notes: Iterable[Note],
    statuses: dict[str, dict[str, Any]],
    *,
    citations: Citations | None = None,
    runs_dir: Path | str | None = None,
    pictures: bool = False,
    bibtex: bool = False,
    rule: PaperRule = DEFAULT_RULE,
) -> list[PaperSummary]:
    """One :class:`PaperSummary` per paper of ``notes`` (year then title order).
    ``citations`` is the whole vault's graph (by default: the graph of ``notes``)."""
    notes = [n for n in notes if EXPORT_MARKER not in n.frontmatter]
    citations = citations or Citations(notes, rule)
    notes = [n for n in notes if citations.is_paper(n.path)]
    notes.sort(key=lambda n: (n.year or 0, n.title.casefold()))
    runs = Path(runs_dir) if runs_dir is not None else None
    pictures = pictures and len(notes) <= PICTURES_MAX_PAPERS
    papers = []
    for n in notes:
        claims = []
        counts: Counter = Counter()
        plots: list[dict[str, Any]] = []
        seen_runs: set[str] = set()
        for c in n.claims:
            st = statuses.get(c.id) or {}
            status = str(st.get("status") or "unverified")
            counts[status_class(status)] += 1
            run_id = st.get("run_id")
            run_dir = _safe_run_dir(runs, run_id)
            claims.append(
                {
                    "id": c.id,
                    "statement": c.statement,
                    "experiments": c.experiments,
                    "status": status,
                    "mark": status_mark(status),
                    "run_id": run_id,
                    "preset": st.get("preset"),
                    "scale": st.get("scale"),
                    "ended": st.get("ended"),
                    "checks": claim_checks(st),
                    "run_dir": run_dir,
                }
            )
            if run_id and isinstance(run_id, str) and run_id not in seen_runs:
                seen_runs.add(run_id)
                for png in run_plots(runs, run_id):
                    plots.append({"run_id": run_id, "claim": c.id, "path": png, "name": png.name})
        near = citations.of(n.path)
        cites = [{"label": c.label, "has_note": c.path is not None, "path": c.path} for c in near.cites]
        by = [citations.notes[p] for p in near.cited_by if p in citations.notes]
        mentioned = [citations.notes[p] for p in near.mentioned_by if p in citations.notes]
        summary = PaperSummary(n, abstract_of(n), claims, cites, by, mentioned, counts, plots)
        summary.mentions = [{"label": c.label, "path": c.path} for c in near.mentions]
        from kb.publish.bibtex import entry_of, to_bibtex, venue_of

        summary.venue = venue_of(n)
        if pictures:
            from kb.publish.graph_draw import to_svg

            summary.picture = to_svg(citations.graph([n.path], depth=1), highlight=n.path, width=640, height=420)
        if bibtex:
            summary.bibtex = to_bibtex([entry_of(n)]).strip()
        papers.append(summary)
    return papers


_TEMPLATE = """\
{% if not standalone %}---
{{ marker }}: summary
---

{% endif %}\
# Reading summary: {{ vault_name }}

{{ plural(papers|length, "paper") }}, {{ plural(total_claims, "claim") }}\
{% if total_claims %}: {{ status_line }}{% endif %}. {{ plural(open_questions, "open question") }}. Generated {{ generated }} by paperkb.
{% if dashboard %}
| Paper | Year | Claims | Reproduced | Small scale | Contradicted / error | Needs … | Unverified | Open questions |
|---|---|---|---|---|---|---|---|---|
{% for p in papers -%}
| {{ cell(p.note.title) }} | {{ p.note.year or "" }} | {{ p.claims|length }} | {{ p.status_counts["reproduced"] }} | \
{{ p.status_counts["supported at small scale"] }} | {{ p.status_counts["contradicted"] + p.status_counts["error"] }} | \
{{ p.status_counts["needs"] }} | {{ p.status_counts["unverified"] }} | {{ p.note.questions|selectattr("open")|list|length }} |
{% endfor %}
{% endif %}
{% for p in papers %}
## {{ inline(p.note.title) }}{% if p.note.year %} ({{ p.note.year }}){% endif %}

**Authors:** {{ inline(authors(p.note)) }}{% if p.note.year %} · **Year:** {{ p.note.year }}{% endif %}\
{% if p.venue %} · **Venue:** {{ inline(p.venue) }}{% endif %}\
{% if p.note.doi %} · **DOI:** [{{ inline(p.note.doi) }}](https://doi.org/{{ urlpart(p.note.doi) }}){% endif %}\
{% if p.note.citekey %} · `{{ code(p.note.citekey) }}`{% endif %}
{% if p.note.tags %}
**Tags:** {{ tags(p.note.tags) }}
{% endif %}
{% if p.abstract %}
### Abstract

> {{ inline(p.abstract) }}
{% endif %}
{%- if p.note.highlights %}
### Highlights

{% for h in p.note.highlights -%}
- {{ inline(h) }}
{% endfor %}
{%- endif %}
{%- if p.claims %}
### Claims

| Claim | Status | Checks (measured) | Latest run |
|---|---|---|---|
{% for c in p.claims -%}
| {{ cell(c.statement) }} `^{{ code(c.id) }}` | {{ cell(c.mark) }}{% if c.scale %} ({{ cell(c.scale) }}){% endif %} | \
{% for k in c.checks %}{{ k.mark }} {{ cell(k.text) }}{% if k.evidence and k.evidence != "direct" %} ({{ cell(k.evidence) }}){% endif %}{% if not loop.last %}<br>{% endif %}{% else %}-{% endfor %} | \
{% if c.run_id %}{% if c.run_dir %}[{{ cell(c.run_id) }}]({{ run_link(c.run_dir) }}){% else %}{{ cell(c.run_id) }}{% endif %}{% if c.preset %} ({{ cell(c.preset) }}){% endif %}{% else %}no run{% endif %} |
{% endfor %}
{%- endif %}
{%- if p.plots %}
### Plots

{% for plot in p.plots -%}
{{ figure(plot) }}

{% endfor %}
{%- endif %}
{%- if p.note.questions %}
### Questions answered

{% for q in p.note.questions if q.answered -%}
- **{{ inline(q.text) }}** {{ inline(q.answer) }}
{% else -%}
- none yet
{% endfor %}
### Open questions

{% for q in p.note.questions if q.open -%}
- **{{ inline(q.text) }}** _(open)_
{% else -%}
- none
{% endfor %}
{%- endif %}
### Citation neighbourhood

{% if p.picture %}{{ picture(p) }}

{% endif -%}
**Cites:** {% for c in p.cites %}{{ inline(c.label) }}{% if not c.has_note %} _(no note yet)_{% endif %}{% if not loop.last %}; {% endif %}{% else %}nothing{% endfor %}

**Cited by:** {% for n in p.cited_by %}{{ inline(n.title) }}{% if not loop.last %}; {% endif %}{% else %}no paper of this vault{% endfor %}
{% if p.mentions %}
**Mentions** (links outside its references): {% for c in p.mentions %}{{ inline(c.label) }}{% if not loop.last %}; {% endif %}{% endfor %}
{% endif %}
{%- if p.mentioned_by %}
**Mentioned in:** {% for n in p.mentioned_by %}{{ inline(n.title) }}{% if not loop.last %}; {% endif %}{% endfor %}
{% endif %}
{%- if p.bibtex %}
### BibTeX

```bibtex
{{ fence(p.bibtex) }}
```
{% endif %}
{% endfor %}
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def render_summary(
    notes: Iterable[Note],
    statuses: dict[str, dict[str, Any]] | None = None,
    *,
    vault_name: str = "vault",
    generated: str | None = None,
    fmt: str = "md",
    citations: Citations | None = None,
    runs_dir: Path | str | None = None,
    output_dir: Path | str | None = None,
    dashboard: bool = True,
    pictures: bool = True,
    bibtex: bool = True,
    rule: PaperRule = DEFAULT_RULE,
) -> str:
    """The reading summary as Markdown (``fmt="md"``) or a standalone HTML page (``"html"``).

    Pictures (the runs' plots and the neighbourhood drawing) are inlined: data URIs in
    Markdown, ``<img>``/``<svg>`` in HTML. ``output_dir`` is where the file will live, so
    that the links to run folders are relative to it."""
    return _render(
        notes,
        statuses,
        vault_name=vault_name,
        generated=generated,
        fmt=fmt,
        citations=citations,
        runs_dir=runs_dir,
        output_dir=output_dir,
        dashboard=dashboard,
        pictures=pictures,
        bibtex=bibtex,
        rule=rule,
    ).text


@dataclass
class Rendered:
    """A summary's text and, when its pictures are files, those files (name -> bytes)."""

    text: str
    files: dict[str, bytes] = field(default_factory=dict)


def _render(
    notes: Iterable[Note],
    statuses: dict[str, dict[str, Any]] | None = None,
    *,
    vault_name: str = "vault",
    generated: str | None = None,
    fmt: str = "md",
    citations: Citations | None = None,
    runs_dir: Path | str | None = None,
    output_dir: Path | str | None = None,
    dashboard: bool = True,
    pictures: bool = True,
    bibtex: bool = True,
    rule: PaperRule = DEFAULT_RULE,
    files_folder: str | None = None,
) -> Rendered:
    """``render_summary``; with ``files_folder`` (Markdown only) the pictures are not
    inlined but returned as files to write into that folder, which the text links to."""
    papers = build(
        notes, statuses or {}, citations=citations, runs_dir=runs_dir, pictures=pictures, bibtex=bibtex, rule=rule
    )
    totals: Counter = Counter()
    for p in papers:
        totals.update(p.status_counts)
    html = fmt == "html"
    runs = Path(runs_dir) if runs_dir is not None else None
    figures = _Figures(html, files_folder if files_folder is not None and not html else None, runs)
    out_dir = Path(output_dir) if output_dir is not None else None
    text = (
        _template_env()
        .from_string(_TEMPLATE)
        .render(
            papers=papers,
            vault_name=vault_name,
            total_claims=sum(totals.values()),
            status_line=", ".join(f"{totals[s]} {STATUS_LABEL.get(s, s)}" for s in STATUS_ORDER if totals[s]),
            open_questions=sum(1 for p in papers for q in p.note.questions if q.open),
            generated=generated or _dt.date.today().isoformat(),
            dashboard=dashboard,
            standalone=html,
            marker=EXPORT_MARKER,
            cell=_cell,
            inline=_inline,
            code=_code,
            fence=lambda s: _Md(re.sub(r"`{3,}|~{3,}", lambda m: "'" * len(m.group(0)), str(s)).replace("<", "&lt;")),
            tags=lambda ts: _Md(" ".join("`#" + _code(t) + "`" for t in ts)),
            urlpart=lambda s: _Md(__import__("urllib.parse").parse.quote(str(s), safe="/:;()._-")),
            authors=authors_line,
            plural=_plural,
            figure=figures.figure,
            picture=figures.picture,
            run_link=lambda run_dir: _run_link(run_dir, out_dir),
        )
    )
    text = re.sub(r"\n{3,}", "\n\n", text)
    if not html:
        return Rendered(text, figures.assets)
    return Rendered(_html_page(text, figures.html_figures, vault_name))


def _template_env():
    """The summary template's environment: every value printed is text (``_no_html``)
    unless this module built it as Markdown."""
    import jinja2

    env = jinja2.Environment(
        autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined, finalize=_no_html
    )
    env.filters["cell"] = _cell
    return env


def _run_link(run_dir: Path, out_dir: Path | None) -> str:
    """A run's folder as a link, relative to the summary's folder where it can be."""
    from urllib.parse import quote

    target = run_dir
    if out_dir is not None:
        try:
            target = Path(os.path.relpath(run_dir, out_dir))
        except ValueError:
            pass
    return _Md(quote(target.as_posix() + "/"))


class _Figures:
    """The summary's pictures (run plots, citation neighbourhoods): inlined as data URIs,
    placeholders for the HTML page's own figures (``html``), or files to write into the
    folder ``files_folder`` beside the Markdown (``assets``), which the text links to."""

    def __init__(self, html: bool, files_folder: str | None, runs: Path | None) -> None:
        self.html = html
        self.files_folder = files_folder
        self.runs = runs
        self.assets: dict[str, bytes] = {}
        self.html_figures: list[str] = []  # HTML for each placeholder (html output)

    def file_name(self, name: str) -> str:
        """A safe name, unique in the folder (a suffix when two plots share one)."""
        from paperkb.files import ascii_component

        name = ascii_component(name)
        stem, dot, ext = name.rpartition(".")
        candidate, k = name, 1
        while candidate in self.assets or candidate == SUMMARY_FILES_MANIFEST:
            k += 1
            candidate = f"{stem}-{k}.{ext}" if dot else f"{name}-{k}"
        return candidate

    def link(self, name: str) -> str:
        from urllib.parse import quote

        return quote(f"{self.files_folder}/{name}")

    def placeholder(self, markup: str) -> str:
        self.html_figures.append(markup)
        return f"PAPERKBFIGURE{len(self.html_figures) - 1}X"

    def figure(self, plot: dict[str, Any]) -> str:
        path: Path = plot["path"]
        caption = f"run {plot['run_id']}: {plot['name']}"
        try:
            data = path.read_bytes() if path.stat().st_size <= PLOT_MAX_BYTES else None
        except OSError:
            data = None
        if data is None or not data.startswith(b"\x89PNG"):
            return _Md(f"_{_inline(caption)} (not inlined)_")
        if self.files_folder is not None:
            runs = self.runs
            rel = os.path.relpath(path, runs / str(plot["run_id"])) if runs is not None else path.name
            name = self.file_name(f"{plot['run_id']}-{rel}")
            self.assets[name] = data
            return _Md(f"![{_cell(caption).replace(']', '')}]({self.link(name)})")
        uri = _data_uri(data, "image/png")
        if self.html:
            return self.placeholder(
                f'<figure><img alt="{escape(caption)}" src="{uri}"><figcaption>{escape(caption)}</figcaption></figure>'
            )
        return _Md(f"![{_cell(caption).replace(']', '')}]({uri})")

    def picture(self, p: PaperSummary) -> str:
        from kb.publish.html import page_name

        if self.html:
            return self.placeholder(f'<figure class="neighbourhood">{p.picture}</figure>')
        if self.files_folder is not None:
            name = self.file_name("neighbourhood-" + page_name(p.note.path).removesuffix(".html") + ".svg")
            self.assets[name] = p.picture.encode("utf-8")
            return _Md(f"![citation neighbourhood]({self.link(name)})")
        return _Md(f"![citation neighbourhood]({_data_uri(p.picture.encode('utf-8'), 'image/svg+xml')})")


def _html_page(markdown: str, figures: list[str], title: str) -> str:
    """Markdown -> HTML with raw HTML off (note text cannot inject tags), then the
    pictures we drew ourselves put in place of their placeholders."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable(["table"])
    body = md.render(markdown.replace("<br>", " ⏎ "))
    body = body.replace(" ⏎ ", "<br>")
    for i, markup in enumerate(figures):
        token = f"PAPERKBFIGURE{i}X"
        body = body.replace(f"<p>{token}</p>", markup).replace(token, markup)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="generator" content="paperkb"><meta name="{EXPORT_MARKER}" content="summary">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'\">"
        f"<title>Reading summary: {escape(title)}</title><style>{SUMMARY_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


SUMMARY_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f8f9fa;color:#212529}
main{max-width:980px;margin:0 auto;padding:1.5em;background:#fff}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #dee2e6;padding:4px 6px;
vertical-align:top;text-align:left}th{background:#f1f3f5}
blockquote{border-left:4px solid #74c0fc;margin:0;padding:.2em 1em;background:#f1f8ff}
img{max-width:100%}figure{margin:1em 0}svg.kb-graph{max-width:100%;height:auto;border:1px solid #eee}
pre{background:#f1f3f5;padding:.8em;overflow:auto}h2{border-top:2px solid #dee2e6;padding-top:1em}
"""


def write_summary(
    vault_root: Path | str,
    output: Path | str | None = None,
    *,
    statuses: dict[str, dict[str, Any]] | None = None,
    names: Iterable[str] = (),
    query: str | None = None,
    tag: str | None = None,
    fmt: str = "md",
    runs_dir: Path | str | None = None,
    output_dir: Path | str | None = None,
    embed: bool = False,
) -> str:
    """Render the summary of the vault at ``vault_root`` (or of the notes picked by
    ``names``, ``query`` or ``tag``); write it to ``output`` if given. ``statuses`` come
    from the caller (``repro.status.claim_statuses``); ``runs_dir`` defaults to
    ``<vault>/.paperkb/runs``.

    A Markdown ``output`` gets its pictures as files in ``<stem>_files/`` beside it (see
    :func:`write_with_files`) unless ``embed``; Markdown on stdout (no ``output``) and HTML
    are one self-contained text with the pictures inlined."""
    from kb.errors import PaperkbError
    from kb.publish.papers import load_rule
    from kb.publish.selection import light_notes, select_paths
    from kb.vault import Vault

    if fmt not in ("md", "html"):
        raise PaperkbError(f"unknown --format {fmt!r} (use md or html)", exit_code=2)
    vault = Vault(vault_root)
    rule = load_rule(vault.root)
    picked = select_paths(vault, names, query=query, tag=tag)
    if picked is not None and len(picked) <= 200:
        # a few notes: their neighbours are enough to know what they cite and who cites them
        from kb.publish.selection import neighbourhood_paths

        citations = Citations(light_notes(vault, neighbourhood_paths(vault, picked)), rule)
    else:
        citations = Citations(light_notes(vault), rule)
    if picked is None:
        notes = [vault.note_at(p) for p in sorted(citations.papers)] if len(citations.papers) < 2000 else vault.notes()
    else:
        notes = [vault.note_at(p) for p in picked]
        not_papers = [p for p in picked if not citations.is_paper(p)]
        if names and not_papers and len(not_papers) == len(picked):
            raise PaperkbError(f"{not_papers[0]} is not a paper (no #paper tag, citekey or DOI)")
    out_dir = Path(output).resolve().parent if output is not None else output_dir
    runs = Path(runs_dir) if runs_dir is not None else vault.root / ".paperkb" / "runs"
    as_files = output is not None and fmt == "md" and not embed
    rendered = _render(
        notes,
        statuses or {},
        vault_name=vault.root.name,
        fmt=fmt,
        citations=citations,
        runs_dir=runs,
        output_dir=out_dir,
        dashboard=picked is None or len(picked) > 1,
        rule=rule,
        files_folder=files_folder_of(Path(output)).name if as_files and output is not None else None,
    )
    if output is not None:
        write_with_files(Path(output), rendered, files=as_files)
    return rendered.text


SUMMARY_FILES_MANIFEST = ".paperkb-summary.json"


def files_folder_of(output: Path) -> Path:
    """``notes/reading-summary.md`` -> ``notes/reading-summary_files`` (as browsers save a page)."""
    return output.with_name(output.stem + "_files")


def write_with_files(output: Path, rendered: Rendered, *, files: bool = True) -> None:
    """Write the summary to ``output`` and its pictures into ``<stem>_files/`` beside it.

    Every file is written whole (a temporary file, then a rename). The folder holds a
    manifest of what paperkb wrote there: a folder without one that is not empty is
    refused, a file paperkb did not write is never replaced, and the pictures an earlier
    summary left that this one no longer has are removed (only those)."""
    import json

    from kb.errors import PaperkbError
    from paperkb.files import replace_file, target

    folder = files_folder_of(output)
    old: set[str] = set()
    manifest = folder / SUMMARY_FILES_MANIFEST
    if files or folder.is_dir():
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise PaperkbError(f"{folder} is not a folder paperkb wrote: move it away to write the summary")
        if folder.is_dir():
            try:
                listed = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None
            except (OSError, ValueError):
                listed = None
            if isinstance(listed, dict) and listed.get("generator") == "paperkb":
                old = {str(f) for f in listed.get("files") or [] if isinstance(f, str)}
            elif files and any(folder.iterdir()):
                raise PaperkbError(f"{folder} is not empty and was not written by paperkb: move it away or use --embed")
    try:
        if files and rendered.files:
            folder.mkdir(exist_ok=True)
            real = folder.resolve()
            for name, data in rendered.files.items():
                path = target(real, name, links_inside_only=True)
                if name not in old and (path.exists() or path.is_symlink()):
                    raise PaperkbError(f"{path} was not written by paperkb: move it away to write the summary")
                replace_file(real, path, data)
        replace_file(output.parent, output, rendered.text)
        kept = set(rendered.files) if files else set()
        if folder.is_dir() and not folder.is_symlink() and (old or kept):
            real = folder.resolve()
            for name in sorted(old - kept):
                path = target(real, name, links_inside_only=True)
                if path.is_file() or path.is_symlink():
                    path.unlink()
            replace_file(folder, manifest, json.dumps({"generator": "paperkb", "files": sorted(kept)}, indent=1) + "\n")
    except OSError as exc:
        raise PaperkbError(f"cannot write {exc.filename or output}: {exc.strerror or exc}") from None
