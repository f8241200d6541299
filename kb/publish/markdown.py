"""``paperkb export markdown OUT/``: the vault as plain CommonMark for any other tool.

Wikilinks become relative Markdown links (``[[Note|x]]`` -> ``[x](folder/Note.md)``),
links to works without a note become their text; ``![[image.png]]`` becomes an image
(the file is copied beside the notes) and ``![[Note]]`` is inlined, once; dataview
blocks are replaced by their rendered result; callouts stay blockquotes with their title
in bold; ``%%comments%%`` and ``^block-ids`` go. Code spans and fenced code are left
exactly as written. The frontmatter is kept (with a ``paperkb-export`` marker, so that
paperkb never reads the copy back as notes) or dropped.

The folder layout of the vault is kept. As with the site, OUT must be empty or an earlier
export (``.paperkb-markdown.json``), unless ``force``; it is never the vault or inside it,
and only files the manifest lists with unchanged bytes are replaced or removed
(:mod:`kb.publish.outdir`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from kb.errors import PaperkbError
from kb.publish.outdir import check_export_folder, in_the_way, owned_hashes, publishable, remove_owned, write_owned
from kb.publish.papers import EXPORT_MARKER
from paperkb.files import read_regular, replace_file

if TYPE_CHECKING:
    from kb.query.corpus import IndexCorpus

MANIFEST = ".paperkb-markdown.json"
ATTACHMENT_MAX_BYTES = 200_000_000  # a vault file larger than this is not copied
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_QUOTE_PREFIX = re.compile(r"((?:[ \t]*>[ \t]?)*)")
_CODE_SPAN = re.compile(r"(`+)(?:.*?[^`])?\1(?!`)")
_WIKILINK = re.compile(r"(!?)\[\[([^\[\]\n]{1,500}?)\]\]")
# the quote marks as ``(spaces, >)`` runs, one way only: ``(?:[ \t]*>[ \t]?)+`` split a run of
# "> > > ..." in exponentially many ways before failing (minutes on a line of 2,000 marks)
_CALLOUT = re.compile(r"^((?:[ \t]*>)+[ \t]?)\[!([^\]\n]+)\]([+-]?)[ \t]*(.*)$")
_COMMENT = re.compile(r"%%.*?%%", re.S)
_BLOCK_ID = re.compile(r"[ \t]+\^[A-Za-z0-9-]+[ \t]*$|^\^[A-Za-z0-9-]+[ \t]*$")


@dataclass
class MarkdownReport:
    out: Path
    notes: int = 0
    files: int = 0
    warnings: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # files in the way that paperkb did not write


def _rel(from_path: str, to_path: str) -> str:
    start = os.path.dirname(from_path) or "."
    return os.path.relpath(to_path, start).replace(os.sep, "/")


def _link_url(rel: str, heading: str | None = None) -> str:
    from kb.parse import slugify

    url = quote(rel, safe="/._-()")
    if heading:
        url += "#" + slugify(heading.split("#")[-1])
    return url


def _outside_code(line: str, fn) -> str:
    parts, last = [], 0
    for m in _CODE_SPAN.finditer(line):
        parts.append(fn(line[last : m.start()]))
        parts.append(m.group(0))
        last = m.end()
    parts.append(fn(line[last:]))
    return "".join(parts)


class _Converter:
    def __init__(self, vault, out: Path) -> None:
        from kb.publish.selection import light_notes

        self.vault = vault
        self.root = vault.root
        self.out = out
        self.light = {n.path: n for n in light_notes(vault) if EXPORT_MARKER not in n.frontmatter}
        self.by_name: dict[str, str] = {}
        for p in sorted(self.light, key=lambda p: (p.count("/"), p)):
            self.by_name.setdefault(p[:-3].casefold(), p)
            self.by_name.setdefault(p.rsplit("/", 1)[-1][:-3].casefold(), p)
        self.files = {p.casefold(): p for (p,) in vault.connect().execute("SELECT path FROM files")}
        for p in list(self.files.values()):
            self.files.setdefault(p.rsplit("/", 1)[-1].casefold(), p)
        self.copied: set[str] = set()
        self.owned: dict[str, str] = {}  # what the last export wrote (rel -> hash): all it may replace
        self.hashes: dict[str, str] = {}  # what this export wrote
        self.left: list[str] = []  # files in the way that paperkb did not write
        self.warnings: list[str] = []
        self._corpus: IndexCorpus | None = None  # built on the first note with a query

    def resolve(self, target: str, links: dict[str, str | None]) -> str | None:
        r = links.get(target)
        if r in self.light:
            return r
        key = target.strip()
        key = key[:-3] if key.lower().endswith(".md") else key
        return self.by_name.get(key.casefold()) or self.by_name.get(key.lstrip("@").casefold())

    def attachment(self, target: str, src: str) -> str | None:
        rel = self.files.get(target.strip().casefold()) or self.files.get(target.strip().rsplit("/", 1)[-1].casefold())
        if rel is None:
            return None
        real = (self.root / rel).resolve()
        if not real.is_relative_to(self.root) or not real.is_file():
            self.warnings.append(f"{src}: embed {target!r} refused: it leaves the vault")
            return None
        if not (publishable(rel, image=True) and publishable(real.relative_to(self.root).as_posix(), image=True)):
            self.warnings.append(f"{src}: embed {target!r} not copied: not a type of file an export publishes")
            return None
        if rel not in self.copied:
            try:
                digest = write_owned(self.out, rel, read_regular(real, ATTACHMENT_MAX_BYTES), self.owned)
            except PaperkbError as exc:
                self.warnings.append(f"{src}: embed {target!r} not copied: {exc}")
                return None
            if digest is None:
                self.warnings.append(in_the_way(rel, self.out))
                self.left.append(rel)
                return None
            self.hashes[rel] = digest
            self.copied.add(rel)
        return rel

    def body(self, path: str, depth: int = 0) -> tuple[str | None, str]:
        """(frontmatter text or None, converted body) of the note at ``path``."""
        from kb.frontmatter import split_frontmatter
        from kb.text import decode_note

        real = (self.root / path).resolve()
        if not real.is_relative_to(self.root):
            self.warnings.append(f"{path}: refused: it leaves the vault")
            return None, ""
        text = decode_note(real.read_bytes()).text
        raw, _, offset = split_frontmatter(text)
        body = text[offset:] if raw is not None else text
        if "```dataview" in body or "`=" in body:
            body = self._queries(path, body)
        links = {link.target: link.resolved for link in self.vault.note_at(path).links}
        return raw, self.convert(body, path, links, depth)

    def _queries(self, path: str, body: str) -> str:
        from kb.query import corpus_of
        from kb.query.render import render_blocks

        try:
            if self._corpus is None:
                self._corpus = corpus_of(self.vault, refresh=False)
            return render_blocks(body, self._corpus, self._corpus.page(path))
        except PaperkbError as exc:
            self.warnings.append(f"{path}: dataview blocks not rendered: {exc}")
            return body

    def convert(self, body: str, path: str, links: dict[str, str | None], depth: int) -> str:
        body = _COMMENT.sub("", body)
        out: list[str] = []
        fence: str | None = None
        inlined: list[str] = []  # notes embedded on the current line

        def wikilink(m: re.Match[str]) -> str:
            embed, inner = m.group(1) == "!", m.group(2)
            target, _, alias = inner.partition("|")
            target, _, heading = target.partition("#")
            target = target.strip()
            shown = alias.strip() or (target + (" > " + heading if heading else "")) or heading
            if embed:
                att = self.attachment(target, path) if target else None
                if att is not None:
                    alt = shown.replace("]", "") if not re.fullmatch(r"\d+(x\d+)?", alias.strip()) else target
                    return f"![{alt}]({_link_url(_rel(path, att))})"
                from kb.syntax import is_attachment

                if target and is_attachment(target):
                    self.warnings.append(f"{path}: embed {target!r} left out (not a file inside the vault)")
                    return shown
                note = self.resolve(target, links) if target else None
                if note is not None and depth == 0 and note != path:
                    inlined.append(note)
                    return f"\x00EMBED{len(inlined) - 1}\x00"
            if not target:
                return shown.lstrip("#^")
            note = self.resolve(target, links)
            if note is None:
                return shown
            return f"[{shown.replace(']', '')}]({_link_url(_rel(path, note), heading or None)})"

        for line in body.split("\n"):
            m = _FENCE.match(line)
            if fence is not None:
                out.append(line)
                if (
                    m
                    and m.group(1)[0] == fence[0]
                    and len(m.group(1)) >= len(fence)
                    and not line.strip()[len(m.group(1)) :]
                ):
                    fence = None
                continue
            if m:
                fence = m.group(1)
                out.append(line)
                continue
            c = _CALLOUT.match(line)
            if c:
                title = c.group(4).strip() or c.group(2).strip().capitalize()
                line = f"{c.group(1)}**{title}**"
            line = _BLOCK_ID.sub("", line)
            inlined.clear()
            line = _outside_code(line, lambda part: _WIKILINK.sub(wikilink, part))
            if inlined:
                quote_marks = _QUOTE_PREFIX.match(line)
                prefix = quote_marks.group(1) if quote_marks else ""
                for k, note in enumerate(inlined):
                    _, inner = self.body(note, depth + 1)
                    quoted = "\n".join(f"{prefix}> {ln}".rstrip() for ln in inner.strip("\n").split("\n"))
                    line = line.replace(f"\x00EMBED{k}\x00", f"\n{quoted}\n{prefix}")
            out.append(line)
        return "\n".join(out)


def export_markdown(vault, out: Path | str, *, frontmatter: bool = True, force: bool = False) -> MarkdownReport:
    """Write every note of ``vault`` as CommonMark under ``out``."""
    import yaml

    from kb.frontmatter import load_frontmatter

    out = Path(out)
    old = check_export_folder(out, vault.root, MANIFEST, force)
    out.mkdir(parents=True, exist_ok=True)
    out_r = out.resolve()
    vault.ensure_index()
    conv = _Converter(vault, out)
    listed = [*(old.get("notes") or ()), *(old.get("files") or ())]
    conv.owned = owned_hashes(old, [p for p in listed if isinstance(p, str)])
    report = MarkdownReport(out=out)
    written: list[str] = []
    for path in sorted(conv.light):
        try:
            raw, body = conv.body(path)
        except OSError as exc:
            report.warnings.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        head = "<!-- paperkb-export: markdown -->\n"  # no frontmatter: this (unseen) line marks the copy
        if frontmatter:
            props = {}
            # read first with note frontmatter's limits (aliases, depth, size): a block
            # they refuse is dropped, not expanded; one they accept is loaded as it was written
            if raw is not None and not any(sev == "error" for _, sev, _ in load_frontmatter(raw)[2]):
                try:
                    loaded = yaml.safe_load(raw)
                    props = loaded if isinstance(loaded, dict) else {}
                except (yaml.YAMLError, RecursionError):
                    props = {}
            props = {**props, EXPORT_MARKER: "markdown"}
            head = (
                "---\n"
                + yaml.safe_dump(props, sort_keys=False, allow_unicode=True, width=10_000, default_flow_style=False)
                + "---\n"
            )
        dest = (out / path).resolve()
        if not dest.is_relative_to(out_r):
            report.warnings.append(f"{path}: refused: outside {out}")
            continue
        digest = write_owned(out_r, path, head + body.lstrip("\n"), conv.owned)
        if digest is None:
            report.warnings.append(in_the_way(path, out))
            report.left.append(path)
            continue
        conv.hashes[path] = digest
        written.append(path)
    report.notes = len(written)
    report.files = len(conv.copied)
    report.warnings.extend(conv.warnings)
    report.left.extend(conv.left)
    for rel in sorted(set(conv.owned) - set(conv.hashes)):  # what the last export wrote and this one did not
        if not remove_owned(out_r, rel, conv.owned) and os.path.lexists(out_r / rel):
            report.warnings.append(in_the_way(rel, out))
            report.left.append(rel)
    manifest = {"generator": "paperkb", "notes": written, "files": sorted(conv.copied), "hashes": conv.hashes}
    replace_file(out_r, out_r / MANIFEST, json.dumps(manifest))
    return report
