"""A fast scanner for the index's facts, equal to the markdown-it path on the notes it accepts.

Why: building markdown-it-py's token stream is about two thirds of what indexing a note
costs (bench/results/parse.md), yet the index keeps only a few facts of it: headings,
links, tags, callouts, list items and tasks, inline fields, block ids and the readable
text. Most notes use a small part of Markdown (paragraphs, ATX headings, flat bullet
lists, callouts, emphasis, links); for those, one pass over the lines finds the same facts
several times faster.

The contract: ``scan_body(note, source)`` either fills ``note`` exactly as
``kb.parse._Walk`` would from markdown-it's tokens and returns an object with the walk's
``blocks`` and ``callout_texts``, or returns ``None`` and leaves ``note`` untouched, and
the caller parses the note with markdown-it. tests/kb/test_scan.py checks the equality on
every note of the test vaults, the bundled vault, the seed note and hypothesis-generated
notes. Rendering and exports still use markdown-it.

Accepted block syntax (anything else returns ``None``): paragraphs, ATX headings, thematic
breaks, flat bullet lists (``-``/``*``/``+``, items of one paragraph, tasks), blockquotes
and callouts one level deep (holding paragraphs and flat lists), lazy continuation lines.
Not accepted: indentation, tabs, fences and indented code, HTML, tables, ordered or nested
lists, setext headings, reference and footnote definitions, block comments and math.

Inline, the Obsidian rules themselves (kb.syntax: wikilinks, embeds, tags, block ids,
inline fields, ``%%comments%%``) run on a light stand-in for markdown-it's inline state,
so their behaviour is the same code; emphasis, Markdown links and line breaks are
emulated here, code spans use markdown-it's own rule, and anything harder (escapes,
entities, HTML, math, marks, strikethrough, footnotes, images, nested or crossing
emphasis) returns ``None``.
Code spans and comments therefore never yield links or tags here either (the same rules
consume them); notes with fences go to markdown-it.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any

from markdown_it.common.normalize_url import normalizeLink, validateLink
from markdown_it.common.utils import isMdAsciiPunct, isPunctChar, isWhiteSpace
from markdown_it.rules_inline.backticks import backtick

from kb.inline import (
    HIGHLIGHTS_RE,
    SCHEME_RE,
    TRAILING_BLOCK_ID_RE,
    WS_RE,
    markdown_link,
    strip_emphasis,
    wikilink,
)
from kb.model import BlockId, Callout, Heading, InlineField, Link, ListItem, Note, Task
from kb.syntax import obsidian_inline
from kb.syntax.callouts import MARKER_RE, canonical_type
from kb.syntax.tasks import TASK_RE

__all__ = ["MAX_SCAN_CHARS", "scan_body"]

# Larger notes go to markdown-it (which also applies its own size cap).
MAX_SCAN_CHARS = 200_000


class Unsupported(Exception):
    """The note uses syntax this scanner does not reproduce: use markdown-it."""


# --- block level -------------------------------------------------------------------------
_HEADING_RE = re.compile(r"(#{1,6})(?: +(.*?))? *$")
_HR_RE = re.compile(r"([-*_])(?: *\1){2,} *$")
_UNDERLINE_RE = re.compile(r"(?:=+|-+) *$")
_BULLET_RE = re.compile(r"([-*+])( {1,4})(?=\S)")
_ORDERED_RE = re.compile(r"\d{1,9}[.)](?: |$)")
_TABLE_ROW_RE = re.compile(r"[ |:-]*-[ |:-]*$")
# first characters of a line that may open a block we do not reproduce
_HARD_STARTS = frozenset("<`~$%[|")


def _is_interrupt(text: str) -> bool:
    """Whether a (non-blank) line would end an open paragraph: a block start."""
    c = text[0]
    if c == "#":
        return _HEADING_RE.match(text) is not None
    if c == ">":
        return True
    if c in "-*+":
        return _HR_RE.match(text) is not None or _BULLET_RE.match(text) is not None
    if c == "_":
        return _HR_RE.match(text) is not None
    return False


def _check_line(text: str) -> None:
    """Refuse line shapes whose block meaning we do not reproduce."""
    c = text[0]
    if c == " ":
        raise Unsupported("indentation")
    if c in "-*+" and text[1:2] in ("", " ") and _BULLET_RE.match(text) is None and _HR_RE.match(text) is None:
        raise Unsupported("empty list item or indented code in an item")
    if c in _HARD_STARTS:
        if c == "[" and "]:" not in text and not text.startswith("[^"):
            return  # a paragraph starting with a link or wikilink
        if c == "%" and (not text.startswith("%%") or text.find("%%", 2) >= 0):
            return  # not a block comment: "%%" closed on its own line is inline
        if c == "~" and not text.startswith("~~~"):
            return
        if c == "`" and not text.startswith("```"):
            return  # a code span, not a fence
        if c == "$" and not text.startswith("$$"):
            return
        if c == "|":
            return  # a table needs a delimiter row, refused separately
        raise Unsupported(f"block starting with {c!r}")
    if c.isdigit() and _ORDERED_RE.match(text):
        raise Unsupported("ordered list")
    if "]:" in text:
        raise Unsupported("possible reference definition")


class _Tok:
    """A stand-in for markdown-it's Token: only what the Obsidian inline rules set."""

    __slots__ = ("content", "markup", "meta", "pos", "type")

    def __init__(self, ttype: str, content: str | None = "", meta: Any = None, pos: int = 0) -> None:
        self.type = ttype
        self.content = content
        self.meta = meta
        self.markup = ""
        self.pos = pos


class _InlineMd:
    """``state.md.inline.tokenize`` for the Obsidian rules' nested parses."""

    def __init__(self, scanner: _Scanner) -> None:
        self.inline = self
        self.scanner = scanner

    def tokenize(self, state: _State) -> None:
        self.scanner.tokenize(state)


class _State:
    """A stand-in for markdown-it's StateInline (src, pos, posMax, push)."""

    def __init__(self, src: str, md: _InlineMd) -> None:
        self.src = src
        self.pos = 0
        self.posMax = len(src)
        self.md = md
        self.tokens: list = []  # str for text, _Tok otherwise
        self.delims: list[_Tok] = []
        self.backticks: dict[int, int] = {}  # for markdown-it's own code span rule
        self.backticksScanned = False
        self._last_link_middle: int | None = None

    def append_pending(self, text: str) -> None:
        self.tokens.append(text)

    # ``state.pending += text`` (how rules add literal text) appends a text token
    @property
    def pending(self) -> str:
        return ""

    @pending.setter
    def pending(self, text: str) -> None:
        if text:
            self.tokens.append(text)

    def last_link_middle(self) -> int:
        """Where the last "](" of the source is (-1 if none): a "[" or "![" before it may
        start a link we do not reproduce. Found once (a "[" per character stays linear)."""
        if self._last_link_middle is None:
            self._last_link_middle = self.src.rfind("](")
        return self._last_link_middle

    def push(self, ttype: str, tag: str, nesting: int) -> _Tok:
        if nesting:
            raise Unsupported("nested inline token")
        tok = _Tok(ttype)
        self.tokens.append(tok)
        return tok


# Tokens of short inline contents already scanned (in this process). Notes written from
# one template repeat many lines (headings, questions, labels): their tokens depend on the
# content alone and are only read afterwards, so they are scanned once. Bounded: cleared
# when full.
_TOKENS_SEEN: dict[str, list] = {}
_TOKENS_SEEN_MAX = 4096
_TOKENS_SEEN_CHARS = 200


class _Delim:
    __slots__ = ("char", "close", "index", "length", "open")

    def __init__(self, char: str, length: int, can_open: bool, can_close: bool, index: int) -> None:
        self.char, self.length, self.close, self.index = char, length, can_close, index
        self.open: bool | None = can_open  # None once matched: the delimiter vanishes from the text


# where an inline rule may fire (the rest is plain text). The Obsidian rules' characters
# only where their rule could take them ("::", "%%", "==", "![", a "(" before "::" on its
# line, "#" after whitespace, "^" after a space or before "["): elsewhere each rule would
# decline and the character be text, so skipping them changes nothing but the time.
# Every branch starts with a literal character, so that the regex engine skips ahead to
# one of them (a branch starting with a class or a lookbehind makes it try each position).
_SPECIAL_RE = re.compile(
    r"\n|\[|\*|_|`|\\|<|&|\$|~"
    r"|:(?=:)|%(?=%)|=(?==)|!(?=\[)|\((?=[^\n()]*::)|#(?<!\S#)|\^(?:(?<![^ \t\n]\^)|(?=\[))"
)
_SIMPLE_LINK_RE = re.compile(r"\[([^\[\]\\`<>*_!&$~%=^(){}|\n#:]*)\]\(([^\s()<>\\&\x00-\x1f\x7f]+)\)")
_OBSIDIAN_CHARS = frozenset("[!%(:#^=")
_BAD_SCHEMES = frozenset(("vbscript", "javascript", "file", "data"))  # markdown-it's validateLink
_NEVER_VALID_SCHEMES = frozenset(("vbscript", "javascript", "file"))  # "data:image/..." may pass


class _Scanner:
    def __init__(self, note: Note, source: str) -> None:
        self.note = note
        self.source = source
        self.lines = source.split("\n")
        # markdown-it's line count: a last line without "\n" counts, the "" after one does not
        self.n_lines = len(self.lines) - 1 if self.lines[-1] == "" else len(self.lines)
        self.md = _InlineMd(self)
        # outputs (assigned to the note only when the whole note was scanned)
        self.headings: list[Heading] = []
        self.links: list[Link] = []
        self.callouts: list[Callout] = []
        self.tasks: list[Task] = []
        self.lists: list[ListItem] = []
        self.fields: list[InlineField] = []
        self.block_ids: list[BlockId] = []
        self.tags: list[str] = []
        self.highlights: list[str] = []
        self.blocks: list[tuple[int, str]] = []
        self.callout_texts: dict[int, str] = {}
        # walk state
        self.stack: list[tuple[str, int, Any]] = []
        self.open_callout: tuple[Callout, list[str]] | None = None
        self.paragraph_line = 1
        self.callout_marker: re.Match | None = None  # set until the callout's first paragraph is scanned

    # -- blocks
    def run(self) -> None:
        items = [(i + 1, self.lines[i]) for i in range(self.n_lines)]
        self.container(items, top=True)

    def container(self, items: list[tuple[int, str]], *, top: bool) -> None:
        """Blocks of a document (``top``) or of a blockquote; ``items`` are (file line, text)."""
        i, n = 0, len(items)
        previous: int | None = None  # first line of the previous sibling block
        while i < n:
            line, text = items[i]
            if not text or text.isspace():
                i += 1
                continue
            _check_line(text)
            c = text[0]
            if c == "#" and _is_interrupt(text):
                self.heading(line, text)
                previous = line
                i += 1
            elif c in "-*_" and _HR_RE.match(text):
                previous = line
                i += 1
            elif c == ">":
                if not top:
                    raise Unsupported("nested blockquote")
                i = self.blockquote(items, i)
                previous = line
            elif c in "-*+" and _BULLET_RE.match(text):
                i = self.bullet_list(items, i)
                previous = line
            elif c in "-*+" and (text.rstrip(" ") == c or text[1:2] == " "):
                raise Unsupported("empty list item or indented code in an item")
            else:
                i = self.paragraph(items, i, previous)
                previous = line

    def _paragraph_end(self, items: list[tuple[int, str]], i: int) -> int:
        """Index after the last line of the paragraph starting at ``items[i]``."""
        j = i + 1
        n = len(items)
        while j < n:
            text = items[j][1]
            if not text or text.isspace():
                break
            if _UNDERLINE_RE.match(text):
                raise Unsupported("setext heading or empty item")
            if _is_interrupt(text):
                break
            _check_line(text)
            if "|" in items[j - 1][1] and _TABLE_ROW_RE.match(text):
                raise Unsupported("table")
            j += 1
        return j

    def paragraph(self, items: list[tuple[int, str]], i: int, previous: int | None) -> int:
        end = self._paragraph_end(items, i)
        line = items[i][0]
        content = (items[i][1] if end == i + 1 else "\n".join([text for _, text in items[i:end]])).strip()
        self.paragraph_line = line
        self.inline(content, line, previous_sibling=previous, first_sibling=previous is None)
        return end

    def heading(self, line: int, text: str) -> None:
        m = _HEADING_RE.match(text)
        if m is None:  # (the caller saw a heading; markdown-it decides otherwise)
            raise Unsupported("heading")
        level = len(m.group(1))
        content = (m.group(2) or "").strip()
        if content.endswith("#") or "\n" in content:
            raise Unsupported("closing sequence of a heading")
        parts = self.inline(content, line, heading=True)
        self.headings.append(Heading(text="".join(parts).strip(), level=level, line=line))

    def bullet_list(self, items: list[tuple[int, str]], i: int) -> int:
        marker = items[i][1][0]
        list_line = items[i][0]
        self.stack.append(("list", list_line, None))
        highlight = False
        if len(self.stack) >= 2 and self.stack[-2][0] == "blockquote":
            callout = self.stack[-2][2]
            highlight = callout is not None and _is_highlights(callout.title)
        n = len(items)
        while True:
            line, text = items[i]
            m = _BULLET_RE.match(text)
            if m is None:  # (the caller saw a bullet; markdown-it decides otherwise)
                raise Unsupported("list item")
            rest = text[m.end() :]
            _check_line(rest)
            if rest[0] in "#>-*+_" and (
                _is_interrupt(rest) or rest.rstrip(" ") in ("-", "*", "+") or rest[1:2] == " " and rest[0] in "-*+"
            ):
                raise Unsupported("block inside a list item")
            end = self._paragraph_end(items, i)
            content = (rest if end == i + 1 else "\n".join([rest] + [t for _, t in items[i + 1 : end]])).strip()
            status = None
            if content.startswith("["):
                tm = TASK_RE.match(content)
                if tm:
                    status = tm.group(1)
                    content = content[tm.end() :]
            item = ListItem(text="", line=line, task=status is not None)
            self.lists.append(item)
            task = None
            if status is not None:
                task = Task(text="", status=status, completed=status in "xX", line=line)
                self.tasks.append(task)
            self.stack.append(("item", line, None))
            self.paragraph_line = line
            self.inline(content, line, previous_sibling=None, first_sibling=True)
            readable = self.blocks[-1][1]
            item.text = readable
            if task is not None:
                task.text = readable
            if highlight and readable:
                self.highlights.append(readable)
            self.stack.pop()
            # the list goes on at the next item with the same marker, blank lines allowed
            j = end
            while j < n and (not items[j][1] or items[j][1].isspace()):
                j += 1
            if j < n and items[j][1][:1] == marker and _BULLET_RE.match(items[j][1]):
                i = j
                continue
            if j < n and items[j][1][:1] == marker and items[j][1].rstrip(" ") == marker:
                raise Unsupported("empty list item")
            self.stack.pop()
            return end

    def blockquote(self, items: list[tuple[int, str]], i: int) -> int:
        """A blockquote at the top level: its lines (markers removed, lazy lines kept), then
        its blocks as a document of their own."""
        start_line = items[i][0]
        inner: list[tuple[int, str]] = []
        n = len(items)
        j = i
        last_empty = False
        in_paragraph = False
        while j < n:
            line, text = items[j]
            if not text or text.isspace():
                break
            if text[0] == ">":
                rest = text[1:]
                if rest[:1] == " ":
                    rest = rest[1:]
                if rest and not rest.isspace() and rest[0] == " ":
                    raise Unsupported("indented blockquote content")
                inner.append((line, rest))
                last_empty = not rest or rest.isspace()
                # a lazy line continues a paragraph (of the quote or of a list item in it)
                in_paragraph = not last_empty and not (
                    rest[0] in "#-*_" and (_HEADING_RE.match(rest) or _HR_RE.match(rest))
                )
                j += 1
                continue
            if last_empty or _is_interrupt(text):
                break
            _check_line(text)
            if not in_paragraph:
                raise Unsupported("lazy line after a non-paragraph block in a quote")
            if _UNDERLINE_RE.match(text):
                raise Unsupported("lazy underline")
            inner.append((line, text))
            j += 1
        end_line = items[j - 1][0]
        callout = None
        k = next((k for k, (_, t) in enumerate(inner) if t and not t.isspace()), None)
        if k is not None and inner[k][1].startswith("[!"):
            m = MARKER_RE.match(self._first_paragraph(inner, k))
            if m and m.group(1).strip():
                callout = self.callout(start_line, end_line, m, inner)
        self.stack.append(("blockquote", start_line, callout))
        if callout is not None:
            self.open_callout = (callout, [])
        self.container(inner, top=False)
        self.stack.pop()
        if callout is not None:
            if self.open_callout is None:  # (the callout's text was lost: markdown-it parses it)
                raise Unsupported("callout")
            _, parts = self.open_callout
            self.callout_texts[id(callout)] = "\n".join(p for p in parts if p).strip()
            self.open_callout = None
        return j

    def _first_paragraph(self, inner: list[tuple[int, str]], k: int) -> str:
        end = self._paragraph_end(inner, k)
        return "\n".join(t for _, t in inner[k:end]).strip()

    def callout(self, start: int, end: int, m: re.Match, inner: list[tuple[int, str]]) -> Callout:
        raw_type = m.group(1).strip()
        # the quote's lines after the marker line without their "> " (lazy lines as they
        # are): what kb.parse's _quote_marker(1) leaves of them
        body = [text for _, text in inner[1:]]
        callout = Callout(
            type=canonical_type(raw_type),
            raw_type=raw_type,
            title=TRAILING_BLOCK_ID_RE.sub("", m.group(3).strip()),
            fold=m.group(2) or None,
            line=start,
            end_line=end,
            depth=1,
            content="\n".join(body).strip("\n"),
        )
        self.callouts.append(callout)
        self.callout_marker = m
        return callout

    # -- inline
    def inline(
        self,
        content: str,
        line: int,
        *,
        heading: bool = False,
        previous_sibling: int | None = None,
        first_sibling: bool = False,
    ) -> list[str]:
        """Scan one inline token's content; record its facts and its readable text."""
        if self.callout_marker is not None:
            # the callout's first paragraph: markdown-it sees the title and the lines after it
            m = MARKER_RE.match(content)
            if m is None:  # (the marker was seen on this paragraph's first line)
                raise Unsupported("callout marker")
            content = m.group(3).strip() + content[m.end() :]
            self.callout_marker = None
        if _SPECIAL_RE.search(content) is None:  # plain text: one text token, no line break
            parts = [content]
            readable = content.strip()
            self.blocks.append((line, readable))
            if self.open_callout is not None:
                self.open_callout[1].append(readable)
            return parts
        tokens = _TOKENS_SEEN.get(content)
        if tokens is None:
            state = _State(content, self.md)
            self.tokenize(state)
            tokens = state.tokens
            if state.delims:
                _match_emphasis(state.delims)
            if len(content) <= _TOKENS_SEEN_CHARS:
                if len(_TOKENS_SEEN) >= _TOKENS_SEEN_MAX:
                    _TOKENS_SEEN.clear()
                _TOKENS_SEEN[content] = tokens
        parts = []
        open_link: tuple[Link, int] | None = None
        newlines: list[int] | None = None

        def lines_before(pos: int) -> int:
            nonlocal newlines
            if newlines is None:  # found once per paragraph: linear however many tokens
                newlines = []
                at = content.find("\n")
                while at >= 0:
                    newlines.append(at)
                    at = content.find("\n", at + 1)
            return bisect_left(newlines, pos)

        for tok in tokens:
            if tok.__class__ is str:  # text
                parts.append(tok)
                continue
            ttype = tok.type
            if ttype == "delim":
                parts.append("" if tok.meta.open is None else tok.content)
            elif ttype == "wikilink":
                self.links.append(wikilink(tok.meta, line + lines_before(tok.meta["pos"])))
                parts.append(tok.content)
            elif ttype == "tag":
                self.tags.append(tok.meta["tag"])
                parts.append(tok.content)
            elif ttype == "code_inline":
                parts.append(tok.content)
            elif ttype == "link_open":
                link = markdown_link(tok.content, line + lines_before(tok.pos))
                if link is not None:
                    self.links.append(link)
                    open_link = (link, len(parts))
            elif ttype == "link_close":
                if open_link is not None:
                    label = "".join(parts[open_link[1] :]).strip()
                    open_link[0].display = label or None
                    open_link = None
            elif ttype == "inline_field":
                meta = tok.meta
                self.fields.append(
                    InlineField(
                        key=meta["key"], value=meta["value"], line=line + lines_before(meta["pos"]), style=meta["style"]
                    )
                )
            elif ttype == "block_id":
                if heading:
                    raise Unsupported("block id in a heading")
                self.block_id(tok.meta, content, line + lines_before(tok.meta["pos"]), previous_sibling, first_sibling)
            # "comment": hidden text, nothing to record
        text = "".join(parts)
        readable = (WS_RE.sub("\n", text) if "\n" in text else text).strip()
        self.blocks.append((line, readable))
        if self.open_callout is not None:
            self.open_callout[1].append(readable)
        return parts

    def block_id(self, meta: dict, content: str, line: int, previous_sibling: int | None, first_sibling: bool) -> None:
        block_line = self.paragraph_line
        if meta["alone"]:
            if content.strip() == "^" + meta["id"]:  # a paragraph of its own: names the block before
                block_line = (previous_sibling if not first_sibling else None) or line
            else:
                block_line = self._container_line()
        self.block_ids.append(BlockId(id=meta["id"], line=line, block_line=block_line))

    def _container_line(self) -> int:
        stack = self.stack
        if not stack:
            return self.paragraph_line
        kind, line, _ = stack[-1]
        if kind == "blockquote":
            return line
        if kind == "item":
            j = len(stack) - 1
            while j > 0 and stack[j - 1][0] in ("list", "item"):
                j -= 1
            return stack[j][1]
        return self.paragraph_line

    def tokenize(self, state: _State) -> None:
        """markdown-it's inline tokenize from ``state.pos`` to ``state.posMax``."""
        src = state.src
        tokens = state.tokens
        end = state.posMax
        while state.pos < end:
            pos = state.pos
            m = _SPECIAL_RE.search(src, pos, end)
            if m is None:
                tokens.append(src[pos:end])
                state.pos = end
                break
            j = m.start()
            if j > pos:
                tokens.append(src[pos:j])
            state.pos = j
            ch = src[j]
            if ch == "\n":
                tokens.append("\n")  # a soft or hard break: a line break in the readable text
                state.pos = j + 1
                continue
            if ch == "*" or ch == "_":
                self.delimiter_run(state, j, ch)
                continue
            if ch == "`":
                backtick(state, False)  # type: ignore[arg-type]  # _State stands in for StateInline (duck-typed)
                continue
            if ch in "\\<$":
                raise Unsupported(f"inline {ch!r}")
            if ch == "=" and src.startswith("==", j):
                raise Unsupported("mark")
            if ch == "~":
                if src.startswith("~~", j):
                    raise Unsupported("strikethrough")
                tokens.append("~")
                state.pos = j + 1
                continue
            if ch == "&":
                nxt = src[j + 1 : j + 2]
                if nxt == "#" or nxt.isalnum():
                    raise Unsupported("entity")
                tokens.append("&")
                state.pos = j + 1
                continue
            if ch in _OBSIDIAN_CHARS and obsidian_inline(state, False):  # type: ignore[arg-type]  # as backtick
                continue
            state.pos = j
            if ch == "[":
                if src.startswith("[^", j):
                    raise Unsupported("footnote")
                if self.markdown_link(state, j):
                    continue
            elif ch == "!" and src.startswith("![", j) and state.last_link_middle() >= j:
                raise Unsupported("image")
            elif ch == "^" and src.startswith("^[", j):
                raise Unsupported("inline footnote")
            tokens.append(ch)
            state.pos = j + 1

    def markdown_link(self, state: _State, j: int) -> bool:
        src, end = state.src, state.posMax
        m = _SIMPLE_LINK_RE.match(src, j, end)
        if m is None:
            if state.last_link_middle() >= j:
                raise Unsupported("Markdown link")
            return False
        dest = m.group(2)
        scheme = SCHEME_RE.match(dest)
        scheme_name = scheme.group()[:-1].lower() if scheme is not None else None
        if scheme_name in _NEVER_VALID_SCHEMES:
            return False  # what validateLink says of it after normalizeLink (which keeps the scheme)
        if scheme_name is not None and scheme_name not in _BAD_SCHEMES:
            # a URL: markdown-it keeps its scheme through normalizeLink and accepts it, and
            # kb.parse records no link for it; only its label counts (saves mdurl's parse)
            href = None
        else:
            href = normalizeLink(dest)
            if not validateLink(href):
                return False  # markdown-it: not a link; "[" is text
        state.tokens.append(_Tok("link_open", href, pos=j))
        if m.group(1):
            state.tokens.append(m.group(1))
        state.tokens.append(_Tok("link_close"))
        state.pos = m.end()
        return True

    def delimiter_run(self, state: _State, start: int, marker: str) -> None:
        """markdown-it's emphasis rule: a run of ``*`` or ``_`` and whether it can open or close."""
        src, maximum = state.src, state.posMax
        pos = start + 1
        while pos < maximum and src[pos] == marker:
            pos += 1
        classes = _CHAR_CLASS
        before = src[start - 1] if start > 0 else " "
        after = src[pos] if pos < maximum else " "
        last_ws, last_punct = classes.get(before) or _char_class(before)
        next_ws, next_punct = classes.get(after) or _char_class(after)
        left = not (next_ws or (next_punct and not (last_ws or last_punct)))
        right = not (last_ws or (last_punct and not (next_ws or next_punct)))
        split = marker == "*"
        can_open = left and (split or not right or last_punct)
        can_close = right and (split or not left or next_punct)
        tok = _Tok("delim", src[start:pos])
        tok.meta = _Delim(marker, pos - start, can_open, can_close, len(state.tokens))
        state.tokens.append(tok)
        state.delims.append(tok)
        state.pos = pos


def _match_emphasis(delims: list[_Tok]) -> None:
    """Pair delimiter runs the way markdown-it does, for the flat case only: each run that
    can open (and not close) is followed, among the runs that can open or close, by one that
    can close (and not open), of the same character and length (1 or 2). A matched run
    vanishes from the text (``meta.open = None``); unmatched ones stay as text."""
    pending: _Delim | None = None
    for tok in delims:
        d = tok.meta
        if not d.open and not d.close:
            continue
        if d.open and d.close:
            raise Unsupported("delimiter run that can open and close")
        if d.open:
            if pending is not None:
                raise Unsupported("nested emphasis")
            pending = d
            continue
        if pending is None:
            continue  # a closer with nothing to close: text
        if pending.char != d.char or pending.length != d.length or d.length > 2:
            raise Unsupported("unbalanced emphasis")
        pending.open = None
        d.open = None
        pending = None
    # an opener that nothing closes stays text


_CHAR_CLASS: dict[str, tuple[bool, bool]] = {}


def _char_class(ch: str) -> tuple[bool, bool]:
    """(whitespace, punctuation) as markdown-it's emphasis rule sees ``ch``."""
    cls = _CHAR_CLASS.get(ch)
    if cls is None:
        cls = _CHAR_CLASS[ch] = (isWhiteSpace(ord(ch)), isMdAsciiPunct(ord(ch)) or isPunctChar(ch))
    return cls


def _is_highlights(title: str) -> bool:
    return bool(HIGHLIGHTS_RE.fullmatch(strip_emphasis(title)))


class ScanResult:
    """What kb.parse's later passes read from the walk."""

    def __init__(self, blocks: list[tuple[int, str]], callout_texts: dict[int, str]) -> None:
        self.blocks = blocks
        self.callout_texts = callout_texts


def scan_body(note: Note, source: str) -> ScanResult | None:
    """Fill ``note`` from ``source`` (the body, frontmatter blanked) as the token walk would,
    or return None (``note`` untouched) if the note needs markdown-it."""
    if len(source) > MAX_SCAN_CHARS or "\t" in source:
        return None
    scanner = _Scanner(note, source)
    try:
        scanner.run()
    except Unsupported:
        return None
    except Exception:  # a scanner bug must not cost the note: markdown-it parses it
        return None
    finally:
        # scanner <-> its inline stand-in is a reference cycle; parse workers run with the
        # cyclic collector paused, so break it here or every note's lines stay in memory
        del scanner.md.scanner
    note.headings = scanner.headings
    note.links = scanner.links
    note.callouts = scanner.callouts
    note.tasks = scanner.tasks
    note.lists = scanner.lists
    note.inline_fields = scanner.fields
    note.block_ids = scanner.block_ids
    note.highlights = scanner.highlights
    note.tags = list(note.tags) + scanner.tags
    note.body_text = "\n".join(text for _, text in scanner.blocks if text)
    return ScanResult(scanner.blocks, scanner.callout_texts)


# --- frontmatter -------------------------------------------------------------------------
# The common frontmatter is a flat mapping of plain or quoted scalars and lists of them.
# PyYAML builds it in Python code (about a tenth of a note's parse); for that shape the
# values are read here, typed by PyYAML's own implicit resolver, and anything else
# (nesting, flow collections, anchors, escapes, comments, block scalars, any scalar that
# would not be a string or a decimal integer) returns None for PyYAML to load.
_FM_KEY_RE = re.compile(r"([A-Za-z0-9_](?:[A-Za-z0-9_ .\-/]*[A-Za-z0-9_.\-/])?):(?: +(.*?))? *$")
_FM_ITEM_RE = re.compile(r"( {0,4})- +(.*?) *$")
_FM_DECIMAL_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FM_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_resolver: tuple[Any, Any] | None = None  # PyYAML's implicit resolver and its ScalarNode class
# The first characters for which PyYAML's implicit resolvers try a type (its
# ``yaml_implicit_resolvers`` keys: bool, int, float, null, timestamp, merge, value); a
# plain scalar starting with any other character resolves to a string without trying one.
_IMPLICIT_FIRST = frozenset("yYnNtTfFoO-+0123456789.~<=")


def _fm_scalar(text: str) -> Any:
    """The value of one scalar as PyYAML's safe loader gives it; Unsupported if unsure."""
    if not text:
        raise Unsupported("empty scalar")
    c = text[0]
    if c == '"':
        if len(text) >= 2 and text[-1] == '"' and '"' not in text[1:-1] and "\\" not in text:
            return text[1:-1]
        raise Unsupported("double-quoted scalar")
    if c == "'":
        if len(text) >= 2 and text[-1] == "'" and "'" not in text[1:-1]:
            return text[1:-1]
        raise Unsupported("single-quoted scalar")
    if c in _FM_INDICATORS or ": " in text or " #" in text or text[-1] == ":":
        raise Unsupported("plain scalar with an indicator")
    if c not in _IMPLICIT_FIRST:
        return text  # no implicit type (bool, number, null, date...) starts with it: a string
    global _resolver
    if _resolver is None:
        import yaml

        _resolver = (yaml.resolver.Resolver(), yaml.ScalarNode)
    resolver, scalar_node = _resolver
    tag = resolver.resolve(scalar_node, text, (True, False))
    if tag == _STR_TAG:
        return text
    if tag == _INT_TAG and _FM_DECIMAL_RE.fullmatch(text):
        return int(text)
    raise Unsupported("typed scalar")


def _fm_non_printable(raw: str) -> bool:
    """Characters PyYAML's reader refuses (it reports an error for them)."""
    if raw.isascii() and raw.isprintable():
        return False
    import yaml

    return yaml.reader.Reader.NON_PRINTABLE.search(raw.replace("\n", " ")) is not None


def scan_frontmatter(raw: str) -> dict[str, Any] | None:
    """``load_frontmatter(raw)``'s properties for a flat block of scalars and lists of
    scalars, or None when PyYAML must load it (see above)."""
    if len(raw) > 100_000 or "\t" in raw or _fm_non_printable(raw):
        return None
    props: dict[str, Any] = {}
    lines = raw.split("\n")
    i, n = 0, len(lines)
    try:
        while i < n:
            line = lines[i]
            i += 1
            if not line or line.isspace():
                continue
            m = _FM_KEY_RE.match(line)
            if m is None:
                return None
            key = m.group(1)
            if key in props or _fm_scalar(key) != key:
                return None
            if m.group(2):
                props[key] = _fm_scalar(m.group(2))
                continue
            items: list[Any] = []
            indent = None
            while i < n:
                item = _FM_ITEM_RE.match(lines[i])
                if item is None:
                    break
                if indent is None:
                    indent = item.group(1)
                elif item.group(1) != indent:
                    return None
                items.append(_fm_scalar(item.group(2)))
                i += 1
            props[key] = items if items else None
            if i < n and lines[i][:1] == " " and not lines[i].isspace():
                return None  # a nested block
    except Unsupported:
        return None
    return props
