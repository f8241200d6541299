"""``[[wikilinks]]`` and ``![[embeds]]`` as a markdown-it inline rule.

Obsidian's forms: ``[[Note]]``, ``[[Note.md]]``, ``[[folder/Note]]``, ``[[Note#Heading]]``,
``[[Note#A#B]]`` (nested headings), ``[[#Local heading]]``, ``[[Note#^block]]``,
``[[Note|shown]]`` and, inside a table cell, ``[[Note\\|shown]]``; the same with a leading
``!`` embeds the target (``![[image.png|100x145]]`` sizes an image, ``![[doc.pdf#page=3]]``
opens a PDF page). Whitespace around each part is trimmed. A wikilink never spans lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # markdown-it is imported when a parser is built, not before
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline

# Files Obsidian opens itself: for them "#..." is a viewer parameter, not a heading.
ATTACHMENT_EXTENSIONS = frozenset(
    "png jpg jpeg gif bmp svg webp avif tif tiff ico "
    "mp3 wav m4a ogg 3gp flac webm mp4 ogv mov mkv pdf canvas base".split()
)


MAX_LINK_CHARS = 2048


def is_attachment(target: str) -> bool:
    dot = target.rfind(".")
    return dot > 0 and target[dot + 1 :].lower() in ATTACHMENT_EXTENSIONS


def split_wikilink(inner: str) -> dict[str, str | None] | None:
    """The parts of ``inner`` (the text between ``[[`` and ``]]``), or None if it is empty."""
    bar = inner.find("|")
    if bar >= 0:
        dest, display = inner[:bar], inner[bar + 1 :].strip()
        if dest.endswith("\\"):  # "[[Note\|shown]]": the escaped bar of a table cell
            dest = dest[:-1]
    else:
        dest, display = inner, None
    target, heading, block, subpath = dest, None, None, None
    hash_at = dest.find("#")
    if hash_at >= 0:
        target, subpath = dest[:hash_at], dest[hash_at + 1 :].strip()
    target = target.strip()
    if subpath is not None:
        if subpath.startswith("^"):
            block = subpath[1:].strip() or None
        elif not is_attachment(target):
            parts = [p.strip() for p in subpath.split("#")]
            heading = "#".join(p for p in parts if p) or None
    if not target and heading is None and block is None:
        return None
    return {
        "target": target,
        "heading": heading,
        "block": block,
        "subpath": subpath or None,
        "display": display or None,
    }


def _shown(parts: dict) -> str:
    """What Obsidian shows for a link without display text: "Note > Heading > Sub"."""
    shown = [parts["target"]] if parts["target"] else []
    if parts["heading"]:
        shown.extend(parts["heading"].split("#"))
    elif parts["block"]:
        shown.append("^" + parts["block"])
    elif parts["subpath"]:
        shown.append(parts["subpath"])
    return " > ".join(shown)


def wikilink_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    embed = src.startswith("![[", pos)
    if not embed and not src.startswith("[[", pos):
        return False
    start = pos + (3 if embed else 2)
    # a wikilink never spans lines; the window also keeps "[[[[[[..." linear
    end = src.find("]]", start, min(state.posMax, start + MAX_LINK_CHARS))
    if end < 0:
        return False
    inner = src[start:end]
    if "\n" in inner or "[[" in inner:
        return False
    parts = split_wikilink(inner)
    if parts is None:
        return False
    if not silent:
        token = state.push("wikilink", "a", 0)
        meta: dict[str, Any] = {**parts, "kind": "embed" if embed else "wikilink", "pos": pos}
        token.meta = meta
        token.markup = "![[" if embed else "[["
        token.content = meta["display"] or _shown(meta)
    state.pos = end + 2
    return True


def wikilink_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.before("link", "wikilink", wikilink_rule)
