"""Link resolution: which vault file each ``[[link]]`` of a note points to.

Follows Obsidian's rules as far as they are documented:

* a wikilink target is matched against file names case-insensitively (Unicode NFC),
  with or without ``.md``; ``folder/Note`` matches by path suffix;
* then against aliases and citekeys (paperkb's addition: notes are often linked by
  their Better BibTeX key); ``[[@key]]`` is the Zotero Integration convention for
  "the note whose citekey is key";
* a target that is no note (``image.png``, ``doc.pdf``) resolves to an attachment;
* several matches: Obsidian picks the shortest path (then alphabetical); we do the same
  and report the ambiguity;
* Markdown links are URL-decoded and relative to the note's folder, and can never
  point outside the vault.

Heading (``#A#B``) and block (``#^id``) anchors are checked against the target note.
Unresolved links are warnings, except in a references section, where an unresolved
target is a cited work without a note yet: a ghost node of the graph (info).
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import unquote

from kb.model import Heading, Link, Note, Problem

# Name kinds, in the order a wikilink tries them.
PATH, NAME, ALIAS, CITEKEY, TITLE = "path", "name", "alias", "citekey", "title"

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_HEADING_JUNK = re.compile(r"[#|^:%\[\]\\]+")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1 << 16)
def norm(text: str) -> str:
    """The comparison form of a name: NFC, case-folded, outer blanks trimmed."""
    return unicodedata.normalize("NFC", text).casefold().strip()


def strip_md(text: str) -> str:
    return text[:-3] if text.lower().endswith(".md") else text


@lru_cache(maxsize=1 << 16)
def link_key(target: str) -> str:
    """The key a link is filed under in the index: its last path segment, normalised,
    without ``.md`` or a leading ``@``. Any note whose name, alias or citekey has this
    key may change where the link resolves."""
    last = unquote(target).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return norm(strip_md(last)).lstrip("@")


def note_keys(path: str, aliases: Iterable[str], citekey: str | None) -> set[str]:
    """The link keys a note answers to (see ``link_key``)."""
    base = path.rsplit("/", 1)[-1]
    keys = {norm(strip_md(base)).lstrip("@")}
    keys.update(norm(a).lstrip("@") for a in aliases if isinstance(a, str) and a.strip())
    if citekey:
        keys.add(norm(citekey).lstrip("@"))
    keys.discard("")
    return keys


def name_rows(note: Note) -> list[tuple[str, str, str, str]]:
    """``(key, path, kind, label)`` rows by which a note can be found (stored in the index);
    ``label`` is the name as written, for messages."""
    base = note.path.rsplit("/", 1)[-1]
    rows = [(norm(strip_md(note.path)), note.path, PATH, note.path), (norm(note.name), note.path, NAME, strip_md(base))]
    if "paperkb-export" in note.frontmatter:  # paperkb's own export (kb.parse._inert): found by its path only
        return rows[:1]
    for alias in note.aliases:
        if isinstance(alias, str) and alias.strip():
            rows.append((norm(alias), note.path, ALIAS, alias.strip()))
    if note.citekey:
        rows.append((norm(note.citekey), note.path, CITEKEY, note.citekey))
    if note.title and note.title.strip():
        rows.append((norm(note.title), note.path, TITLE, note.title.strip()))
    return rows


def same_spelling(path: str, target: str) -> bool:
    """Whether ``target`` names ``path`` letter for letter (case included): the whole
    path or its last segments, with or without ``.md``."""
    t = strip_md(unicodedata.normalize("NFC", target.strip().replace("\\", "/")).strip("/").lstrip("@"))
    p = strip_md(unicodedata.normalize("NFC", path))
    return bool(t) and (p == t or p.endswith("/" + t))


def heading_key(text: str) -> str:
    """Headings compare loosely, as in Obsidian: case, blanks and link syntax ignored."""
    return _SPACES.sub(" ", _HEADING_JUNK.sub(" ", norm(text))).strip()


def path_order(path: str) -> tuple[int, int, str]:
    """Obsidian's preference among equal names: shortest path, then alphabetical."""
    return (path.count("/"), len(path), path.casefold())


def describe(link: Link) -> str:
    """A link as the note wrote it, for messages."""
    sub = ""
    if link.heading:
        sub = "#" + link.heading
    elif link.block:
        sub = "#^" + link.block
    elif subpath := getattr(link, "subpath", None):
        sub = "#" + subpath
    if link.kind == "markdown":
        return f"({link.target}{sub})"
    return f"{'!' if link.kind == 'embed' else ''}[[{link.target}{sub}]]"


@dataclass
class Anchors:
    """What a link may point at inside a note."""

    headings: list[Heading]
    blocks: set[str]


AnchorLookup = Callable[[str], "Anchors | None"]


class NameTable(Protocol):
    """``key -> paths`` for one kind of name (a dict, or a lazy view of the index)."""

    # the one call the resolver makes, positional as dict.get takes it
    def get(self, key: str, /) -> list[str] | None: ...


class Resolver:
    """Resolves links against a vault's names.

    Built from ``(key, path, kind[, label])`` rows (``name_rows`` of every note) and the list of
    attachment paths, so the index can build one from its tables without loading every
    note. ``anchors(path)`` returns the headings and block ids of a note, on demand.
    """

    def __init__(
        self,
        rows: Iterable[tuple],
        attachments: Iterable[str],
        anchors: AnchorLookup,
    ) -> None:
        built: dict[str, defaultdict[str, list[str]]] = {k: defaultdict(list) for k in (PATH, NAME, ALIAS, CITEKEY)}
        for key, path, kind, *_ in rows:
            table = built.get(kind)
            if table is not None:
                table[key].append(path)
        self._by: dict[str, NameTable] = dict(built)
        self._att_path: dict[str, str] = {}
        self._att_name: dict[str, list[str]] = defaultdict(list)
        for path in attachments:
            self._att_path[norm(path)] = path
            self._att_name[norm(path.rsplit("/", 1)[-1])].append(path)
        self._anchors = anchors
        # target -> (best, all candidates): a vault links to the same few thousand names
        # over and over, and the names do not change during a resolver's life
        self._memo: dict[str, tuple[str | None, list[str]]] = {}

    @classmethod
    def from_tables(cls, tables: dict[str, NameTable], attachments: Iterable[str], anchors: AnchorLookup) -> Resolver:
        """A resolver over ready-made name tables (``{kind: NameTable}`` for path, name,
        alias and citekey), e.g. lazy views of the index for a small update."""
        resolver = cls((), attachments, anchors)
        resolver._by.update(tables)
        return resolver

    @classmethod
    def from_notes(cls, notes: Iterable[Note], attachments: Iterable[str] = ()) -> Resolver:
        notes = list(notes)
        by_path = {n.path: n for n in notes}
        rows = [row for n in notes for row in name_rows(n)]

        def anchors(path: str) -> Anchors | None:
            n = by_path.get(path)
            return None if n is None else Anchors(n.headings, {norm(b.id) for b in n.block_ids})

        return cls(rows, attachments, anchors)

    # ---- lookups ---------------------------------------------------------------------
    def _pick(self, paths: list[str], target: str | None = None) -> tuple[str | None, list[str]]:
        if len(paths) == 1:  # the usual case: nothing to order
            return paths[0], list(paths)
        unique = sorted(set(paths), key=path_order)
        if target is not None and len(unique) > 1:
            # names compare without case, but a file spelled exactly as the link wins
            # (`[[Note]]` is Note.md, not note.md, where both exist)
            unique.sort(key=lambda p: not same_spelling(p, target))
        return (unique[0] if unique else None), unique

    def _names(self, kind: str, key: str) -> list[str]:
        """The paths that have ``key`` as a name of this kind (none: an empty list)."""
        return self._by[kind].get(key) or []

    def _by_name_or_path(self, target: str) -> list[str]:
        key = norm(strip_md(target.replace("\\", "/"))).strip("/")
        if not key:
            return []
        exact = self._by[PATH].get(key)
        if exact:
            return exact
        if "/" not in key:
            return self._names(NAME, key)
        base = key.rsplit("/", 1)[-1]
        suffix = "/" + key
        return [p for p in self._names(NAME, base) if norm(strip_md(p)).endswith(suffix)]

    def _attachment(self, target: str) -> list[str]:
        key = norm(target.replace("\\", "/")).strip("/")
        if key in self._att_path:
            return [self._att_path[key]]
        base = key.rsplit("/", 1)[-1]
        cands = self._att_name.get(base, [])
        if "/" in key:
            cands = [p for p in cands if norm(p).endswith("/" + key)]
        return cands

    def candidates(self, target: str) -> list[str]:
        """Every path a wikilink target could mean, best group first (not yet ordered)."""
        t = target.strip()
        if t.startswith("@"):
            key = norm(t[1:])
            return self._by_name_or_path(t) or self._names(CITEKEY, key) or self._names(ALIAS, key)
        key = norm(t)
        return self._by_name_or_path(t) or self._names(ALIAS, key) or self._names(CITEKEY, key) or self._attachment(t)

    # ---- resolution ------------------------------------------------------------------
    def resolve_link(self, link: Link, source: str) -> tuple[str | None, list[tuple[str, str]]]:
        """Where ``link`` (written in note ``source``) points, plus ``(severity, message)``
        pairs for anything wrong. Anchors are not checked here."""
        issues: list[tuple[str, str]] = []
        target = link.target or ""
        if not target.strip():
            return source, issues  # [[#Heading]]: this note
        if link.kind == "markdown":
            return self._resolve_markdown(link, source, issues)
        hit = self._memo.get(target)
        if hit is None:
            hit = self._memo[target] = self._pick(self.candidates(target), target)
        best, all_ = hit
        if len(all_) > 1:
            issues.append(
                (
                    "warning",
                    f"ambiguous link {describe(link)}: {len(all_)} files match "
                    f"({', '.join(all_[:4])}{', ...' if len(all_) > 4 else ''}); using {best}",
                )
            )
        return best, issues

    def _resolve_markdown(self, link: Link, source: str, issues: list) -> tuple[str | None, list]:
        raw = link.target.strip()
        if raw.startswith("<") and raw.endswith(">"):
            raw = raw[1:-1]
        if _URL_SCHEME.match(raw):
            return None, issues  # an external URL is no vault link
        decoded = unquote(raw).replace("\\", "/")
        folder = posixpath.dirname(source)
        if decoded.startswith("/"):
            joined = decoded.lstrip("/")
        else:
            joined = posixpath.join(folder, decoded) if folder else decoded
        path = posixpath.normpath(joined)
        if path == ".." or path.startswith("../") or path.startswith("/"):
            issues.append(("warning", f"link {describe(link)} points outside the vault"))
            return None, issues
        for candidate in (path, path + ".md"):
            hit = self._exact(candidate)
            if hit:
                return hit, issues
        # Obsidian also finds Markdown links by name, like wikilinks.
        best, all_ = self._pick(self.candidates(decoded.rsplit("/", 1)[-1]), decoded)
        if len(all_) > 1:
            issues.append(("warning", f"ambiguous link {describe(link)}: {len(all_)} files match; using {best}"))
        return best, issues

    def _exact(self, path: str) -> str | None:
        key = norm(path)
        hits = self._by[PATH].get(norm(strip_md(path))) if key.endswith(".md") else None
        if hits:
            return self._pick(hits, path)[0]
        return self._att_path.get(key)

    def check_anchor(self, link: Link, resolved: str) -> tuple[str, str] | None:
        if not resolved.lower().endswith(".md") or not (link.heading or link.block):
            return None
        anchors = self._anchors(resolved)
        if anchors is None:
            return None
        if link.block:
            if norm(link.block) not in anchors.blocks:
                return ("warning", f"block ^{link.block} not found in {resolved} (link {describe(link)})")
            return None
        heading = link.heading or ""  # not empty: a link without a block has a heading here
        parts = [heading_key(p) for p in heading.split("#") if p.strip()]
        if not parts:
            return None
        keys = [(heading_key(h.text), h.level) for h in anchors.headings]
        last = [i for i, (k, _) in enumerate(keys) if k == parts[-1]]
        if not last:
            return (
                "warning",
                f"heading '{heading.split('#')[-1].strip()}' not found in {resolved} (link {describe(link)})",
            )
        if len(parts) > 1 and not any(_nested(keys, i, parts) for i in last):
            return (
                "info",
                f"heading path '{heading}' does not match the nesting of {resolved}; "
                f"linking to the heading '{heading.split('#')[-1].strip()}'",
            )
        return None

    def resolve(self, note: Note) -> list[Problem]:
        """Fill ``link.resolved`` for every link of ``note``; return the problems found."""
        return self.resolve_links(note.path, note.links)

    def resolve_links(self, path: str, links: list[Link]) -> list[Problem]:
        """Fill ``link.resolved`` for ``links`` written in note ``path``; return the problems."""
        problems: list[Problem] = []
        for link in links:
            resolved, issues = self.resolve_link(link, path)
            link.resolved = resolved
            for severity, message in issues:
                problems.append(Problem(path, link.line, severity, message))
            if resolved is None:
                if not issues:
                    if link.kind == "markdown" and _URL_SCHEME.match(link.target.strip().lstrip("<")):
                        continue
                    if link.is_citation:
                        problems.append(
                            Problem(
                                path, link.line, "info", f"cited work '{ghost_key(link)}' has no note yet (ghost node)"
                            )
                        )
                    else:
                        problems.append(Problem(path, link.line, "warning", f"unresolved link {describe(link)}"))
                continue
            anchor_issue = self.check_anchor(link, resolved)
            if anchor_issue:
                problems.append(Problem(path, link.line, *anchor_issue))
        return problems


def _nested(keys: list[tuple[str, int]], idx: int, parts: list[str]) -> bool:
    """Is heading ``idx`` under headings named ``parts[:-1]`` (outermost first)?"""
    want = len(parts) - 2
    level = keys[idx][1]
    for j in range(idx - 1, -1, -1):
        if want < 0:
            break
        key, lvl = keys[j]
        if lvl < level:
            if key == parts[want]:
                want -= 1
            level = lvl
    return want < 0


def ghost_key(link: Link) -> str:
    """The citekey a dangling citation stands for (``[[@key]]`` and ``[[key]]`` alike)."""
    return strip_md(link.target.strip()).lstrip("@").strip()


def resolve_all(notes: list[Note], attachments: Iterable[str] = ()) -> list[Problem]:
    """Resolve the links of every note in place; return the resolution problems."""
    resolver = Resolver.from_notes(notes, attachments)
    problems: list[Problem] = []
    for note in notes:
        problems.extend(resolver.resolve(note))
    return problems
