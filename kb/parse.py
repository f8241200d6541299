"""Parse one Obsidian note into a :class:`kb.model.Note`.

The pipeline: bytes -> text (kb.text: BOM, CRLF, bad UTF-8, binary, mojibake) ->
frontmatter (kb.frontmatter) -> markdown-it tokens (kb.syntax: Obsidian's dialect as
markdown-it rules) -> one walk over the tokens that collects headings, links, tags,
callouts, tasks, fields and block ids -> the paper model (title, authors, year, DOI,
citekey, questions, highlights, claims, citations).

``parse_note`` never raises: whatever is wrong with a note becomes a ``Problem``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from bisect import bisect_left
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.citing import DEFAULT_CITATION_RULE, CitationRule, load_citation_rule
from kb.frontmatter import Issue, Properties, get_key, key_line, load_frontmatter, split_frontmatter
from kb.inline import HIGHLIGHTS_RE, TRAILING_BLOCK_ID_RE, WS_RE, markdown_link, strip_emphasis, wikilink
from kb.model import (
    BlockId,
    Callout,
    Claim,
    Heading,
    InlineField,
    Link,
    ListItem,
    Note,
    Problem,
    Question,
    Task,
    tag_key,
)
from kb.prompts import DEFAULT_PROMPTS, prompt_key
from kb.syntax import CALLOUT_ALIASES, clean_tag, obsidian_markdown
from kb.text import decode_note

if TYPE_CHECKING:
    from kb.scan import ScanResult

__all__ = ["CALLOUT_ALIASES", "is_citekey", "parse_file", "parse_note", "prepare", "slugify"]

_MD = None

# markdown-it-py parses about 1 MB/s; past this size (Obsidian itself struggles with such
# notes) the rest of a note is kept as plain text (searchable, no links) so that one
# pasted log cannot stall indexing.
MAX_MARKDOWN_CHARS = 1_000_000


def _markdown():
    """One parser per process: building it costs far more than parsing a note."""
    global _MD
    if _MD is None:
        _MD = obsidian_markdown()
    return _MD


def prepare() -> None:
    """Import markdown-it and PyYAML and build the parser now (``import kb.parse`` alone
    does neither, to stay cheap). Call it before forking parse workers so that they
    inherit a ready parser."""
    import yaml  # noqa: F401

    _markdown()


# --- small helpers ----------------------------------------------------------------------
_SLUG_DROP_RE = re.compile(r"[^\w]+|_+")


def slugify(text: str) -> str:
    """``"Llama 2-Chat beats MPT!"`` -> ``"llama-2-chat-beats-mpt"`` (Unicode letters kept)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    slug = _SLUG_DROP_RE.sub("-", text).strip("-")
    return slug[:80].rstrip("-")


# Better BibTeX's default key: lower-case first author, title words, year (+ a/b suffix).
_CITEKEY_RE = re.compile(r"[a-z\u00df-\u00ff][\w'-]*?[A-Z0-9\u00c0-\u00de][\w-]*?(?:1[5-9]|20)\d\d[a-z]?")


def is_citekey(text: str) -> bool:
    """Whether ``text`` looks like a Better BibTeX key, e.g. ``touvronLlamaOpenFoundation2023``."""
    return bool(_CITEKEY_RE.fullmatch(text))


_AUTHOR_SPLIT_RE = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*")
_TAG_SPLIT_RE = re.compile(r"[,\s]+")
_ALIAS_SPLIT_RE = re.compile(r"\s*,\s*")
_QUOTE_MARKERS: dict[int, re.Pattern[str]] = {}
_EXPERIMENT_KEYS = ("experiment", "experiments")
_CLAIM_SPEC_KEYS = ("params", "expect", "needs")
_YEAR_RE = re.compile(r"(?<!\d)(1[5-9]\d\d|20\d\d)(?!\d)")


def _quote_marker(depth: int) -> re.Pattern[str]:
    if depth not in _QUOTE_MARKERS:
        _QUOTE_MARKERS[depth] = re.compile(rf"^(?:[ \t]*>){{1,{depth}}} ?")
    return _QUOTE_MARKERS[depth]


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _string_list(value: Any, split_re: re.Pattern[str] | None = None, split_items: bool = False) -> list[str]:
    """A property that may be a list or a (separated) string, as a list of strings; the
    items of a YAML list are split too only with ``split_items``."""
    is_list = isinstance(value, list)
    out: list[str] = []
    for item in value if is_list else [value]:
        text = _as_text(item)
        if text is None:
            continue
        if split_re is not None and (split_items or not is_list):
            out.extend(split_re.split(text))
        else:
            out.append(text)
    return [p.strip() for p in out if p.strip()]


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = tag_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


# --- public entry points ----------------------------------------------------------------
def parse_file(root: Path, relpath: str, citations: CitationRule | None = None) -> Note:
    """Read ``root/relpath`` and parse it; an unreadable file gives a note with an error."""
    path = Path(root) / relpath
    rel = relpath.replace(os.sep, "/")
    try:
        data = path.read_bytes()
        st = path.stat()
    except OSError as exc:
        note = Note(path=rel)
        note.title = note.name
        note.problems.append(Problem(rel, 1, "error", f"cannot read note: {exc.strerror or exc}"))
        return note
    if citations is None:
        citations = load_citation_rule(root)
    return parse_note(data, rel, mtime=st.st_mtime, ctime=getattr(st, "st_birthtime", st.st_ctime), citations=citations)


def parse_note(
    data: bytes | str,
    path: str,
    *,
    mtime: float = 0.0,
    ctime: float = 0.0,
    fast: bool = False,
    citations: CitationRule = DEFAULT_CITATION_RULE,
    prompts: frozenset[str] = DEFAULT_PROMPTS,
) -> Note:
    """Parse a note's bytes (or text); ``path`` is vault-relative with ``/``. Never raises.

    ``fast``: try kb.scan's scanner first (same Note, several times faster on the notes it
    accepts; the others go to markdown-it). The index uses it. ``citations``: the vault's
    rule for which links are citations (``kb.citing``); ``prompts``: the template's
    questions, which are no open questions while unanswered (``kb.prompts``)."""
    try:
        note = _parse(data, path, mtime, ctime, fast, citations, prompts)
    except Exception as exc:  # a bug must not stop indexing the rest of the vault
        note = Note(path=path, mtime=mtime, ctime=ctime)
        note.title = note.name
        note.problems.append(Problem(path, 1, "error", f"parser failed: {type(exc).__name__}: {exc}"))
        return note
    if EXPORT_MARKER in note.frontmatter or _head(data).startswith(EXPORT_COMMENT):
        return _inert(note)
    return note


# what paperkb writes into every Markdown file it exports (kb.publish.papers.EXPORT_MARKER):
# a frontmatter key, or (``--no-frontmatter``) a first-line HTML comment no renderer shows
EXPORT_MARKER = "paperkb-export"
EXPORT_COMMENT = "<!-- paperkb-export"


def _head(data: bytes | str) -> str:
    head = data[:64]
    return (head.decode("utf-8", "replace") if isinstance(head, bytes) else head).lstrip("\ufeff")


def _inert(note: Note) -> Note:
    """A file paperkb exported (a summary, a Markdown copy) read back as nothing: no title,
    names, links, claims, tags or problems of its own, so that a copy lying in the vault
    never doubles a note, a citation or a warning. Only its path and the marker remain."""
    marker = note.frontmatter.get(EXPORT_MARKER, "markdown")
    return Note(
        path=note.path,
        size=note.size,
        mtime=note.mtime,
        ctime=note.ctime,
        title=note.name,
        frontmatter={EXPORT_MARKER: marker if isinstance(marker, (str, bool)) else True},
    )


def _parse(
    data: bytes | str,
    path: str,
    mtime: float,
    ctime: float,
    fast: bool = False,
    citations: CitationRule = DEFAULT_CITATION_RULE,
    prompts: frozenset[str] = DEFAULT_PROMPTS,
) -> Note:
    if isinstance(data, str):
        size = len(data.encode("utf-8", "surrogatepass"))
    else:
        size = len(data)
    note = Note(path=path, size=size, mtime=mtime, ctime=ctime)
    problems = note.problems
    decoded = decode_note(data)
    problems.extend(Problem(path, ln, sev, msg) for ln, sev, msg in decoded.issues)
    if decoded.binary:
        note.title = note.name
        return note
    text = decoded.text

    raw_fm, body_line, body_offset = split_frontmatter(text)
    if raw_fm is not None:
        props = None
        if fast:
            from kb.scan import scan_frontmatter

            props = scan_frontmatter(raw_fm)
        if props is not None:
            fmt, issues = "yaml", list[Issue]()
        else:
            props, fmt, issues = load_frontmatter(raw_fm, 2)
        note.frontmatter, note.frontmatter_format = props, fmt
        problems.extend(Problem(path, ln, sev, msg) for ln, sev, msg in issues)
        # blank lines in place of the frontmatter keep every token's line = the file's line
        source = "\n" * body_line + text[body_offset:]
    else:
        source = text

    rest = ""
    if len(source) > MAX_MARKDOWN_CHARS:
        cut = source.rfind("\n", 0, MAX_MARKDOWN_CHARS) + 1 or MAX_MARKDOWN_CHARS
        source, rest = source[:cut], source[cut:]
        last = source.count("\n")
        problems.append(
            Problem(
                path,
                last + 1,
                "warning",
                f"note too large ({size / 1e6:.1f} MB): only lines 1-{last} were parsed for links, "
                "tags and callouts; the rest is indexed as plain text",
            )
        )

    walk: _Walk | ScanResult | None = None
    if fast and not rest:
        from kb.scan import scan_body

        walk = scan_body(note, source)
    if walk is None:
        env: dict[str, Any] = {}
        tokens = _markdown().parse(source, env)
        markdown_walk = _Walk(note, source, env)
        markdown_walk.run(tokens)
        walk = markdown_walk
    if rest:
        note.body_text += "\n" + rest

    _sections(note, citations)
    _paper_model(note, walk, raw_fm or "")
    _questions(note, walk, prompts)
    _claims(note, walk, raw_fm or "")
    problems.sort(key=lambda p: p.line)
    return note


# --- the token walk ---------------------------------------------------------------------
_CLOSERS = {
    "bullet_list_close": "list",
    "ordered_list_close": "list",
    "list_item_close": "item",
    "table_close": "table",
}


def _line_locator(content: str, line: int):
    """``meta -> line`` for the children of an inline token starting at ``line``: the
    line a child's ``pos`` in ``content`` falls on (newline offsets found on first use)."""
    newlines: list[int] | None = None

    def line_at(meta: dict) -> int:
        if "line" in meta:  # set for the text of an inline footnote, see "footnote_ref"
            return meta["line"]
        nonlocal newlines
        if newlines is None:
            newlines = []
            at = content.find("\n")
            while at >= 0:
                newlines.append(at)
                at = content.find("\n", at + 1)
        return line + bisect_left(newlines, meta.get("pos", 0)) if newlines else line

    return line_at


class _Walk:
    """One pass over markdown-it's flat token stream."""

    def __init__(self, note: Note, source: str, env: dict[str, Any]) -> None:
        self.note = note
        self.source = source
        self.env = env
        self.unplaced_text: list[str] = []  # text with no line (inline footnotes): body only
        self.inline_tags: list[str] = []
        self.blocks: list[tuple[int, str]] = []  # (line, readable text) for body and answers
        self.stack: list[tuple[str, int, Any]] = []  # open containers: (kind, line, extra)
        self.open_callouts: list[tuple[Callout, list[str]]] = []
        self.callout_texts: dict[int, str] = {}  # id(callout) -> readable text of its body
        self.tokens: list = []
        self.paragraph_line = 1
        self.paragraph_index = 0
        self.pending_item: tuple[ListItem, Task | None, bool] | None = None
        self.heading_text = ""
        self._lines: list[str] | None = None

    # -- block level
    def run(self, tokens: list) -> None:
        note = self.note
        self.tokens = tokens
        line = 1
        stack = self.stack
        for i, tok in enumerate(tokens):
            ttype = tok.type
            if ttype == "inline":
                self.inline(tok, tok.map[0] + 1 if tok.map else line, i, tokens)
                continue
            if tok.nesting < 0:  # a closing token: only a few matter
                if ttype == "heading_close":
                    self.heading(tok, line)
                elif ttype == "blockquote_close":
                    callout = self._pop("blockquote")
                    if callout is not None and self.open_callouts and self.open_callouts[-1][0] is callout:
                        _, parts = self.open_callouts.pop()
                        self.callout_texts[id(callout)] = "\n".join(p for p in parts if p).strip()
                elif ttype in _CLOSERS:
                    if ttype == "list_item_close":
                        self.pending_item = None
                    self._pop(_CLOSERS[ttype])
                continue
            if tok.map is not None:
                line = tok.map[0] + 1
            if ttype == "paragraph_open":
                self.paragraph_line, self.paragraph_index = line, i
            elif ttype == "blockquote_open":
                info = (tok.meta or {}).get("callout")
                callout = self.callout(tok, info) if info else None
                stack.append(("blockquote", line, callout))
            elif ttype == "bullet_list_open" or ttype == "ordered_list_open":
                stack.append(("list", line, None))
            elif ttype == "list_item_open":
                self.list_item(tok, line)
                stack.append(("item", line, None))
            elif ttype == "table_open":
                stack.append(("table", line, None))
            elif ttype in ("fence", "code_block", "math_block", "math_block_label"):
                self.code(tok, line)
        for callout, parts in self.open_callouts:  # defensive: an unbalanced stream
            self.callout_texts[id(callout)] = "\n".join(parts).strip()
        note.tags = list(note.tags) + self.inline_tags
        note.body_text = "\n".join([text for _, text in self.blocks if text] + self.unplaced_text)

    def _previous_sibling_line(self) -> int | None:
        """First line of the block just before the current paragraph, at its level."""
        tokens, i = self.tokens, self.paragraph_index
        level = tokens[i].level
        j = i - 1
        if j < 0 or tokens[j].level != level or tokens[j].nesting == 1:
            return None  # the paragraph opens its container: no sibling before it
        if tokens[j].nesting == -1:  # the closer of the sibling: find its opener
            while j >= 0 and not (tokens[j].level == level and tokens[j].nesting == 1):
                j -= 1
        if j < 0 or tokens[j].map is None:
            return None
        return tokens[j].map[0] + 1

    def _pop(self, kind: str) -> Any:
        # the footnote plugin moves definitions (with some of their closers) to the end
        # of the stream, so a closer may have no opener: ignore those
        if self.stack and self.stack[-1][0] == kind:
            return self.stack.pop()[2]
        return None

    def heading(self, tok, line: int) -> None:
        level = int(tok.tag[1]) if tok.tag[1:].isdigit() else 1
        text = self.heading_text.strip()
        self.note.headings.append(Heading(text=text, level=level, line=line))

    def callout(self, tok, info: dict) -> Callout:
        start, end = tok.map[0] + 1, tok.map[1]
        depth = info["depth"]
        if self._lines is None:
            self._lines = self.source.split("\n")
        marker = _quote_marker(depth)
        body = [marker.sub("", ln.lstrip(), count=1) for ln in self._lines[start:end]]
        callout = Callout(
            type=info["type"],
            raw_type=info["raw_type"],
            title=TRAILING_BLOCK_ID_RE.sub("", info["title"]),
            fold=info["fold"],
            line=start,
            end_line=end,
            depth=depth,
            content="\n".join(body).strip("\n"),
        )
        self.note.callouts.append(callout)
        self.open_callouts.append((callout, []))
        return callout

    def list_item(self, tok, line: int) -> None:
        status = (tok.meta or {}).get("task")
        item = ListItem(text="", line=line, task=status is not None)
        self.note.lists.append(item)
        task = None
        if status is not None:
            task = Task(text="", status=status, completed=status in "xX", line=line)
            self.note.tasks.append(task)
        # a first-level item of a callout titled "Highlights"; its text arrives with the
        # item's first inline token
        highlight = False
        if len(self.stack) >= 2 and self.stack[-1][0] == "list" and self.stack[-2][0] == "blockquote":
            callout = self.stack[-2][2]
            highlight = callout is not None and bool(HIGHLIGHTS_RE.fullmatch(strip_emphasis(callout.title)))
        self.pending_item = (item, task, highlight)

    def code(self, tok, line: int) -> None:
        info = (tok.info or "").strip().split(maxsplit=1)
        if tok.type == "fence" and info and info[0].lower() == "dataview":
            end = tok.map[1] if tok.map else line
            self.note.dataview_blocks.append({"query": tok.content, "line": line, "end_line": end})
            return
        text = tok.content.rstrip("\n")
        self.blocks.append((line, text))
        for _, parts in self.open_callouts:
            parts.append(text)

    # -- inline level
    def inline(self, tok, line: int, i: int, tokens: list) -> None:
        """One inline token: collect its readable text, and the links, tags, inline
        fields and block ids among its children, each at its own line."""
        content = tok.content
        line_at = _line_locator(content, line)
        parts: list[str] = []
        open_link: tuple[Link, int] | None = None
        in_table = bool(self.stack) and self.stack[-1][0] == "table"
        for child in tok.children or ():
            ctype = child.type
            if ctype == "text" or ctype == "code_inline" or ctype.startswith("math_inline"):
                parts.append(child.content)
            elif ctype == "softbreak" or ctype == "hardbreak":
                parts.append("\n")
            elif ctype in ("wikilink", "link_open", "link_close", "image"):
                open_link = self._inline_link(child, parts, open_link, line_at)
            elif ctype == "tag":
                self.inline_tags.append(child.meta["tag"])
                parts.append(child.content)
            elif ctype == "inline_field":
                meta = child.meta
                self.note.inline_fields.append(
                    InlineField(key=meta["key"], value=meta["value"], line=line_at(meta), style=meta["style"])
                )
            elif ctype == "block_id":
                self._block_id(child.meta, content, line_at(child.meta), in_table)
            elif ctype == "footnote_ref":
                # an inline footnote ^[...] was parsed here, but its tokens are emitted at the
                # end of the stream without a line: give them this paragraph's lines now
                self._place_footnote(child.meta, line_at)
        self._inline_text(tok, "".join(parts), line, i, tokens)

    def _inline_link(self, child, parts: list[str], open_link: tuple[Link, int] | None, line_at):
        """A wikilink, Markdown link or image child; returns the Markdown link still open
        (its label is the text up to ``link_close``)."""
        ctype = child.type
        if ctype == "wikilink":
            self._link(wikilink(child.meta, line_at(child.meta)))
            parts.append(child.content)
        elif ctype == "link_open":
            link = markdown_link(child.attrGet("href"), line_at(child.meta or {}))
            if link is not None:
                self._link(link)
                return (link, len(parts))
        elif ctype == "link_close":
            if open_link is not None:
                label = "".join(parts[open_link[1] :]).strip()
                open_link[0].display = label or None
            return None
        elif ctype == "image":
            link = markdown_link(child.attrGet("src"), line_at(child.meta or {}))
            if link is not None:
                link.display = child.content or None
                self._link(link)
            parts.append(child.content)
        return open_link

    def _inline_text(self, tok, text: str, line: int, i: int, tokens: list) -> None:
        """Hand an inline token's readable text to the heading, block, callouts and list
        item (or task, or highlight) it belongs to."""
        if tokens[i - 1].type == "heading_open":
            self.heading_text = text
        readable = WS_RE.sub("\n", text).strip()
        if tok.map is None:
            self.unplaced_text.append(readable)
            return
        self.blocks.append((line, readable))
        for _, callout_parts in self.open_callouts:
            callout_parts.append(readable)
        if self.pending_item is not None and i >= 2 and tokens[i - 2].type == "list_item_open":
            item, task, highlight = self.pending_item
            item.text = readable
            if task is not None:
                task.text = readable
            if highlight and readable:
                self.note.highlights.append(readable)
            self.pending_item = None

    def _place_footnote(self, meta: dict | None, line_at) -> None:
        if meta is None:
            return
        try:
            inner = self.env["footnotes"]["list"][meta["id"]].get("tokens") or ()
        except (KeyError, TypeError, IndexError):
            return
        for token in inner:
            if token.meta and "pos" in token.meta:
                token.meta["line"] = line_at(token.meta)

    def _link(self, link: Link) -> None:
        self.note.links.append(link)

    def _block_id(self, meta: dict, content: str, line: int, in_table: bool) -> None:
        block_line = self.paragraph_line
        if meta["alone"]:
            if in_table:
                block_line = self.stack[-1][1]
            elif content.strip() == "^" + meta["id"]:  # a paragraph of its own: names the block before
                block_line = self._previous_sibling_line() or line
            else:  # last line of a paragraph: a lazy line after a quote or list names that block
                block_line = self._container_line()
        self.note.block_ids.append(BlockId(id=meta["id"], line=line, block_line=block_line))

    def _container_line(self) -> int:
        stack = self.stack
        if not stack:
            return self.paragraph_line
        kind, line, _ = stack[-1]
        if kind == "blockquote":
            return line
        if kind == "item":  # the outermost list of this run of nested lists
            j = len(stack) - 1
            while j > 0 and stack[j - 1][0] in ("list", "item"):
                j -= 1
            return stack[j][1]
        return self.paragraph_line


# --- the paper model --------------------------------------------------------------------
def _sections(note: Note, rule: CitationRule = DEFAULT_CITATION_RULE) -> None:
    """Each link's section (the heading above it) and whether it is a citation under the
    vault's rule (``kb.citing``): anywhere, or inside a section whose heading the rule
    names, which runs to the next heading of the same or a higher level. Done by line, so
    footnote text (moved to the end of markdown-it's token stream) still lands in the
    right section."""
    headings = note.headings
    if not note.links:
        return
    if not headings:
        for link in note.links:
            link.is_citation = rule.anywhere
        return
    lines = [h.line for h in headings]
    ref_ranges = []
    if not rule.anywhere:
        for k, h in enumerate(headings):
            if rule.is_citing_heading(strip_emphasis(h.text)):
                end = next((o.line for o in headings[k + 1 :] if o.level <= h.level), float("inf"))
                ref_ranges.append((h.line, end))
    for link in note.links:
        k = bisect_left(lines, link.line) - 1  # the last heading strictly above the link
        link.section = headings[k].text if k >= 0 else None
        link.is_citation = rule.anywhere or any(start < link.line < end for start, end in ref_ranges)


def _paper_model(note: Note, walk: _Walk | ScanResult, raw_fm: str) -> None:
    props = Properties(note.frontmatter)
    title = _as_text(props.get("name", "title"))
    if title is None:
        h1 = next((h for h in note.headings if h.level == 1 and h.text), None)
        title = h1.text if h1 else note.name
    note.title = title

    note.authors = _authors(props.get("authors", "author"))
    note.year = _year(props)
    doi = _as_text(props.get("doi"))
    if doi:
        doi = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", doi, flags=re.I).strip() or None
    note.doi = doi

    note.aliases = _dedupe([a.lstrip() for a in _string_list(props.get("aliases", "alias"), _ALIAS_SPLIT_RE)])
    citekey = _as_text(props.get("citekey", "citationkey", "citation-key", "citation key"))
    if citekey:
        citekey = citekey.lstrip("@").strip() or None
    if citekey is None:
        citekey = next((a.lstrip("@") for a in note.aliases if is_citekey(a.lstrip("@"))), None)
    if citekey is None and note.name.startswith("@") and is_citekey(note.name[1:]):
        citekey = note.name[1:]  # the Zotero Integration plugin's "@citekey.md"
    note.citekey = citekey

    fm_tags: list[str] = []
    raw_tags = props.get("tags", "tag")
    for item in _string_list(raw_tags, _TAG_SPLIT_RE, split_items=True):
        tag = clean_tag(item.lstrip("#"))
        if tag is None:
            line = key_line(raw_fm, "tags", 2)
            note.problems.append(Problem(note.path, line, "warning", f"frontmatter tag {item!r} is not a valid tag"))
        else:
            fm_tags.append(tag)
    note.tags = _dedupe(fm_tags + note.tags)


def _authors(value: Any) -> list[str]:
    if isinstance(value, list):
        names = []
        for item in value:
            if isinstance(item, dict):  # CSL-style {given, family}
                given_family = [_as_text(item.get(k)) for k in ("given", "family")]
                name = " ".join(p for p in given_family if p) or _as_text(item.get("name"))
            else:
                name = _as_text(item)
            if name:
                names.append(name.lstrip("[").rstrip("]") if name.startswith("[[") else name)
        return names
    text = _as_text(value)
    if not text:
        return []
    parts: list[str]
    if ";" in text:
        parts = text.split(";")
    elif " and " in text and "," in text and all(p.count(",") == 1 for p in text.split(" and ")):
        parts = text.split(" and ")  # BibTeX's "Last, First and Last, First"
    else:
        parts = _AUTHOR_SPLIT_RE.split(text)
    return [p.strip() for p in parts if p and p.strip()]


def _year(props: Properties) -> int | None:
    for key in ("year", "date", "published", "issued", "publication date", "date published"):
        value = props.get(key)
        if isinstance(value, bool) or value is None:
            continue
        m = _YEAR_RE.search(str(value))
        if m:
            return int(m.group(1))
    return None


_ANSWER_LABEL_RE = re.compile(r"\s*answer\s*::?\s*", re.I)


def _split_answer(text: str) -> tuple[str, str | None]:
    """``(question, answer)`` of a callout's text: an ``Answer:`` line (emphasis already
    gone from ``**Answer:**``) starts the answer, which runs to the end; None without one."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = _ANSWER_LABEL_RE.match(line)
        if m:
            return "\n".join(lines[:i]).strip(), "\n".join([line[m.end() :], *lines[i + 1 :]]).strip()
    return text, None


def _questions(note: Note, walk: _Walk | ScanResult, prompts: frozenset[str] = DEFAULT_PROMPTS) -> None:
    """Each question callout, its answer and whether it is a template prompt left empty.

    The answer is, in this order: an ``answer::`` inline field or an ``Answer:`` line inside
    the callout (the rest of the callout), else the text below the callout up to the next
    callout or heading (an ``Answer:`` label there is dropped: the label alone is no answer)."""
    questions = [c for c in note.callouts if c.type == "question"]
    if not questions:
        return
    stops = sorted({c.line for c in note.callouts} | {h.line for h in note.headings})
    blocks = sorted(walk.blocks, key=lambda b: b[0])
    block_lines = [b[0] for b in blocks]
    for callout in questions:
        body = walk.callout_texts.get(id(callout), "")
        text = body or callout.title
        # (the body is rendered text: a title with *emphasis* opens it without the marks)
        if callout.title and not prompt_key(body).startswith(prompt_key(callout.title)):
            text = f"{callout.title}\n{body}".strip()
        field = next(
            (
                f
                for f in note.inline_fields
                if callout.line <= f.line <= callout.end_line and f.key.strip().casefold() == "answer"
            ),
            None,
        )
        answer: str | None = None
        if field is not None:
            answer = field.value.strip()
            shown = f"{field.key} {field.value}".strip()  # how the field reads in the callout's text
            text = "\n".join(ln for ln in text.split("\n") if ln.strip() != shown and ln.strip() != field.key).strip()
        else:
            text, answer = _split_answer(text)
        if not answer:
            k = bisect_left(stops, callout.end_line + 1)
            stop = stops[k] if k < len(stops) else float("inf")
            lo = bisect_left(block_lines, callout.end_line + 1)
            answer_parts = []
            for line, block in blocks[lo:]:
                if line >= stop:
                    break
                if block:
                    answer_parts.append(block)
            below = "\n".join(answer_parts).strip()
            m = _ANSWER_LABEL_RE.match(below)
            answer = below[m.end() :].strip() if m else below
        prompt = not answer and prompt_key(text) in prompts
        note.questions.append(
            Question(text=text, answer=answer, answered=bool(answer), line=callout.line, prompt=prompt)
        )


def _claims(note: Note, walk: _Walk | ScanResult, raw_fm: str) -> None:
    claims: list[Claim] = []
    for callout in note.callouts:
        if callout.type != "claim":
            continue
        statement = callout.title
        if not statement:
            for raw in callout.content.split("\n"):
                raw = TRAILING_BLOCK_ID_RE.sub("", raw).strip()
                if raw and "::" not in raw and not raw.startswith("^"):
                    statement = raw
                    break
        experiments: list[str] = []
        spec: dict[str, list[tuple[str, int]]] = {}
        for f in note.inline_fields:
            if callout.line <= f.line <= callout.end_line:
                key = f.key.strip().lower()
                if key in _EXPERIMENT_KEYS:
                    experiments.extend(_experiment_ids(f.value))
                elif key in _CLAIM_SPEC_KEYS:
                    spec.setdefault(key, []).append((f.value, f.line))
        claim_id = next((b.id for b in note.block_ids if b.block_line == callout.line), None)
        claim = Claim(
            id=claim_id or slugify(statement) or f"claim-{callout.line}",
            statement=statement,
            experiments=_dedupe(experiments),
            line=callout.line,
            source="callout",
        )
        _claim_spec(note, claim, spec)
        claims.append(claim)
    listed = get_key(note.frontmatter, "claims")
    if listed is not None:
        line = key_line(raw_fm, "claims", 2)
        if not isinstance(listed, list):
            note.problems.append(Problem(note.path, line, "warning", "frontmatter 'claims' should be a list"))
            listed = []
        for entry in listed:
            if not isinstance(entry, dict):
                note.problems.append(Problem(note.path, line, "warning", f"claim {entry!r} is not a mapping"))
                continue
            statement = _as_text(get_key(entry, "statement", "claim")) or ""
            claim_id = _as_text(get_key(entry, "id"))
            if not claim_id and not statement:
                note.problems.append(Problem(note.path, line, "warning", "claim without id or statement"))
                continue
            experiments = []
            for value in _string_list(get_key(entry, "experiment", "experiments")):
                experiments.extend(_experiment_ids(value))
            claim = Claim(
                id=claim_id or slugify(statement),
                statement=statement,
                experiments=_dedupe(experiments),
                line=_entry_line(raw_fm, claim_id, line),
                source="frontmatter",
            )
            fm_spec: dict[str, list[tuple[str, int]]] = {}
            for key in _CLAIM_SPEC_KEYS:
                value = get_key(entry, key)
                if isinstance(value, dict) and key == "params":  # YAML mapping: name: value
                    value = ", ".join(f"{k}={_as_text(v) if not isinstance(v, list) else v}" for k, v in value.items())
                if isinstance(value, list):
                    value = ("; " if key == "expect" else ", ").join(str(v) for v in value)
                if value is not None:
                    fm_spec[key] = [(_as_text(value) or "", claim.line)]
            _claim_spec(note, claim, fm_spec)
            claims.append(claim)
    first_line: dict[str, int] = {}
    for claim in claims:
        if claim.id in first_line:
            note.problems.append(
                Problem(
                    note.path,
                    claim.line,
                    "error",
                    f"duplicate claim id {claim.id!r} (first on line {first_line[claim.id]})",
                )
            )
        else:
            first_line[claim.id] = claim.line
    note.claims = claims


def _claim_spec(note: Note, claim: Claim, spec: dict[str, list[tuple[str, int]]]) -> None:
    """Fill a claim's params / expect / needs from its fields. A bad one is an error of the
    note and is kept on the claim (``spec_errors``): the claim reads "error", never a verdict
    on what is left of it."""
    from kb.claimspec import ClaimSpecError, parse_expect, parse_params

    for value, line in spec.get("params", []):
        try:
            for name, v in parse_params(value).items():
                if name in claim.params:
                    raise ClaimSpecError(f"params:: sets {name!r} twice")
                claim.params[name] = v
        except ClaimSpecError as exc:
            claim.spec_errors.append(f"line {line}: {exc}")
            note.problems.append(Problem(note.path, line, "error", f"claim '{claim.id}': {exc}"))
        except Exception as exc:  # one bad field never drops the rest of the note (issue 23)
            claim.spec_errors.append(f"line {line}: params:: not read")
            note.problems.append(Problem(note.path, line, "error", f"claim '{claim.id}': params:: not read: {exc!r}"))
    for value, line in spec.get("expect", []):
        try:
            claim.expect.extend(parse_expect(value))
        except ClaimSpecError as exc:
            claim.spec_errors.append(f"line {line}: {exc}")
            note.problems.append(Problem(note.path, line, "error", f"claim '{claim.id}': {exc}"))
        except Exception as exc:  # one bad field never drops the rest of the note (issue 23)
            claim.spec_errors.append(f"line {line}: expect:: not read")
            note.problems.append(Problem(note.path, line, "error", f"claim '{claim.id}': expect:: not read: {exc!r}"))
    needs = " ".join(v.strip() for v, _ in spec.get("needs", []) if v.strip())
    claim.needs = needs[:300]


def _entry_line(raw_fm: str, claim_id: str | None, default: int) -> int:
    """The file line of ``id: <claim_id>`` in a YAML claims list (else ``default``)."""
    if claim_id:
        m = re.search(rf"^[ \t]*(?:-[ \t]*)?id[ \t]*:[ \t]*[\"']?{re.escape(claim_id)}[\"']?[ \t]*$", raw_fm, re.M)
        if m:
            return 2 + raw_fm.count("\n", 0, m.start())
    return default


def _experiment_ids(value: str) -> list[str]:
    ids = []
    for part in value.split(","):
        part = part.strip().strip("`'\"").strip()
        if part.startswith("[[") and part.endswith("]]"):
            part = part[2:-2].split("|", 1)[0].strip()
        if part:
            ids.append(part)
    return ids
