"""Bibliographies: BibTeX and CSL-JSON out of paper notes, and new notes out of a .bib file.

The citekey is the entry key. What a note keeps of an entry is what the seed template
has room for: entry type (as the template's ``type:``), title, authors, year, DOI, venue
(``publication:``), URL and abstract; importing then exporting gives those back.
BibTeX is parsed and written by ``bibtexparser`` (v2).

Names: a note lists authors as "First Last"; BibTeX gets "Last, First" with the last word
as the family name (write a family name of several words as "Last, First" in the note to
keep it whole).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.model import Note

# the template's `type:` (Zotero's item types, as the seed writes them) <-> BibTeX / CSL types
_TO_BIBTEX = {
    "journalarticle": "article",
    "article": "article",
    "conferencepaper": "inproceedings",
    "inproceedings": "inproceedings",
    "preprint": "misc",
    "misc": "misc",
    "book": "book",
    "booksection": "incollection",
    "thesis": "phdthesis",
    "report": "techreport",
    "webpage": "online",
}
MAX_BIB_BYTES = 50_000_000  # a .bib larger than this is refused, not read

_FROM_BIBTEX = {
    "article": "journalArticle",
    "inproceedings": "conferencePaper",
    "conference": "conferencePaper",
    "misc": "preprint",
    "book": "book",
    "incollection": "bookSection",
    "phdthesis": "thesis",
    "mastersthesis": "thesis",
    "techreport": "report",
    "online": "webpage",
}
_CSL_TYPE = {
    "article": "article-journal",
    "inproceedings": "paper-conference",
    "misc": "article",
    "book": "book",
    "incollection": "chapter",
    "phdthesis": "thesis",
    "techreport": "report",
    "online": "webpage",
}
_VENUE_FIELD = {
    "article": "journal",
    "inproceedings": "booktitle",
    "incollection": "booktitle",
    "techreport": "institution",
    "book": "publisher",
    "phdthesis": "school",
}
_VENUE_KEYS = (
    "publication",
    "journal",
    "venue",
    "booktitle",
    "publicationTitle",
    "proceedingsTitle",
    "conference",
    "container-title",
)
_URL_KEYS = ("url", "URL", "link")


@dataclass
class BibEntry:
    key: str
    entry_type: str  # BibTeX type, lower case
    fields: dict[str, str] = field(default_factory=dict)  # title, author, year, doi, venue field, url, abstract


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return " ".join(str(value).split())


def _fm(note: Note, *keys: str) -> str:
    lowered = {str(k).casefold(): v for k, v in note.frontmatter.items()}
    for key in keys:
        value = _text(lowered.get(key.casefold()))
        if value:
            return value
    return ""


def venue_of(note: Note) -> str:
    return _fm(note, *_VENUE_KEYS)


def entry_key(note: Note) -> str:
    """The citekey, else a key made from the first author's family name, a title word and the year."""
    if note.citekey:
        return note.citekey
    family = re.sub(r"\W", "", _split_name(note.authors[0])[0]).lower() if note.authors else "anon"
    word = next((re.sub(r"\W", "", w) for w in note.title.split() if len(w) > 3), "note")
    return f"{family or 'anon'}{word.capitalize()}{note.year or ''}"


def _split_name(name: str) -> tuple[str, str]:
    """(family, given)."""
    name = name.strip()
    if "," in name:
        family, given = name.split(",", 1)
        return family.strip(), given.strip()
    parts = name.split()
    if len(parts) <= 1:
        return name, ""
    return parts[-1], " ".join(parts[:-1])


def entry_of(note: Note) -> BibEntry:
    from kb.summary import abstract_of

    kind = _fm(note, "type", "itemType")
    entry_type = (
        _TO_BIBTEX.get(kind.replace(" ", "").casefold(), kind.lower() if re.fullmatch(r"[A-Za-z]+", kind) else "misc")
        or "misc"
    )
    fields: dict[str, str] = {"title": note.title}
    if note.authors:
        fields["author"] = " and ".join(
            f"{fam}, {giv}" if giv else fam for fam, giv in (_split_name(a) for a in note.authors)
        )
    if note.year:
        fields["year"] = str(note.year)
    if note.doi:
        fields["doi"] = note.doi
    venue = venue_of(note)
    if venue:
        fields[_VENUE_FIELD.get(entry_type, "howpublished")] = venue
    url = _fm(note, *_URL_KEYS)
    if url:
        fields["url"] = url
    abstract = abstract_of(note)
    if abstract:
        fields["abstract"] = abstract
    return BibEntry(entry_key(note), entry_type, fields)


def entries_for(vault, names=(), *, query: str | None = None, tag: str | None = None) -> list[BibEntry]:
    """Entries of the notes named or picked by ``query``/``tag``; by default every paper."""
    from kb.publish.papers import Citations, load_rule
    from kb.publish.selection import light_notes, select_paths

    picked = select_paths(vault, names, query=query, tag=tag)
    if picked is None:
        citations = Citations(light_notes(vault), load_rule(vault.root))
        picked = sorted(citations.papers)
    return [entry_of(vault.note_at(p)) for p in picked]


# --- BibTeX text -----------------------------------------------------------------------
_LATEX_SPECIAL = re.compile(r"([&%$#_])")
_LATEX_UNESCAPE = re.compile(r"\\([&%$#_{}])")


def _latex(value: str, field_name: str) -> str:
    if field_name in ("url", "doi"):
        return value.replace("{", "").replace("}", "")
    value = value.replace("\\", "\\textbackslash{}") if "\\" in value else value
    value = _LATEX_SPECIAL.sub(r"\\\1", value)
    # unbalanced braces would end the field early: drop them
    if value.count("{") != value.count("}"):
        value = value.replace("{", "").replace("}", "")
    return value


def _unlatex(value: str) -> str:
    value = _LATEX_UNESCAPE.sub(r"\1", value)
    value = value.replace("\\textbackslash", "\\").replace("{", "").replace("}", "")
    return " ".join(value.replace("~", " ").split())


def to_bibtex(entries: Iterable[BibEntry]) -> str:
    import bibtexparser
    from bibtexparser.model import Entry, Field

    lib = bibtexparser.Library()
    seen: set[str] = set()
    for e in entries:
        if e.key in seen:
            continue
        seen.add(e.key)
        lib.add(Entry(e.entry_type, e.key, [Field(k, _latex(v, k)) for k, v in e.fields.items()]))
    return bibtexparser.write_string(lib)


def to_csl_json(entries: Iterable[BibEntry]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        f = e.fields
        item: dict[str, Any] = {
            "id": e.key,
            "type": _CSL_TYPE.get(e.entry_type, "article"),
            "title": f.get("title", ""),
        }
        if f.get("author"):
            item["author"] = [
                {"family": fam, "given": giv} if giv else {"literal": fam}
                for fam, giv in (_split_name(a) for a in f["author"].split(" and "))
            ]
        if f.get("year"):
            item["issued"] = {"date-parts": [[int(f["year"])]]}
        if f.get("doi"):
            item["DOI"] = f["doi"]
        if f.get("url"):
            item["URL"] = f["url"]
        venue = next(
            (f[k] for k in ("journal", "booktitle", "howpublished", "publisher", "institution", "school") if f.get(k)),
            None,
        )
        if venue:
            item["container-title"] = venue
        if f.get("abstract"):
            item["abstract"] = f["abstract"]
        out.append(item)
    return out


def parse_bibtex(text: str, source: str = "<bib>") -> tuple[list[BibEntry], list[str]]:
    """Entries of a .bib text and one warning per block that could not be read."""
    import bibtexparser

    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)  # failed blocks are reported below
    lib = bibtexparser.parse_string(text)
    warnings = [
        f"{source}:{getattr(b, 'start_line', 0) + 1}: skipped a block that is not valid BibTeX"
        for b in lib.failed_blocks
    ]
    entries = []
    for e in lib.entries:
        fields = {k.lower(): _unlatex(str(v.value)) for k, v in e.fields_dict.items()}
        entries.append(BibEntry(e.key, e.entry_type.lower(), fields))
    return entries, warnings


# --- importing into the seed's template ------------------------------------------------
def note_file_name(title: str, key: str) -> str:
    """A file name Obsidian accepts: ``A: B`` -> ``A - B`` (as the seed's notes are named).
    Title and key are untrusted: both go through :func:`paperkb.files.safe_component`."""
    from paperkb.files import safe_component

    return safe_component(" ".join(title.split())[:120], safe_component(key, "untitled")) + ".md"


def note_text(entry: BibEntry, *, today: str | None = None) -> str:
    """A new note in the seed's template for ``entry`` (frontmatter written by PyYAML, so
    no value of the .bib file can break out of it)."""
    import yaml

    f = entry.fields
    authors = []
    for name in (f.get("author") or "").split(" and "):
        fam, giv = _split_name(name)
        if fam:
            authors.append(f"{giv} {fam}".strip())
    year = re.search(r"\d{4}", f.get("year", ""))
    venue = next(
        (f[k] for k in ("journal", "booktitle", "howpublished", "publisher", "institution", "school") if f.get(k)), ""
    )
    props: dict[str, Any] = {
        "tags": ["#paper"],
        "aliases": [entry.key],
        "year": int(year.group(0)) if year else None,
        "name": f.get("title", entry.key),
        "authors": ", ".join(authors),
        "publication": venue,
        "type": _FROM_BIBTEX.get(entry.entry_type, entry.entry_type),
        "DOI": f.get("doi", ""),
        "url": f.get("url", ""),
        "date of note": today or _dt.date.today().isoformat(),
    }
    front = yaml.safe_dump(props, sort_keys=False, allow_unicode=True, width=10_000)
    title_line = " ".join(f.get("title", entry.key).split())
    abstract = " ".join(f.get("abstract", "").split())
    url = f.get("url", "")
    sources = f"[online](<{url}>)" if url and re.match(r"https?://", url) and ">" not in url else ""
    question = ">[!question]\n>{q}\n\n\n"
    return (
        f"---\n{front}---\n# Descriptions\n\n## {title_line}\n"
        f"> [!info]\n> - **Abstract:** {abstract}\n> - **Sources**: {sources}\n> - **Bibliography**:\n"
        f"> - **Cite Key:** [[@{entry.key}]]\n> - **Conclusion**:\n> - **Tags:**\n\n\n"
        ">[!note] Highlights:\n>\n>-\n>-\n>-\n\n\n\n# Questions\n## Questions Regarding to This Paper\n\n\n"
        + question.format(q="What are the *primary assumptions* behind this paper?")
        + question.format(q="What are the major *problems of concern* behind this paper?")
        + question.format(q="What are *the main contributions* of the paper?")
        + "## Questions Related to Me\n\n\n"
        + question.format(q="Is the problem behind this paper related to problem of mine?")
        + question.format(q="What impact does this paper have on me?")
        + "----\n\n## Reference and Related Notes\n\n"
    )


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)  # vault paths
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    warnings: list[str] = field(default_factory=list)


def import_bibtex(vault, bib_path: Path | str, *, folder: str = "", today: str | None = None) -> ImportReport:
    """Create a note for each entry of ``bib_path`` that no note of ``vault`` has yet (by
    citekey or DOI). Existing files are never written; ``folder`` is inside the vault."""
    from kb.errors import PaperkbError
    from paperkb.files import read_regular, safe_component, write_new

    bib_path = Path(bib_path)
    raw = read_regular(bib_path, MAX_BIB_BYTES)
    text = raw.decode("utf-8", "replace")
    entries, warnings = parse_bibtex(text, str(bib_path))
    report = ImportReport(warnings=warnings)
    root = vault.root
    target = (root / folder).resolve()
    if not target.is_relative_to(root):
        raise PaperkbError(f"folder {folder!r} is outside the vault", exit_code=2)
    keys: set[str] = set()
    dois: set[str] = set()
    for note in vault.notes():
        if note.citekey:
            keys.add(note.citekey.casefold())
        keys.update(a.lstrip("@").casefold() for a in note.aliases)
        if note.doi:
            dois.add(note.doi.casefold())
    for entry in entries:
        doi = entry.fields.get("doi", "").casefold()
        if entry.key.casefold() in keys or (doi and doi in dois):
            report.skipped.append((entry.key, "a note has this citekey or DOI"))
            continue
        target.mkdir(parents=True, exist_ok=True)
        name = note_file_name(entry.fields.get("title", ""), entry.key)
        path = target / name
        if os.path.lexists(path):
            path = target / f"{name[:-3]} ({safe_component(entry.key)}).md"
        if os.path.lexists(path):
            report.skipped.append((entry.key, f"{path.name} exists"))
            continue
        try:  # a new file only, checked to land inside the vault, never through a link
            path = write_new(root, path, note_text(entry, today=today))
        except FileExistsError:
            report.skipped.append((entry.key, f"{path.name} exists"))
            continue
        except PaperkbError as exc:
            report.skipped.append((entry.key, str(exc)))
            continue
        except OSError as exc:
            report.skipped.append((entry.key, f"cannot write {path}: {exc.strerror or exc}"))
            continue
        keys.add(entry.key.casefold())
        if doi:
            dois.add(doi)
        report.created.append(path.relative_to(root.resolve()).as_posix())
    return report
