"""Obsidian Markdown -> safe HTML, with markdown-it-py and kb's own syntax rules.

Notes are untrusted, so raw HTML in a note is shown as text, link targets other than web
addresses and the site's own pages are dropped, and every piece of text is escaped.
What a link points at is decided by a :class:`LinkContext` the caller gives (the static
site maps notes to its pages and attachments to copied files).

Rendering:

* ``[[Note|alias]]`` -> a link to the note's page (ghost links, with no note, get
  ``class="ghost"`` and no ``href``); ``![[image.png]]`` -> ``<img>`` of the copied file;
  ``![[Note]]`` -> the note's text inlined once (no embed inside an embed);
* callouts -> ``<details class="callout">``, open unless folded with ``-``;
* ``$math$`` -> ``<code class="math">`` with the TeX as written;
* tags, inline fields, ``==marks==``, comments (dropped), block ids (anchors).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

_SAFE_SCHEMES = re.compile(r"^(https?:|mailto:)", re.I)
_MD = None


@dataclass
class LinkContext:
    """How one page links out. Every callback returns None when it has no answer."""

    note_href: Callable[[str, str | None], str | None] = lambda target, heading: None  # [[target#heading]]
    # an attachment's URL; ``image``: it is shown by an <img> (an SVG is published only so)
    file_src: Callable[..., str | None] = lambda target, image=False: None
    embed_html: Callable[[str], str | None] = lambda target: None  # ![[Note]] inlined
    warnings: list[str] = field(default_factory=list)
    embed_depth: int = 0


def markdown():
    """One renderer per process (building it costs more than rendering a note)."""
    global _MD
    if _MD is None:
        from kb.syntax import obsidian_markdown

        md = obsidian_markdown()
        md.core.ruler.push("paperkb_callout_titles", _split_callout_titles)
        for name, rule in _RULES.items():
            md.add_render_rule(name, rule)
        _MD = md
    return _MD


def render(text: str, ctx: LinkContext) -> str:
    """The HTML of a note body (frontmatter already removed)."""
    return markdown().render(text, {"paperkb": ctx})


def _ctx(env) -> LinkContext:
    return env.get("paperkb") or LinkContext()


# ---- callouts ---------------------------------------------------------------------------
def _split_callout_titles(state) -> None:
    """The callout plugin leaves the title as the first line of the first paragraph; take
    it out of that paragraph (it is printed by ``<summary>``)."""
    tokens = state.tokens
    for i, tok in enumerate(tokens):
        if tok.type == "paragraph_open" and (tok.meta or {}).get("callout_title") and i + 1 < len(tokens):
            inline = tokens[i + 1]
            children = inline.children or []
            cut = next((k for k, c in enumerate(children) if c.type in ("softbreak", "hardbreak")), None)
            if cut is None:
                inline.children = []
                tok.hidden = True
                if i + 2 < len(tokens):
                    tokens[i + 2].hidden = True
                tok.meta["empty"] = True
            else:
                inline.children = children[cut + 1 :]


def _blockquote_open(self, tokens, idx, options, env) -> str:
    info = (tokens[idx].meta or {}).get("callout")
    if not info:
        return "<blockquote>\n"
    kind = re.sub(r"[^a-z0-9-]", "", info["type"].lower()) or "note"
    title = info["title"] or info["raw_type"].capitalize()
    title = re.sub(r"\s*\^[A-Za-z0-9-]+\s*$", "", title)
    title = re.sub(r"!?\[\[([^\]|]*)\|?([^\]]*)\]\]", lambda m: m.group(2) or m.group(1), title)
    opened = "" if info.get("fold") == "-" else " open"
    return (
        f'<details class="callout callout-{kind}"{opened}><summary>'
        f'<span class="callout-type">{escape(info["raw_type"])}</span> {escape(title)}</summary>\n'
        '<div class="callout-body">\n'
    )


def _blockquote_close(self, tokens, idx, options, env) -> str:
    # find the matching opener to know whether this quote was a callout
    depth = 0
    for j in range(idx, -1, -1):
        t = tokens[j]
        if t.type == "blockquote_close":
            depth += 1
        elif t.type == "blockquote_open":
            depth -= 1
            if depth == 0:
                return "</div></details>\n" if (t.meta or {}).get("callout") else "</blockquote>\n"
    return "</blockquote>\n"


def _paragraph_open(self, tokens, idx, options, env) -> str:
    return "" if tokens[idx].hidden else "<p>"


def _paragraph_close(self, tokens, idx, options, env) -> str:
    return "" if tokens[idx].hidden else "</p>\n"


# ---- inline syntax ----------------------------------------------------------------------
def _wikilink(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    meta = tok.meta or {}
    ctx = _ctx(env)
    target = meta.get("target") or ""
    shown = escape(tok.content or target)
    if meta.get("kind") == "embed":
        from kb.syntax import is_attachment

        if is_attachment(target):
            image = bool(re.search(r"\.(png|jpe?g|gif|webp|svg|bmp|avif)$", target, re.I))
            src = ctx.file_src(target, image=image)
            if src is None:
                ctx.warnings.append(f"embed {target!r} left out (not a publishable file inside the vault)")
                return f'<span class="missing-embed">{escape(target)}</span>'
            if image:
                width = meta.get("display") or ""
                size = f' width="{int(width.split("x")[0])}"' if re.fullmatch(r"\d{1,4}(x\d{1,4})?", width) else ""
                return f'<img src="{escape(src, quote=True)}" alt="{escape(target, quote=True)}"{size}>'
            return f'<a class="file" href="{escape(src, quote=True)}">{escape(target)}</a>'
        if ctx.embed_depth == 0:
            inner = ctx.embed_html(target)
            if inner is not None:
                return f'<div class="embed">{inner}</div>'
        href = ctx.note_href(target, meta.get("heading"))
        if href is None:
            return f'<span class="ghost" title="no note yet">{escape(target)}</span>'
        return f'<a class="internal embed-link" href="{escape(href, quote=True)}">{shown}</a>'
    href = (
        ctx.note_href(target, meta.get("heading"))
        if target
        else ("#" + heading_anchor(meta.get("heading") or "") if meta.get("heading") else None)
    )
    if href is None:
        return f'<span class="ghost" title="no note yet">{shown}</span>'
    return f'<a class="internal" href="{escape(href, quote=True)}">{shown}</a>'


@functools.cache
def page_name(path: str) -> str:
    """``folder/My Note.md`` -> ``my-note-1a2b3c4d.html`` (flat, safe, unique per path): a
    note's page in the site, and the stem of its pictures in a summary's files folder."""
    from kb.parse import slugify

    stem = path.rsplit("/", 1)[-1]
    stem = stem[:-3] if stem.lower().endswith(".md") else stem
    slug = slugify(stem)[:60] or "note"
    return f"{slug}-{hashlib.blake2b(path.encode('utf-8', 'replace'), digest_size=4).hexdigest()}.html"


def heading_anchor(text: str) -> str:
    """The id of a heading's anchor on a page (the last part of ``Note#A#B``, slugified)."""
    from kb.parse import slugify

    return slugify(text.split("#")[-1]) or "top"


def _link_open(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    href = tok.attrGet("href") or ""
    ctx = _ctx(env)
    final: str | None = None
    if _SAFE_SCHEMES.match(href.strip()):
        final = href.strip()
    elif href.startswith("#"):
        final = href
    elif href and not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", href) and not href.startswith("//"):
        from urllib.parse import unquote

        dest, _, heading = unquote(href).partition("#")
        final = (
            ctx.note_href(dest, heading or None)
            if dest.lower().endswith(".md") or "." not in dest.rsplit("/", 1)[-1]
            else ctx.file_src(dest)
        )
    tok.meta = dict(tok.meta or {})
    tok.meta["paperkb_open"] = final is not None
    if final is None:
        return '<span class="dead-link">'
    rel = ' rel="noopener noreferrer"' if _SAFE_SCHEMES.match(final) else ""
    return f'<a href="{escape(final, quote=True)}"{rel}>'


def _link_close(self, tokens, idx, options, env) -> str:
    for j in range(idx - 1, -1, -1):
        if tokens[j].type == "link_open":
            return "</a>" if (tokens[j].meta or {}).get("paperkb_open") else "</span>"
    return "</a>"


def _image(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    src = tok.attrGet("src") or ""
    alt = tok.content or ""
    ctx = _ctx(env)
    if re.match(r"^https?:", src, re.I):  # nothing is fetched from the network: a remote image is a link
        return (
            f'<a class="remote-image" href="{escape(src, quote=True)}" rel="noopener noreferrer">'
            f"{escape(alt or src)}</a>"
        )
    final = (
        None if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", src) or src.startswith("//") else ctx.file_src(src, image=True)
    )
    if final is None:
        if src:
            ctx.warnings.append(f"image {src!r} left out (not a file inside the vault)")
        return f'<span class="missing-embed">{escape(alt or src)}</span>'
    return f'<img src="{escape(final, quote=True)}" alt="{escape(alt, quote=True)}">'


def _tag(self, tokens, idx, options, env) -> str:
    tag = (tokens[idx].meta or {}).get("tag", "")
    return f'<span class="tag">#{escape(tag)}</span>'


def _inline_field(self, tokens, idx, options, env) -> str:
    # the field's text stays in the paragraph as written; the token only marks it
    return ""


def _block_id(self, tokens, idx, options, env) -> str:
    block = (tokens[idx].meta or {}).get("id", "")
    return f'<a class="block-id" id="^{escape(block, quote=True)}"></a>'


def _list_item_open(self, tokens, idx, options, env) -> str:
    status = (tokens[idx].meta or {}).get("task")
    if status is None:
        return "<li>"
    checked = " checked" if status in "xX" else ""
    return f'<li class="task"><input type="checkbox" disabled{checked}> '


def _nothing(self, tokens, idx, options, env) -> str:
    return ""


def _html_as_text(self, tokens, idx, options, env) -> str:
    return escape(tokens[idx].content)


def _html_block_as_text(self, tokens, idx, options, env) -> str:
    return f'<pre class="raw-html">{escape(tokens[idx].content)}</pre>\n'


def _math_inline(self, tokens, idx, options, env) -> str:
    return f'<code class="math">{escape(tokens[idx].content)}</code>'


def _math_block(self, tokens, idx, options, env) -> str:
    return f'<pre class="math"><code>{escape(tokens[idx].content)}</code></pre>\n'


def _heading_open(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    text = tokens[idx + 1].content if idx + 1 < len(tokens) else ""
    return f'<{tok.tag} id="{escape(heading_anchor(text), quote=True)}">'


_RULES = {
    "blockquote_open": _blockquote_open,
    "blockquote_close": _blockquote_close,
    "paragraph_open": _paragraph_open,
    "paragraph_close": _paragraph_close,
    "wikilink": _wikilink,
    "link_open": _link_open,
    "link_close": _link_close,
    "image": _image,
    "tag": _tag,
    "inline_field": _inline_field,
    "block_id": _block_id,
    "comment": _nothing,
    "comment_block": _nothing,
    "html_inline": _html_as_text,
    "html_block": _html_block_as_text,
    "math_inline": _math_inline,
    "math_inline_double": _math_inline,
    "math_block": _math_block,
    "math_block_label": _math_block,
    "heading_open": _heading_open,
    "list_item_open": _list_item_open,
}
