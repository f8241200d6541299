"""Bibliographies: BibTeX and CSL-JSON out of paper notes, and new notes out of a .bib file.

The citekey is the entry key. A note keeps every field of an entry: the seed template's
own properties (``name`` for the title, ``authors``, ``year``, ``publication`` for the venue,
``type`` as Zotero's item type, ``DOI``, ``url``, the abstract in the info callout), the
other standard BibTeX fields as properties of the same name (``volume``, ``number``,
``pages``, ``eprint``, ``keywords``...) and anything else under a ``bibtex:`` mapping, so
that importing then exporting gives the entries back field for field.

BibTeX is read and written by ``bibtexparser`` (v2): co-authors are separated by its
``SeparateCoAuthors`` middleware and each name is split into first/von/last/jr the way
BibTeX does (``parse_single_name_into_parts``); LaTeX is decoded to Unicode on import and
encoded back on export by its ``LatexDecodingMiddleware``/``LatexEncodingMiddleware``
(pylatexenc). URLs, DOIs and eprint ids are verbatim and never decoded or encoded.

Names in a note read "First von Last Jr." (``Diego de Las Casas``, ``George van den
Driessche``); a last name of several words that BibTeX would split otherwise is kept in
braces (``Filipa {Campos Viola}``), as are corporate names (``{Google DeepMind}``).
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
    "magazinearticle": "article",
    "newspaperarticle": "article",
    "article": "article",
    "conferencepaper": "inproceedings",
    "inproceedings": "inproceedings",
    "preprint": "misc",
    "misc": "misc",
    "book": "book",
    "booksection": "incollection",
    "thesis": "phdthesis",
    "report": "techreport",
    "webpage": "misc",
    "manuscript": "unpublished",
    "computerprogram": "misc",
    "dataset": "misc",
    "document": "misc",
}
MAX_BIB_BYTES = 50_000_000  # a .bib larger than this is refused, not read

_FROM_BIBTEX = {
    "article": "journalArticle",
    "inproceedings": "conferencePaper",
    "conference": "conferencePaper",
    "misc": "document",
    "book": "book",
    "inbook": "bookSection",
    "incollection": "bookSection",
    "phdthesis": "thesis",
    "mastersthesis": "thesis",
    "techreport": "report",
    "online": "webpage",
    "unpublished": "manuscript",
    "manual": "document",
    "booklet": "book",
    "proceedings": "book",
}
_CSL_TYPE = {
    "article": "article-journal",
    "inproceedings": "paper-conference",
    "misc": "article",
    "book": "book",
    "incollection": "chapter",
    "inbook": "chapter",
    "phdthesis": "thesis",
    "mastersthesis": "thesis",
    "techreport": "report",
    "online": "webpage",
}
# the field that holds an entry type's venue (the note's `publication:`)
_VENUE_FIELD = {
    "article": "journal",
    "inproceedings": "booktitle",
    "conference": "booktitle",
    "incollection": "booktitle",
    "inbook": "booktitle",
    "techreport": "institution",
    "phdthesis": "school",
    "mastersthesis": "school",
    "misc": "howpublished",
    "online": "howpublished",
    "unpublished": "howpublished",
    "booklet": "howpublished",
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
_VENUE_SOURCES = ("journal", "booktitle", "howpublished", "institution", "school", "publisher")

# BibTeX's and BibLaTeX's standard fields (and the few that every exporter writes): a note
# keeps each as a property of the same name; any other field goes under `bibtex:`.
STANDARD_FIELDS = frozenset(
    """address annote author booktitle chapter crossref edition editor howpublished institution
    journal key month note number organization pages publisher school series title type volume
    year doi url eprint archiveprefix primaryclass eprinttype eprintclass keywords abstract isbn
    issn urldate shorttitle language langid location date pmid pmcid issue subtitle
    translator""".split()
)
_VERBATIM = frozenset({"url", "doi", "eprint", "file", "pdf", "isbn", "issn", "pmid", "pmcid", "pages"})
_NAME_FIELDS = ("author", "editor", "translator")
# fields the template's own properties hold (never written twice)
_TEMPLATE_FIELDS = frozenset({"title", "author", "year", "doi", "url", "abstract", "keywords"})
# a BibTeX field that would clash with a property of the template gets another name
_PROPERTY_OF = {"type": "bibtex type"}
_FIELD_OF = {v: k for k, v in _PROPERTY_OF.items()}
_JR = re.compile(r"(?i)^(jr|sr)\.?$|^(ii|iii|iv)$")  # not "V": an initial
ARXIV_ID = re.compile(r"(?i)(?:arxiv[.:/ ]\s*|arxiv\.org/(?:abs|pdf)/)(\d{4}\.\d{4,5}|[a-z-]+(?:\.[a-z]{2})?/\d{7})")


@dataclass(frozen=True)
class Person:
    """A name split the way BibTeX splits it; parts are Unicode, a part of several words
    that BibTeX must keep together stays in braces (``{van Rossum}``)."""

    first: str = ""
    von: str = ""
    last: str = ""
    jr: str = ""

    @property
    def bibtex(self) -> str:
        """``von Last, Jr, First``."""
        von_last = " ".join(p for p in (self.von, self.last) if p)
        return ", ".join(p for p in (von_last, self.jr, self.first) if p)

    @property
    def display(self) -> str:
        """``First von Last Jr.`` as a note lists it (see ``note_name`` for a safe form)."""
        return " ".join(p for p in (self.first, self.von, self.last, self.jr) if p)

    @property
    def family(self) -> str:
        return _unbrace(" ".join(p for p in (self.von, self.last) if p))

    @property
    def given(self) -> str:
        return _unbrace(self.first)

    def plain(self) -> tuple[str, str, str, str]:
        """The parts without braces, for comparing names up to formatting."""
        return (_unbrace(self.first), _unbrace(self.von), _unbrace(self.last), _unbrace(self.jr))


def _unbrace(text: str) -> str:
    return text.replace("{", "").replace("}", "")


def _parts(name: str) -> Person:
    from bibtexparser.middlewares.names import InvalidNameError, parse_single_name_into_parts

    try:
        p = parse_single_name_into_parts(name, strict=False)
    except (InvalidNameError, ValueError, IndexError):
        return Person(last=" ".join(name.split()))
    return Person(" ".join(p.first), " ".join(p.von), " ".join(p.last), " ".join(p.jr))


def parse_person(name: str) -> Person:
    """A name in BibTeX's forms (``Last, First``, ``von Last, Jr, First``) or as a note
    writes it (``First von Last``, with a trailing ``Jr.``/``III`` taken as the jr part)."""
    name = " ".join(name.split())
    if "," not in name:
        words = name.split(" ")
        if len(words) > 2 and _JR.match(words[-1]):
            p = _parts(" ".join(words[:-1]))
            return Person(p.first, p.von, p.last, words[-1])
    return _parts(name)


def note_name(person: Person) -> str:
    """The note's form of ``person``, written so that ``parse_person`` gives it back."""
    text = person.display
    if parse_person(text) == person:
        return text
    last = person.last if person.last.startswith("{") else "{" + person.last + "}"
    braced = Person(person.first, person.von, last, person.jr)
    return braced.display if parse_person(braced.display).plain() == person.plain() else text


def persons(value: str) -> list[Person]:
    """The names of a BibTeX name list (``A and B``)."""
    from bibtexparser.middlewares.names import split_multiple_persons_names

    return [parse_person(n) for n in split_multiple_persons_names(value) if n.strip()]


def arxiv_id(*texts: str) -> str:
    """The arXiv id named in a DOI (10.48550/arXiv.X), an arxiv.org URL or an ``arXiv:X``."""
    for text in texts:
        m = ARXIV_ID.search(text or "")
        if m:
            return m.group(1)
    return ""


@dataclass
class BibEntry:
    key: str
    entry_type: str  # BibTeX type, lower case
    # field name (lower case) -> Unicode text; name lists read "von Last, Jr, First and ..."
    fields: dict[str, str] = field(default_factory=dict)


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


_SKIP_WORDS = frozenset(
    """a ab aboard about above across after against al along amid among an and anti around as at
    before behind below beneath beside besides between beyond but by d da das de del dell dello dei
    degli della delle dem den der des despite die do down du during ein eine einem einen einer eines
    el en et except for from gli i il in inside into is l la las le les like lo los near nor of off
    on onto or over past per plus round save since so some sur than the through to toward towards un
    una unas une under underneath unlike uno unos until up upon versus via von while with within
    without yet zu zum""".split()
)


def _fold(text: str) -> str:
    """ASCII letters and digits only (accents dropped), as Better BibTeX's keys are."""
    import unicodedata

    text = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L").replace("ß", "ss"))
    return re.sub(r"[^A-Za-z0-9]", "", text.encode("ascii", "ignore").decode())


def bbt_citekey(family: str, title: str, year: int | str | None) -> str:
    """Better BibTeX's default key, ``auth.lower + shorttitle(3,3) + year``: the first
    author's last name in lower case, the first three words of the title that are not
    function words (each capitalised), and the year (``vaswaniAttentionAllYou2017``)."""
    words = []
    for word in _unbrace(title).split():
        if word.casefold().strip(".,:;!?()\"'") in _SKIP_WORDS:
            continue
        folded = _fold(word)
        if not re.search(r"[A-Za-z]", folded):
            continue
        words.append(folded[0].upper() + folded[1:])
        if len(words) == 3:
            break
    family_words = _unbrace(family).split()
    author = _fold(family_words[-1] if family_words else "").lower()
    year_text = re.search(r"\d{4}", str(year or ""))
    return f"{author}{''.join(words)}{year_text.group(0) if year_text else ''}" or "anon"


def entry_key(note: Note) -> str:
    """The citekey, else the key Better BibTeX would make (``vaswaniAttentionAllYou2017``)."""
    if note.citekey:
        return note.citekey
    family = parse_person(note.authors[0]).family if note.authors else ""
    return bbt_citekey(family, note.title, note.year)


def entry_type_of(kind: str, venue: str, *, eprint: str = "") -> str:
    """The BibTeX type for a note's ``type:`` (Zotero's item type, or a BibTeX type) and its
    venue: journals -> @article, proceedings -> @inproceedings, preprints -> @misc."""
    kind = kind.replace(" ", "").casefold()
    if kind in _TO_BIBTEX:
        return _TO_BIBTEX[kind]
    if kind in _VENUE_FIELD or kind in _CSL_TYPE or kind in ("manual", "booklet", "proceedings", "unpublished"):
        return kind
    lowered = venue.casefold()
    if eprint or "arxiv" in lowered or "preprint" in lowered:
        return "misc"
    if re.search(r"proceedings|conference|workshop|symposium|neurips|nips|icml|iclr|acl|emnlp|cvpr|iccv", lowered):
        return "inproceedings"
    return "article" if venue else "misc"


def _property(note: Note, key: str) -> Any:
    lowered = {str(k).casefold(): v for k, v in note.frontmatter.items()}
    return lowered.get(key.casefold())


def _list_text(value: Any) -> list[str]:
    if isinstance(value, list):
        return [_text(v) for v in value if _text(v)]
    text = _text(value)
    return [p.strip() for p in re.split(r"[,;]", text) if p.strip()] if text else []


def entry_of(note: Note) -> BibEntry:
    """The BibTeX entry of a paper note: its properties back into fields."""
    from kb.publish.display import abstract_of

    venue = venue_of(note)
    url = _fm(note, *_URL_KEYS)
    eprint = _fm(note, "eprint") or arxiv_id(note.doi or "", url)
    entry_type = entry_type_of(_fm(note, "type", "itemType"), venue, eprint=eprint)
    extra = _property(note, "bibtex")
    extra = extra if isinstance(extra, dict) else {}
    entry_type = _text(extra.get("entrytype")).lower() or entry_type
    fields: dict[str, str] = {"title": note.title}
    if note.authors:
        fields["author"] = " and ".join(parse_person(a).bibtex for a in note.authors)
    if note.year:
        fields["year"] = str(note.year)
    doi = _fm(note, "DOI") or note.doi  # as the note writes it (note.doi drops a https://doi.org/)
    if doi:
        fields["doi"] = doi
    if venue:
        # a venue kept under a BibTeX field of its own (a @misc's `journal`) stays there
        venue_key = next((k for k in _VENUE_KEYS if _fm(note, k)), "")
        if venue_key not in STANDARD_FIELDS:
            venue_key = _VENUE_FIELD.get(entry_type, "journal" if entry_type == "article" else "howpublished")
        fields[venue_key] = venue
    if url:
        fields["url"] = url
    for name in sorted(STANDARD_FIELDS - _TEMPLATE_FIELDS - set(_PROPERTY_OF)):
        value = _property(note, name)
        if name in _NAME_FIELDS and isinstance(value, list):
            value = " and ".join(parse_person(_text(v)).bibtex for v in value if _text(v))
        if name == "pages" and value:
            value = re.sub(r"\s*[-\u2013]+\s*", "--", _text(value))
        if _text(value) and name not in fields:
            fields[name] = _text(value)
    for prop, name in _FIELD_OF.items():
        if _text(_property(note, prop)):
            fields[name] = _text(_property(note, prop))
    keywords = _list_text(_property(note, "keywords"))
    if keywords:
        fields["keywords"] = ", ".join(keywords)
    if entry_type == "misc" and eprint:
        fields.setdefault("eprint", eprint)
        if re.fullmatch(r"\d{4}\.\d{4,5}(v\d+)?|[a-z-]+(\.[A-Z]{2})?/\d{7}", eprint):
            fields.setdefault("archiveprefix", "arXiv")
    for name, value in extra.items():
        name = str(name).lower()
        if name != "entrytype" and _text(value) and re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            fields.setdefault(name, _text(value))
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
def _encoder():
    """pylatexenc's encoder as bibtexparser's middleware builds it (math kept as it is), and
    a plain ``"`` kept plain: inside braces it is a quote, and ``''`` would decode as ``”``."""
    from pylatexenc.latexencode import RULE_DICT, RULE_REGEX, UnicodeToLatexConversionRule, UnicodeToLatexEncoder

    keep_math = UnicodeToLatexConversionRule(rule_type=RULE_REGEX, rule=[(re.compile(r"(?<!\\)(\$.*[^\\]\$)"), r"\1")])
    quote = UnicodeToLatexConversionRule(rule_type=RULE_DICT, rule={ord('"'): '"'})
    return UnicodeToLatexEncoder(conversion_rules=[keep_math, quote, "defaults"])


# ASCII text without these characters is its own LaTeX (the encoder maps characters one by one)
_PLAIN_ASCII = re.compile(r"[^#$%&<>\\^_{}~]*")


def _encode_all(texts: list[str], encoding) -> list[str]:
    """LaTeX for each of ``texts``, through bibtexparser's ``LatexEncodingMiddleware``."""
    from bibtexparser.model import Entry, Field

    todo = [i for i, t in enumerate(texts) if not (t.isascii() and _PLAIN_ASCII.fullmatch(t))]
    out = list(texts)
    if not todo:
        return out
    block = encoding.transform_entry(Entry("x", "x", [Field(f"v{i}", texts[i]) for i in todo]), None)
    if isinstance(block, Entry):
        for f in block.fields:
            out[int(f.key[1:])] = str(f.value)
    return out


def _encode_names(value: str, encoding) -> str:
    """``von Last, Jr, First and ...`` in LaTeX; a braced group keeps its braces."""
    people = persons(value)
    pieces: list[str] = []
    for p in people:
        for part in (p.first, p.von, p.last, p.jr):
            pieces.extend(x for x in re.split(r"(\{[^{}]*\})", part) if x)
    encoded = dict(zip(pieces, _encode_all([x[1:-1] if x.startswith("{") else x for x in pieces], encoding)))

    def enc(part: str) -> str:
        return "".join(
            "{" + encoded[x] + "}" if x.startswith("{") else encoded[x] for x in re.split(r"(\{[^{}]*\})", part) if x
        )

    out = []
    for p in people:
        von_last = " ".join(enc(x) for x in (p.von, p.last) if x)
        out.append(", ".join(x for x in (von_last, enc(p.jr) if p.jr else "", enc(p.first)) if x))
    return " and ".join(out)


def to_bibtex(entries: Iterable[BibEntry]) -> str:
    """BibTeX text: Unicode encoded as LaTeX (pylatexenc, via bibtexparser's middleware),
    names as ``von Last, Jr, First``, URLs, DOIs and eprint ids verbatim."""
    import bibtexparser
    from bibtexparser.middlewares import LatexEncodingMiddleware
    from bibtexparser.model import Entry, Field

    encoding = LatexEncodingMiddleware(encoder=_encoder())
    lib = bibtexparser.Library()
    seen: set[str] = set()
    for e in entries:
        if e.key in seen:
            continue
        seen.add(e.key)
        latex = [k for k in e.fields if _is_latex_field(k)]
        encoded = dict(zip(latex, _encode_all([e.fields[k] for k in latex], encoding)))
        out = []
        for k, v in e.fields.items():
            if k in _NAME_FIELDS:
                out.append(Field(k, _encode_names(v, encoding)))
            elif k in encoded:
                out.append(Field(k, encoded[k]))
            else:  # verbatim: only braces that would end the field early are dropped
                out.append(Field(k, v if v.count("{") == v.count("}") else _unbrace(v)))
        lib.add(Entry(e.entry_type, e.key, out))
    return bibtexparser.write_string(lib)


def _is_latex_field(name: str) -> bool:
    return name not in _VERBATIM and name not in _NAME_FIELDS


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
                {"family": p.family, "given": p.given} if p.given else {"literal": p.family}
                for p in persons(f["author"])
            ]
        year = re.search(r"\d{4}", f.get("year", ""))
        if year:
            item["issued"] = {"date-parts": [[int(year.group(0))]]}
        if f.get("doi"):
            item["DOI"] = f["doi"]
        if f.get("url"):
            item["URL"] = f["url"]
        venue = next((f[k] for k in _VENUE_SOURCES if f.get(k)), None)
        if venue:
            item["container-title"] = venue
        for name, csl in (("volume", "volume"), ("number", "issue"), ("pages", "page")):
            if f.get(name):
                item[csl] = f[name]
        if f.get("abstract"):
            item["abstract"] = f["abstract"]
        out.append(item)
    return out


def _decoded(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


# text without any of these reads the same before and after LaTeX decoding: it skips the decoder
_LATEX_MARKUP = re.compile(r"[\\{}$~%&#^_`]|--|''")


def _decode_all(texts: list[str], decoding) -> list[str]:
    """Unicode for each LaTeX text, through bibtexparser's ``LatexDecodingMiddleware``
    (one block per call; a text with no LaTeX markup is returned as it is)."""
    from bibtexparser.model import Entry, Field

    todo = [i for i, t in enumerate(texts) if _LATEX_MARKUP.search(t)]
    if not todo:
        return list(texts)
    block = decoding.transform_entry(Entry("x", "x", [Field(f"v{i}", texts[i]) for i in todo]), None)
    out = list(texts)
    if isinstance(block, Entry):
        for f in block.fields:
            out[int(f.key[1:])] = str(f.value)
    return out


def parse_bibtex(text: str, source: str = "<bib>") -> tuple[list[BibEntry], list[str]]:
    """Entries of a .bib text (LaTeX decoded to Unicode, names split as BibTeX splits them)
    and one warning per block that could not be read."""
    import bibtexparser
    from bibtexparser.middlewares import LatexDecodingMiddleware, SeparateCoAuthors

    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)  # failed blocks are reported below
    lib = bibtexparser.parse_string(text, append_middleware=[SeparateCoAuthors()])
    warnings = [
        f"{source}:{getattr(b, 'start_line', 0) + 1}: skipped a block that is not valid BibTeX"
        for b in lib.failed_blocks
    ]
    decoding = LatexDecodingMiddleware(keep_math_mode=True)
    entries = []
    for e in lib.entries:
        raw = {k.lower(): v.value for k, v in e.fields_dict.items()}
        latex = [k for k, v in raw.items() if isinstance(v, str) and _is_latex_field(k)]
        decoded = dict(zip(latex, _decode_all([raw[k] for k in latex], decoding)))
        fields: dict[str, str] = {}
        for k, v in raw.items():
            if k in _NAME_FIELDS:
                names = [n for n in (v if isinstance(v, list) else [str(v)]) if n.strip()]
                fields[k] = " and ".join(p.bibtex for p in _decode_persons(names, decoding))
            elif k in decoded:
                fields[k] = _decoded(decoded[k])
            elif k == "pages":
                fields[k] = re.sub(r"\s*(--|\u2013|-)\s*", "-", _decoded(_unbrace(str(v))))
            else:
                fields[k] = _decoded(_unbrace(str(v)))
        entries.append(BibEntry(e.key, e.entry_type.lower(), fields))
    return entries, warnings


def _decode_persons(names: list[str], decoding) -> list[Person]:
    """Split each name first (on the LaTeX, where braces still group words), then decode
    every word at once; a braced group of several words keeps its braces."""
    from bibtexparser.middlewares.names import InvalidNameError, parse_single_name_into_parts

    split: list[list[list[str]]] = []
    for name in names:
        try:
            raw = parse_single_name_into_parts(name, strict=False)
            split.append([raw.first, raw.von, raw.last, raw.jr])
        except (InvalidNameError, ValueError, IndexError):
            split.append([[], [], name.split(), []])
    words = [w for groups in split for g in groups for w in g]
    decoded = iter(_decode_all(words, decoding))
    people = []
    for groups in split:
        parts = []
        for group in groups:
            out = []
            for word in group:
                value = _decoded(next(decoded))
                out.append("{" + value + "}" if word.startswith("{") and " " in value else value)
            parts.append(" ".join(out))
        people.append(Person(*parts))
    return people


# --- importing into the vault's template (else the seed's) -----------------------------
def note_file_name(title: str, key: str) -> str:
    """A file name Obsidian accepts: ``A: B`` -> ``A - B`` (as the seed's notes are named).
    Title and key are untrusted: both go through :func:`paperkb.files.safe_component`."""
    from paperkb.files import safe_component

    return safe_component(" ".join(title.split())[:120], safe_component(key, "untitled")) + ".md"


def item_type_of(entry: BibEntry) -> str:
    """Zotero's item type for an entry (the note's ``type:``): a @misc with an arXiv eprint
    is a ``preprint``, as Zotero and Better BibTeX have it."""
    f = entry.fields
    if entry.entry_type == "misc" and (
        f.get("archiveprefix", "").casefold() == "arxiv"
        or f.get("eprinttype", "").casefold() == "arxiv"
        or arxiv_id(f.get("doi", ""), f.get("url", ""), f.get("journal", ""), f.get("howpublished", ""))
    ):
        return "preprint"
    return _FROM_BIBTEX.get(entry.entry_type, entry.entry_type)


def _person_context(p: Person, role: str = "author") -> dict[str, str]:
    return {
        "name": note_name(p),
        "first": _unbrace(p.first),
        "von": _unbrace(p.von),
        "last": _unbrace(p.last),
        "jr": _unbrace(p.jr),
        "family": p.family,
        "given": p.given,
        "bibtex": p.bibtex,
        "role": role,
    }


def item_context(
    entry: BibEntry,
    *,
    item_type: str | None = None,
    keywords: list[str] | None = None,
    collections: list[str] | None = None,
    zotero: dict[str, Any] | None = None,
    pdf: dict[str, Any] | None = None,
    annotations: list[dict[str, Any]] | None = None,
    today: str | None = None,
) -> dict[str, Any]:
    """The variables a note template gets for ``entry`` (docs/templates.md lists them)."""
    f = entry.fields
    kind = item_type or item_type_of(entry)
    venue_field = _VENUE_FIELD.get(entry.entry_type, "journal" if entry.entry_type == "article" else "")
    venue = f.get(venue_field, "") if venue_field else ""
    if not venue and not venue_field:
        venue_field = next((k for k in _VENUE_SOURCES[:-1] if f.get(k)), "")
        venue = f.get(venue_field, "")
    if keywords is None:
        keywords = [k.strip() for k in re.split(r"[,;]", f.get("keywords", "")) if k.strip()]
    if pdf is None and f.get("file"):
        pdf = _pdf_of_file_field(f["file"])
    properties: dict[str, Any] = {}
    extra: dict[str, str] = {}
    if entry_type_of(kind, venue, eprint=f.get("eprint", "")) != entry.entry_type:
        extra["entrytype"] = entry.entry_type
    for name, value in f.items():
        if name in _TEMPLATE_FIELDS or name == venue_field or (name == "file" and pdf is not None):
            continue
        if name == "pages":
            value = re.sub(r"\s*(--|\u2013|-)\s*", "-", value)
        if name in _PROPERTY_OF:
            properties[_PROPERTY_OF[name]] = value
        elif name in STANDARD_FIELDS:
            properties[name] = value
        else:
            extra[name] = value
    if extra:
        properties["bibtex"] = extra
    year = re.search(r"\d{4}", f.get("year", "") or f.get("date", ""))
    authors = [_person_context(p) for p in persons(f.get("author", ""))]
    editors = [_person_context(p, "editor") for p in persons(f.get("editor", ""))]
    return {
        "citekey": entry.key,
        "entry_type": entry.entry_type,
        "item_type": kind,
        "title": f.get("title", entry.key),
        "authors": authors,
        "editors": editors,
        "creators": authors + editors,
        "year": int(year.group(0)) if year else None,
        "venue": venue,
        "doi": f.get("doi", ""),
        "url": f.get("url", ""),
        "arxiv": f.get("eprint", "")
        if f.get("archiveprefix", "").casefold() == "arxiv"
        else arxiv_id(f.get("doi", ""), f.get("url", "")),
        "abstract": f.get("abstract", ""),
        "keywords": keywords,
        "collections": list(collections or []),
        "fields": dict(f),
        "properties": properties,
        "zotero": zotero,
        "pdf": pdf,
        "annotations": list(annotations or []),
        "today": today or _dt.date.today().isoformat(),
    }


def _pdf_of_file_field(value: str) -> dict[str, str] | None:
    """The first PDF of a ``file`` field as Zotero and Better BibTeX write it
    (``Description:/path/to/file.pdf:application/pdf;...``, ``\\:`` for a colon in the path)."""
    for part in re.split(r"(?<!\\);", value):
        m = re.fullmatch(r"(?:[^:]*):(.+):application/pdf", part.strip())
        if m:
            path = Path(m.group(1).replace("\\:", ":").replace("\\\\", "\\"))
            return {"path": str(path), "uri": path.as_uri() if path.is_absolute() else ""}
    return None


def note_text(entry: BibEntry, *, today: str | None = None, template=None, **context: Any) -> str:
    """A new note for ``entry`` from ``template`` (a ``NoteTemplate``; default: the seed's)."""
    from kb.publish.notetemplate import NoteTemplate

    template = template or NoteTemplate.for_vault(None)
    return template.render(item_context(entry, today=today, **context))


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)  # vault paths
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    warnings: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # vault paths (zotero --update)


def known_ids(notes: Iterable[Note]) -> tuple[set[str], set[str], set[str]]:
    """``(citekeys, DOIs, arXiv ids)`` of the vault's notes, case-folded: what says an item
    has a note already."""
    keys: set[str] = set()
    dois: set[str] = set()
    arxiv: set[str] = set()
    for note in notes:
        if note.citekey:
            keys.add(note.citekey.casefold())
        keys.update(a.lstrip("@").casefold() for a in note.aliases)
        if note.doi:
            dois.add(note.doi.casefold())
        found = _fm(note, "eprint") or arxiv_id(note.doi or "", _fm(note, *_URL_KEYS))
        if found:
            arxiv.add(re.sub(r"v\d+$", "", found).casefold())
    return keys, dois, arxiv


def import_bibtex(vault, bib_path: Path | str, *, folder: str = "", today: str | None = None) -> ImportReport:
    """Create a note for each entry of ``bib_path`` that no note of ``vault`` has yet (by
    citekey, DOI or arXiv id), from the vault's template (else the seed's). Existing files
    are never written; ``folder`` is inside the vault."""
    from kb.errors import PaperkbError
    from kb.publish.notetemplate import NoteTemplate
    from paperkb.files import read_regular, safe_component, write_new

    bib_path = Path(bib_path)
    raw = read_regular(bib_path, MAX_BIB_BYTES)
    text = raw.decode("utf-8", "replace")
    entries, warnings = parse_bibtex(text, str(bib_path))
    report = ImportReport(warnings=warnings)
    root = vault.root
    template = NoteTemplate.for_vault(root)
    target = (root / folder).resolve()
    if not target.is_relative_to(root):
        raise PaperkbError(f"folder {folder!r} is outside the vault", exit_code=2)
    keys, dois, arxivs = known_ids(vault.notes())
    for entry in entries:
        doi = entry.fields.get("doi", "").casefold()
        arxiv = re.sub(r"v\d+$", "", item_context(entry)["arxiv"]).casefold()
        if entry.key.casefold() in keys or (doi and doi in dois) or (arxiv and arxiv in arxivs):
            report.skipped.append((entry.key, "a note has this citekey, DOI or arXiv id"))
            continue
        target.mkdir(parents=True, exist_ok=True)
        name = note_file_name(entry.fields.get("title", ""), entry.key)
        path = target / name
        if os.path.lexists(path):
            path = target / f"{name[:-3]} ({safe_component(entry.key)}).md"
        if os.path.lexists(path):
            report.skipped.append((entry.key, f"{path.name} exists"))
            continue
        text = note_text(entry, today=today, template=template)
        try:  # a new file only, checked to land inside the vault, never through a link
            path = write_new(root, path, text)
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
        if arxiv:
            arxivs.add(arxiv)
        report.created.append(path.relative_to(root.resolve()).as_posix())
    return report
