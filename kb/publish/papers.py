"""What is a paper, what it cites and who mentions it.

A note is a paper when its frontmatter or tags say so: the ``#paper`` tag of the seed
template, a citekey (frontmatter key or a citekey-shaped alias), a DOI, or a rule of the
vault's own in ``.paperkb/papers.yaml``::

    tags: [paper, article]          # any of these tags makes a paper
    citekey: true                   # a citekey makes a paper
    doi: true                       # a DOI makes a paper
    exclude_tags: [journal, moc]    # never a paper, whatever else it has
    types: [article, preprint]      # frontmatter `type:` values that make a paper

Journal, reading-list and index notes carry none of these, so they are not papers.
Files that paperkb exported itself carry ``paperkb-export`` in their frontmatter and are
never read back as notes at all.

A paper's citations are its links that the vault's citation rule (``kb.citing``, the
``citations:`` part of the same file) marks as citations: by default, the links under a
heading starting with References, Bibliography, Related, Cites, Citations or Works Cited.
They go to another note or to a work without a note (a ghost). Every other link, and
every link from a note that is not a paper, is a mention, shown apart. The graph and
``paperkb links`` read the same mark.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kb.model import Note, tag_key

EXPORT_MARKER = "paperkb-export"

# Tags that name a note kind that is never a paper, whatever else it carries.
_DEFAULT_EXCLUDE = ("journal", "daily", "weekly", "reading-list", "readinglist", "moc", "index")


@dataclass(frozen=True)
class PaperRule:
    tags: tuple[str, ...] = ("paper",)
    citekey: bool = True
    doi: bool = True
    exclude_tags: tuple[str, ...] = _DEFAULT_EXCLUDE
    types: tuple[str, ...] = ()

    def matches(self, note: Note) -> bool:
        if is_export(note):
            return False
        keys = note.tag_keys
        if not keys.isdisjoint(self._exclude_keys):
            return False
        if not keys.isdisjoint(self._tag_keys):
            return True
        if self.citekey and note.citekey:
            return True
        if self.doi and note.doi:
            return True
        kind = note.frontmatter.get("type")
        return bool(self.types) and isinstance(kind, str) and kind.strip().casefold() in self._type_keys

    # the rule's names, normalised once (matches runs for every note of a vault)
    @functools.cached_property
    def _exclude_keys(self) -> frozenset[str]:
        return frozenset(tag_key(t) for t in self.exclude_tags)

    @functools.cached_property
    def _tag_keys(self) -> frozenset[str]:
        return frozenset(tag_key(t) for t in self.tags)

    @functools.cached_property
    def _type_keys(self) -> frozenset[str]:
        return frozenset(t.casefold() for t in self.types)


DEFAULT_RULE = PaperRule()
RULE_FILE = "papers.yaml"
RULE_MAX_BYTES = 100_000


def load_rule(vault_root: Path | str) -> PaperRule:
    """The vault's rule from ``.paperkb/papers.yaml`` (loaded safely), else the default.
    A broken file is an error naming it, not a silent default."""
    from kb.errors import PaperkbError
    from kb.frontmatter import load_frontmatter
    from paperkb.files import read_regular

    path = Path(vault_root) / ".paperkb" / RULE_FILE
    if not path.exists():  # (a FIFO or a device there is an error below, not the default)
        return DEFAULT_RULE
    # configuration YAML gets note frontmatter's limits: size, aliases, depth (issue 23)
    text = read_regular(path, RULE_MAX_BYTES).decode("utf-8", "replace")
    if not text.strip():
        return DEFAULT_RULE
    data, _, issues = load_frontmatter(text, first_line=1)
    errors = [(line, message) for line, severity, message in issues if severity == "error"]
    if errors:
        line, message = errors[0]
        message = message.replace("invalid YAML frontmatter", "not valid YAML").replace("frontmatter too", "too")
        message = message.replace("frontmatter is a", "expected a mapping of rule keys, not a").replace(
            ", not a set of properties", ""
        )
        raise PaperkbError(f"{path}:{line}: {message}")

    def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = data.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise PaperkbError(f"{path}: '{key}' should be a list")
        return tuple(str(v).lstrip("#") for v in value)

    return PaperRule(
        tags=names("tags", DEFAULT_RULE.tags),
        citekey=bool(data.get("citekey", True)),
        doi=bool(data.get("doi", True)),
        exclude_tags=names("exclude_tags", DEFAULT_RULE.exclude_tags),
        types=names("types", ()),
    )


def is_export(note: Note) -> bool:
    """Whether paperkb wrote this file itself (its frontmatter carries the marker)."""
    return EXPORT_MARKER in note.frontmatter


def is_paper(note: Note, rule: PaperRule = DEFAULT_RULE) -> bool:
    return rule.matches(note)


@dataclass
class Cite:
    """One work a paper cites: a paper of the vault (``path``) or a ghost (``key`` only)."""

    key: str
    label: str
    path: str | None = None


@dataclass
class Neighbours:
    cites: list[Cite] = field(default_factory=list)
    cited_by: list[str] = field(default_factory=list)  # paths of papers
    mentioned_by: list[str] = field(default_factory=list)  # paths of notes linking here, not as a citation
    mentions: list[Cite] = field(default_factory=list)  # notes this one links to, not as a citation


class Citations:
    """Who cites whom among ``notes`` (their links resolved, as ``Vault.notes()`` gives)."""

    def __init__(self, notes: Iterable[Note], rule: PaperRule = DEFAULT_RULE) -> None:
        from kb.resolve import ghost_key
        from kb.syntax import is_attachment

        self.notes = {n.path: n for n in notes if not is_export(n)}
        self.papers = {p for p, n in self.notes.items() if rule.matches(n)}
        self._by: dict[str, Neighbours] = {p: Neighbours() for p in self.notes}
        self._ghosts: dict[str, list[str]] | None = None
        for path, note in self.notes.items():
            paper = path in self.papers
            seen: set[tuple[bool, str]] = set()
            for link in note.links:
                target = link.resolved
                if target == path:
                    continue
                cites = paper and link.is_citation
                if target is not None:
                    if target not in self.notes or (cites, target) in seen:
                        continue
                    seen.add((cites, target))
                    if cites:
                        self._by[path].cites.append(Cite(target, self.notes[target].title or target, target))
                        self._by[target].cited_by.append(path)
                    else:
                        self._by[target].mentioned_by.append(path)
                        self._by[path].mentions.append(Cite(target, self.notes[target].title or target, target))
                elif cites and link.kind != "markdown" and link.target and not is_attachment(link.target):
                    key = ghost_key(link)
                    if key and (True, "ghost:" + key) not in seen:
                        seen.add((True, "ghost:" + key))
                        self._by[path].cites.append(Cite(key, key, None))
            # a note that one paper both cites and mentions is listed once, as cited
            cited = {c.path for c in self._by[path].cites if c.path is not None}
            if cited and self._by[path].mentions:
                self._by[path].mentions = [m for m in self._by[path].mentions if m.path not in cited]
                for target in cited:
                    if path in self._by[target].mentioned_by:
                        self._by[target].mentioned_by.remove(path)

    def of(self, path: str) -> Neighbours:
        return self._by.get(path) or Neighbours()

    def is_paper(self, path: str) -> bool:
        return path in self.papers

    def graph(self, paths: Iterable[str] | None = None, depth: int = 1) -> CiteGraph:
        """Papers (``kind="note"``) and ghosts (``kind="ghost"``) with their ``cites``
        edges; around ``paths``, only what is within ``depth`` links either way (found by
        walking the citation lists, so a neighbourhood costs what it holds, not the vault)."""
        if paths is None:
            keep = None
        else:
            keep = {p for p in paths if p in self.papers}
            frontier = set(keep)
            for _ in range(depth):
                nxt: set[str] = set()
                for n in frontier:
                    if n.startswith("ghost:"):
                        nxt.update(self._ghost_citers().get(n, ()))
                    elif n in self._by:
                        nxt.update(c.path or "ghost:" + c.key for c in self._by[n].cites)
                        nxt.update(p for p in self._by[n].cited_by if p in self.papers)
                frontier = nxt - keep
                keep |= frontier
        g = CiteGraph()
        papers = sorted(self.papers if keep is None else (keep & self.papers))
        for p in papers:
            note = self.notes[p]
            g.add_node(p, kind="note", label=note.title or note.name, year=note.year)
        for p in papers:
            for c in self._by[p].cites:
                node = c.path or "ghost:" + c.key
                if keep is not None and node not in keep:
                    continue
                if node not in g:
                    g.add_node(node, kind="ghost", label=c.label)
                g.add_edge(p, node)
        return g

    def _ghost_citers(self) -> dict[str, list[str]]:
        if self._ghosts is None:
            self._ghosts = {}
            for p in self.papers:
                for c in self._by[p].cites:
                    if c.path is None:
                        self._ghosts.setdefault("ghost:" + c.key, []).append(p)
        return self._ghosts


class _NodeView:
    """``g.nodes`` as networkx spells it: iterate, ``g.nodes[n]``, ``g.nodes(data="kind")``."""

    def __init__(self, data: dict[str, dict]) -> None:
        self._data = data

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, n: object) -> bool:
        return n in self._data

    def __getitem__(self, n: str) -> dict:
        return self._data[n]

    def __call__(self, data: str | bool = False):
        if data is True:
            return list(self._data.items())
        if data:
            return [(n, d.get(data)) for n, d in self._data.items()]
        return list(self._data)


class CiteGraph:
    """A small directed graph with the part of networkx's API the pictures use; building
    a picture of one paper's neighbourhood then needs neither networkx nor numpy."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict] = {}
        self._out: dict[str, dict[str, None]] = {}
        self._in: dict[str, dict[str, None]] = {}
        self.nodes = _NodeView(self._nodes)

    def add_node(self, n: str, **attrs) -> None:
        self._nodes.setdefault(n, {}).update(attrs)
        self._out.setdefault(n, {})
        self._in.setdefault(n, {})

    def add_edge(self, u: str, v: str, **_attrs) -> None:
        for n in (u, v):
            if n not in self._nodes:
                self.add_node(n)
        self._out[u][v] = None
        self._in[v][u] = None

    def __contains__(self, n: object) -> bool:
        return n in self._nodes

    def __iter__(self):
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def edges(self) -> list[tuple[str, str]]:
        return [(u, v) for u, vs in self._out.items() for v in vs]

    def number_of_edges(self) -> int:
        return sum(len(vs) for vs in self._out.values())

    def degree(self) -> dict[str, int]:
        return {n: len(self._out[n]) + len(self._in[n]) for n in self._nodes}

    def neighbours(self, n: str) -> list[str]:
        return [*self._out.get(n, ()), *self._in.get(n, ())]

    def subgraph(self, keep: Iterable[str]) -> CiteGraph:
        keep = set(keep)
        h = CiteGraph()
        for n in self._nodes:
            if n in keep:
                h.add_node(n, **self._nodes[n])
        for u, v in self.edges():
            if u in keep and v in keep:
                h.add_edge(u, v)
        return h
