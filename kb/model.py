"""The note model: what paperkb knows about one Markdown note of a vault.

Everything here is plain data (dataclasses of str/int/float/bool/list/dict/None), so a
parsed note round-trips through JSON (``Note.to_dict`` / ``Note.from_dict``) and can be
cached in the SQLite index without pickling.

Conventions shared by every module:

* ``path`` is vault-relative with forward slashes, e.g. ``"papers/Llama 2.md"``.
* ``line`` numbers are 1-based from the top of the file, frontmatter included.
* Tags carry no leading ``#``; they keep the spelling of their first occurrence and
  compare case-insensitively (``tag_key``).
* Callout ``type`` is canonical (an alias such as ``faq`` is reported as ``question``);
  ``raw_type`` keeps what the note wrote.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")


@dataclass
class Problem:
    """Something wrong in a note, reported as ``path:line: severity: message``."""

    path: str
    line: int
    severity: str  # "error" | "warning" | "info"
    message: str

    def format(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"


@dataclass
class Heading:
    text: str
    level: int
    line: int


@dataclass
class Link:
    """One link as written in a note: a wikilink, an embed or a Markdown link.

    ``target`` is the note or file part ("Note", "folder/Note", "Note.md", "@citekey",
    "image.png"); it is ``""`` for a link to a heading of the same note (``[[#H]]``).
    ``heading`` is the heading path after ``#`` (levels joined by ``#``), ``block`` the
    block id after ``#^``; ``subpath`` keeps the raw text after the first ``#``
    (e.g. ``page=3`` for ``![[doc.pdf#page=3]]``). ``display`` is the alias text after
    ``|`` (for image embeds a size such as ``100x145``).
    """

    target: str
    kind: str  # "wikilink" | "embed" | "markdown"
    line: int
    heading: str | None = None
    block: str | None = None
    subpath: str | None = None
    display: str | None = None
    section: str | None = None  # text of the heading the link sits under, if any
    is_citation: bool = False  # a citation under the vault's rule (kb.citing): a References section by default
    resolved: str | None = None  # vault path of the target, filled by kb.resolve


@dataclass
class Callout:
    type: str  # canonical type, lower case ("question", "note", "claim", custom-type ...)
    raw_type: str  # as written, e.g. "FAQ"
    title: str  # custom title, else "" (Obsidian then shows the type name)
    fold: str | None  # "+", "-" or None
    line: int  # line of the [!type] marker
    end_line: int  # last line of the callout
    depth: int = 1  # 1 for "> [!x]", 2 for "> > [!x]" ...
    content: str = ""  # body text (markers stripped), without the title line


@dataclass
class Question:
    text: str  # the question as written in the callout (title and body)
    answer: str  # an Answer: line or answer:: field in the callout, else the text below it
    answered: bool
    line: int
    prompt: bool = False  # a template's question left unanswered (kb.prompts): not an open question

    @property
    def open(self) -> bool:
        """Asked by the user and not answered yet."""
        return not self.answered and not self.prompt


@dataclass
class Claim:
    """A claim of a note. ``params`` (``params:: name=value, ...``) are parameter values the
    claim's experiments run with; ``expect`` (``expect:: metric ≈ 110 ± 2%``) are extra
    thresholds on the metrics those runs record (see ``kb.claimspec``); ``needs``
    (``needs:: the WMT14 data``) says why nothing here can decide the claim."""

    id: str
    statement: str
    experiments: list[str]
    line: int
    source: str = "callout"  # "callout" | "frontmatter"
    params: dict[str, Any] = field(default_factory=dict)
    expect: list[dict[str, Any]] = field(default_factory=list)
    needs: str = ""
    # A params:: / expect:: line that did not parse: the claim then reads "error" (never
    # judged on what is left of it).
    spec_errors: list[str] = field(default_factory=list)


@dataclass
class Task:
    text: str
    status: str  # the character between the brackets: " ", "x", "/", "-" ...
    completed: bool
    line: int


@dataclass
class InlineField:
    key: str
    value: str
    line: int
    style: str = "line"  # "line" (key:: value), "bracket" ([key:: value]), "paren" ((key:: value))


@dataclass
class BlockId:
    id: str
    line: int  # line where ^id is written
    block_line: int  # first line of the block it names


@dataclass
class ListItem:
    text: str
    line: int
    task: bool = False


@dataclass
class Note:
    path: str
    title: str = ""
    aliases: list[str] = field(default_factory=list)
    citekey: str | None = None
    authors: list[str] = field(default_factory=list)
    year: int | None = None
    doi: str | None = None
    tags: list[str] = field(default_factory=list)
    frontmatter: dict[str, Any] = field(default_factory=dict)
    frontmatter_format: str | None = None  # "yaml" | "json" | None
    headings: list[Heading] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    callouts: list[Callout] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    highlights: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    lists: list[ListItem] = field(default_factory=list)
    inline_fields: list[InlineField] = field(default_factory=list)
    block_ids: list[BlockId] = field(default_factory=list)
    dataview_blocks: list[dict[str, Any]] = field(default_factory=list)  # {"query", "line", "end_line"}
    body_text: str = ""  # readable text of the body (for full-text search)
    size: int = 0
    mtime: float = 0.0
    ctime: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    # ---- convenience -------------------------------------------------------------
    @property
    def name(self) -> str:
        """File name without extension (what ``[[Name]]`` matches)."""
        base = self.path.rsplit("/", 1)[-1]
        return base[:-3] if base.lower().endswith(".md") else base

    @property
    def tag_keys(self) -> set[str]:
        return {tag_key(t) for t in self.tags}

    # ---- (de)serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["frontmatter"] = json_safe(self.frontmatter)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Note:
        kw = dict(d)
        for name, sub in LIST_FIELDS.items():
            kw[name] = [sub(**x) for x in kw.get(name) or []]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kw.items() if k in known})


LIST_FIELDS = {
    "headings": Heading,
    "links": Link,
    "callouts": Callout,
    "questions": Question,
    "claims": Claim,
    "tasks": Task,
    "lists": ListItem,
    "inline_fields": InlineField,
    "block_ids": BlockId,
    "problems": Problem,
}


def tag_key(tag: str) -> str:
    """Tags compare case-insensitively and without the leading '#'."""
    return tag.lstrip("#").casefold()


def json_safe(value: Any) -> Any:
    """Turn YAML values (dates, sets, tuples, odd keys) into JSON-serialisable data."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
