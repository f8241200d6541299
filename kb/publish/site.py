"""``paperkb export site OUT/``: the vault as a static HTML site that works offline.

A page per note (Obsidian Markdown rendered by :mod:`kb.publish.html`), an index with
sortable, filterable tables of every paper and claim, a page per run (metrics, checks,
plots), the citation graph drawn as SVG at export time (pan and zoom by a small
hand-written script) and a search box over titles and text. Pages come from the Jinja2
templates in ``site_files/templates``; CSS and JS are vendored in ``site_files/assets``:
nothing is fetched from the network.

Incremental: ``OUT/.paperkb-site.json`` records, for every file the export wrote, a
fingerprint of what it was made from (the note's content hash, where its links resolve,
who links to it, its claims' statuses, the code and templates). A page whose fingerprint
did not change is not rendered again; files the export wrote before and no longer makes
are removed; nothing else in OUT is ever touched: the manifest keeps a hash of each file
written, and a file that is not listed, or changed since, or a link, is never replaced or
removed (:mod:`kb.publish.outdir`). A non-empty OUT without that manifest is refused
unless ``force`` (which writes beside its files, never over them); OUT inside the vault is
refused. ``OUT/.paperkb-site-notes.msgpack`` keeps what each note's
content alone decides (title, tags, claims, authors...) by content hash, so a re-export
reads from the index only the notes that changed (and every note's links: where they
resolve depends on the others).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from kb.claims import claim_entry
from kb.errors import PaperkbError
from kb.model import Note
from kb.publish.html import page_name
from kb.publish.outdir import (
    UNCHECKED,
    check_export_folder,
    in_the_way,
    owned_hashes,
    publishable,
    remove_owned,
    write_owned,
)
from kb.publish.papers import EXPORT_MARKER, Citations, load_rule
from paperkb.files import ascii_component, read_regular, real_folder, replace_file, target

MANIFEST = ".paperkb-site.json"
# what each note's content alone decides, kept between exports (kb.publish.selection.site_notes)
NOTES_CACHE = ".paperkb-site-notes.msgpack"
HERE = Path(__file__).parent / "site_files"
SEARCH_WORDS = 400  # distinct words of a note's text kept for the search box
METRICS_MAX_BYTES = 5_000_000
ATTACHMENT_MAX_BYTES = 200_000_000  # a vault file larger than this is not published


@dataclass
class SiteReport:
    out: Path
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    pages: int = 0
    warnings: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # files in the way that paperkb did not write
    seconds: float = 0.0


def _hash(*parts: Any) -> str:
    """A fingerprint of plain data (str, numbers, None, lists/tuples of them; dicts are
    sorted first). ``repr`` of such data is deterministic and much cheaper than JSON."""
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        if isinstance(p, dict):
            p = sorted((str(k), repr(v)) for k, v in p.items())
        h.update(repr(p).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def _hash_tables(*parts: Any) -> str:
    """``_hash`` of large JSON-like tables (the index's 10,000 rows of papers and claims):
    msgspec's encoder does in C what ``repr`` does for each value in turn; data it cannot
    encode falls back to ``_hash``."""
    try:
        data = msgspec.json.encode(parts)
    except (msgspec.MsgspecError, TypeError, ValueError, OverflowError):  # ValueError: a lone surrogate
        return _hash(*parts)
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def _code_version() -> str:
    parts = []
    for path in sorted([*HERE.rglob("*"), *Path(__file__).parent.glob("*.py")]):
        if path.is_file():
            st = path.stat()
            parts.append((path.name, st.st_size, st.st_mtime_ns))
    return _hash(parts)


@contextlib.contextmanager
def _gc_paused():
    """Python's cycle collector off for a while. An export builds a million small objects
    (notes, links, claims, table rows) that hold no cycles; the collector's passes over
    them cost about a second of a 10,000-note re-export and free nothing."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _safe_id(text: str) -> str | None:
    import re

    return text if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", text or "") else None


def check_out_folder(out: Path, vault_root: Path, force: bool) -> dict[str, Any]:
    """The previous manifest of ``out`` ({} when new); refuses a folder paperkb did not
    write, the vault and any folder inside it (see :mod:`kb.publish.outdir`)."""
    return check_export_folder(out, vault_root, MANIFEST, force)


def _write_file(out: Path, rel: str, data: str | bytes, owned: dict[str, str]) -> str | None:
    """Write ``rel`` under ``out`` whole or not at all (an ``O_EXCL`` temporary, then a
    rename), only over a file the last export wrote; its hash, or None when a file
    paperkb did not write is in the way."""
    target(out, rel)  # a link at the file itself is never followed: write_owned leaves it alone, reported
    return write_owned(out, rel, data, owned)


class _Writer:
    """Writes files under ``out`` only, skipping those whose fingerprint is unchanged."""

    def __init__(self, out: Path, old: dict[str, str], report: SiteReport, owned: dict[str, str]) -> None:
        self.out = out.resolve()
        self.owned = owned  # rel -> the hash the last export wrote it with
        self.hashes: dict[str, str] = {}  # rel -> the hash this export wrote it with
        self.listing: dict[str, set[str]] = {}  # folder -> its files, as the export found them
        self.old = old
        self.new: dict[str, str] = {}
        self.extra: dict[str, Any] = {}  # more manifest entries (the search words cache)
        self.old_extra: dict[str, Any] = {}
        self.report = report

    def target(self, rel: str) -> Path:
        return target(self.out, rel)

    def fresh(self, rel: str, fingerprint: str) -> bool:
        """Whether ``rel`` is already written from the same inputs (then it is kept)."""
        if self.old.get(rel) == fingerprint and self._found(rel):
            self.keep(rel, fingerprint)
            self.report.unchanged += 1
            return True
        return False

    def _found(self, rel: str) -> bool:
        """Whether ``rel`` is a file (or a link to one) in ``out``: one listing of each
        folder instead of a stat of each of 10,000 pages."""
        folder, _, name = rel.rpartition("/")
        names = self.listing.get(folder)
        if names is None:
            names = set()
            with contextlib.suppress(OSError), os.scandir(self.out / folder) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        if entry.is_file(follow_symlinks=False):
                            names.add(entry.name)
            self.listing[folder] = names
        return name in names

    def write(self, rel: str, fingerprint: str, data: str | bytes) -> None:
        self.written(rel, fingerprint, _write_file(self.out, rel, data, self.owned))

    def written(self, rel: str, fingerprint: str, digest: str | None) -> None:
        """Record ``rel`` as written (by ``write`` or by a render worker) with the hash of
        its bytes; None: a file paperkb did not write was in the way and is left alone."""
        if digest is None:
            self.report.warnings.append(in_the_way(rel, self.out))
            self.report.left.append(rel)
            return
        self.new[rel] = fingerprint
        self.hashes[rel] = digest
        self.report.written += 1

    def keep(self, rel: str, fingerprint: str) -> None:
        """Carry ``rel`` over from the last export, unwritten."""
        self.new[rel] = fingerprint
        if rel in self.owned:
            self.hashes[rel] = self.owned[rel]

    def copy(self, rel: str, fingerprint: str, source: Path) -> None:
        if self.fresh(rel, fingerprint):
            return
        try:
            data = read_regular(source, ATTACHMENT_MAX_BYTES)
        except PaperkbError as exc:
            self.report.warnings.append(str(exc))
            return
        self.written(rel, fingerprint, _write_file(self.out, rel, data, self.owned))

    def finish(self) -> None:
        for rel in set(self.old) - set(self.new):
            try:
                self.target(rel)
            except PaperkbError:
                continue
            if remove_owned(self.out, rel, self.owned):
                self.report.removed += 1
            elif os.path.lexists(self.out / rel):
                self.report.warnings.append(in_the_way(rel, self.out))
                self.report.left.append(rel)
        for rel in self.new:
            if rel not in self.hashes and rel in self.owned:
                self.hashes[rel] = self.owned[rel]
        manifest = {"generator": "paperkb", **self.extra, "files": self.new, "hashes": self.hashes}
        # no indent: json's C encoder (10,000 pages' words are ~30 MB of manifest)
        text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))  # ASCII: any path survives
        replace_file(self.out, self.out / MANIFEST, text)


# ---- the export ---------------------------------------------------------------------------
def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env


def _status_css(status: str) -> str:
    from kb.publish.display import status_class

    return status_class(status).split()[0]


class _Site:
    """Everything one export knows; pages are rendered from it (also in worker processes)."""

    def __init__(
        self, vault, statuses: dict[str, dict], runs_dir: Path | None, generated: str, cache: Any = None
    ) -> None:
        from kb.publish.selection import site_notes

        self.vault = vault
        self.root = vault.root
        self.statuses = statuses or {}
        self.runs_dir = runs_dir
        self.generated = generated
        self.site_name = vault.root.name
        self.rule = load_rule(vault.root)
        every, self.extra, self.cache = site_notes(vault, cache)
        notes = [n for n in every if EXPORT_MARKER not in n.frontmatter]
        self.light = {n.path: n for n in notes}
        self.citations = Citations(notes, self.rule)
        conn = vault.connect()
        self.hashes = {p: entry[0] for p, entry in self.cache["notes"].items()}
        self.attachments = [p for (p,) in conn.execute("SELECT path FROM files")]
        self.by_name: dict[str, str] = {}
        for p in sorted(self.light, key=lambda p: (p.count("/"), p)):
            self.by_name.setdefault(p[:-3].casefold() if p.lower().endswith(".md") else p.casefold(), p)
            stem = p.rsplit("/", 1)[-1]
            self.by_name.setdefault((stem[:-3] if stem.lower().endswith(".md") else stem).casefold(), p)
        self.files_by_name: dict[str, str] = {}
        for p in sorted(self.attachments, key=lambda p: (p.count("/"), p)):
            self.files_by_name.setdefault(p.casefold(), p)
            self.files_by_name.setdefault(p.rsplit("/", 1)[-1].casefold(), p)
        self.backrefs: dict[str, list[str]] = {}
        for n in notes:
            for link in n.links:
                if link.resolved and link.resolved != n.path and link.resolved in self.light:
                    lst = self.backrefs.setdefault(link.resolved, [])
                    if not lst or lst[-1] != n.path:
                        lst.append(n.path)
        self.runs = self._runs()
        self.runs_stamp = _hash(sorted(self.runs))
        # claims, dataview blocks and authors came with the light notes: one read of the stored notes
        self.dataview: set[str] = {p for p, e in self.extra.items() if e.dataview}
        self.claims: dict[str, list[dict]] = {p: e.claims for p, e in self.extra.items() if e.claims}
        # ids as the notes wrote them (a YAML id may be a number; it then matches no status)
        self.claim_ids: dict[str, list[Any]] = {p: [c.get("id") for c in cs] for p, cs in self.claims.items()}
        self.code = _code_version()
        self.stamp = _hash_tables(sorted(self.hashes.items())) if self.dataview else ""
        self.env = _env()
        self.attachment_uses: dict[str, str] = {}  # vault path -> site file (filled while rendering)
        self.out: Path | None = None  # the (resolved) output folder, where render workers write pages
        self.owned: dict[str, str] = {}  # what the last export wrote there (rel -> hash): all it may replace
        self.words: dict[str, str] = {}  # path -> search words, of the pages rendered this time

    def claim_list(self) -> list[dict[str, Any]]:
        """Every claim with an id, in path and line order, as ``kb.claims.indexed_claims``
        lists them."""
        out: list[dict[str, Any]] = []
        entries = self.cache["notes"]  # every note's, paperkb's own exports included
        for path in sorted(self.claims):
            title, citekey = entries[path][1], entries[path][2]
            if not title:
                name = path.rsplit("/", 1)[-1]
                title = name[:-3] if name.lower().endswith(".md") else name
            claims = self.claims[path]
            if len(claims) > 1:
                claims = sorted(claims, key=lambda c: c.get("line", 0))
            for c in claims:
                if "id" not in c:
                    continue
                out.append(claim_entry(c, path, title, citekey))
        return out

    # -- runs
    def _runs(self) -> dict[str, Path]:
        runs: dict[str, Path] = {}
        if self.runs_dir is None or not self.runs_dir.is_dir():
            return runs
        base = self.runs_dir.resolve()
        for entry in sorted(self.runs_dir.iterdir()):
            rid = _safe_id(entry.name)
            if rid and entry.is_dir() and not entry.is_symlink() and entry.resolve().is_relative_to(base):
                runs[rid] = entry
        return runs

    def run_href(self, run_id: Any, root: str) -> str | None:
        rid = _safe_id(str(run_id)) if run_id else None
        return f"{root}runs/{rid}.html" if rid and rid in self.runs else None

    # -- links
    def note_url(self, path: str, root: str) -> str:
        return f"{root}notes/{page_name(path)}"

    def resolve_name(self, target: str) -> str | None:
        key = target.strip().replace("\\", "/")
        key = key[:-3] if key.lower().endswith(".md") else key
        return self.by_name.get(key.casefold()) or self.by_name.get(key.lstrip("@").casefold())

    def file_for(self, target: str, source_path: str, image: bool = False) -> Path | None:
        """The attachment ``target`` names, only if the site may publish it: a real file
        inside the vault, of a type a reading site needs (``PUBLISHED``), in no dot-folder
        (``.paperkb/``, ``.obsidian/``) and no dot-file; an SVG only as an ``<img>`` (where
        its scripts never run), never as a page of its own."""
        from urllib.parse import unquote

        target = unquote(target.strip()).replace("\\", "/")
        if not target or target.startswith("/") or "\x00" in target:
            return None
        if not publishable(target, image):
            return None
        rel = self.files_by_name.get(target.casefold()) or self.files_by_name.get(target.rsplit("/", 1)[-1].casefold())
        if rel is None:
            folder = source_path.rsplit("/", 1)[0] if "/" in source_path else ""
            rel = f"{folder}/{target}" if folder else target
        path = self.root / rel
        try:
            real = path.resolve()
        except OSError:
            return None
        if not real.is_relative_to(self.root) or not real.is_file():
            return None
        if not publishable(real.relative_to(self.root).as_posix(), image):  # a link to a dot-file, or to an .html
            return None
        return real

    # -- fingerprints
    def note_fingerprint(self, path: str) -> str:
        n = self.light[path]
        near = self.citations.of(path)
        parts = [
            self.code,
            self.hashes.get(path) or "",
            "1" if path in self.citations.papers else "0",
            self.stamp if path in self.dataview else "",
            self.runs_stamp,
        ]
        parts.extend(f"{link.target}\x01{link.resolved}" for link in n.links)
        parts.append("\x02")
        parts.extend(f"{p}\x01{self.light[p].title}" for p in self.backrefs.get(path, ()))
        parts.append("\x02")
        parts.extend(f"{c.key}\x01{c.path}" for c in near.cites)
        if self.statuses and path in self.claim_ids:
            parts.append(repr([(i, self.statuses.get(i)) for i in self.claim_ids[path]]))
        return hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()

    # -- one note page
    def render_note(self, path: str) -> tuple[str, list[str], list[tuple[str, Path]], str]:
        """(HTML, warnings, attachments used as (site path, file), the note's search words)."""
        from markupsafe import Markup

        from kb.frontmatter import split_frontmatter
        from kb.publish import html as H
        from kb.publish.bibtex import venue_of
        from kb.publish.display import authors_line

        note = self.vault.note_at(path)
        root = "../"
        warnings: list[str] = []
        files: list[tuple[str, Path]] = []
        text = self._note_text(path, warnings)
        raw, body_line, offset = split_frontmatter(text)
        body = text[offset:] if raw is not None else text
        if path in self.dataview or "`=" in body:
            body = self._render_queries(path, body)
        ctx = self._link_context(path, {link.target: link.resolved for link in note.links}, root, warnings, files)
        body_html = H.render(body, ctx)
        near = self.citations.of(path)
        doi_url = None
        if note.doi:
            from urllib.parse import quote

            doi_url = "https://doi.org/" + quote(note.doi, safe="/:;()._-")
        properties = [(str(k), _prop(v)) for k, v in note.frontmatter.items()][:60]
        page = self.env.get_template("note.html").render(
            title=note.title or note.name,
            site_name=self.site_name,
            root=root,
            generated=self.generated,
            note=note,
            paper=path in self.citations.papers,
            authors=authors_line(note) if note.authors else "",
            venue=venue_of(note),
            doi_url=doi_url,
            claims=self._claim_rows(note, root),
            properties=properties,
            body=Markup(body_html),
            cites=[{"label": c.label, "href": self.note_url(c.path, root) if c.path else None} for c in near.cites],
            cited_by=[{"label": self.light[p].title or p, "href": self.note_url(p, root)} for p in near.cited_by],
            mentioned_by=[
                {"label": self.light[p].title or p, "href": self.note_url(p, root)} for p in near.mentioned_by
            ],
        )
        words = _search_words((self.light[path].title or "") + " " + (note.body_text or ""))
        return page, [w if w.startswith(path) else f"{path}: {w}" for w in warnings], files, words

    def _note_text(self, path: str, warnings: list[str]) -> str:
        """The note's text as it is on disk now (read only inside the vault); "" with a warning."""
        from kb.text import decode_note

        try:
            real = (self.root / path).resolve()
            if not real.is_relative_to(self.root):
                raise OSError("outside the vault")
            return decode_note(real.read_bytes()).text
        except OSError as exc:
            warnings.append(f"{path}: cannot read: {exc}")
            return ""

    def _link_context(
        self, path: str, links: dict[str, str | None], root: str, warnings: list[str], files: list[tuple[str, Path]]
    ):
        """How the page of ``path`` links out: notes to their pages, attachments to copies
        (appended to ``files``), ``![[Note]]`` inlined once."""
        from kb.frontmatter import split_frontmatter
        from kb.publish import html as H
        from kb.text import decode_note

        def note_href(target: str, heading: str | None) -> str | None:
            resolved = links.get(target) if target in links else None
            resolved = resolved or self.resolve_name(target)
            if resolved is None or resolved not in self.light:
                return None
            url = root + "notes/" + page_name(resolved)
            return url + ("#" + H.heading_anchor(heading) if heading else "")

        def file_src(target: str, image: bool = False) -> str | None:
            real = self.file_for(target, path, image)
            if real is None:
                return None
            rel = real.relative_to(self.root).as_posix()
            site = f"files/{hashlib.blake2b(rel.encode(), digest_size=4).hexdigest()}-{ascii_component(real.name)}"
            files.append((site, real))
            return root + site

        def embed_html(target: str) -> str | None:
            resolved = links.get(target) or self.resolve_name(target)
            if resolved is None or resolved not in self.light or resolved == path:
                return None
            try:
                real = (self.root / resolved).resolve()
                if not real.is_relative_to(self.root):
                    warnings.append(f"{path}: embed {target!r} refused: it leaves the vault")
                    return None
                inner = decode_note(real.read_bytes()).text
            except OSError:
                return None
            raw_i, _, off = split_frontmatter(inner)
            sub = H.LinkContext(note_href=note_href, file_src=file_src, warnings=warnings, embed_depth=1)
            return H.render(inner[off:] if raw_i is not None else inner, sub)

        return H.LinkContext(note_href=note_href, file_src=file_src, embed_html=embed_html, warnings=warnings)

    def _claim_rows(self, note: Note, root: str) -> list[dict[str, Any]]:
        """The note's claims with their status, checks and run, as the note page lists them."""
        from kb.publish.display import claim_checks, status_mark

        rows = []
        for c in note.claims:
            st = self.statuses.get(c.id) or {}
            status = str(st.get("status") or "unverified")
            rows.append(
                {
                    "id": c.id,
                    "statement": c.statement,
                    "status": status_mark(status),
                    "css": _status_css(status),
                    "checks": claim_checks(st),
                    "run_id": st.get("run_id"),
                    "run_href": self.run_href(st.get("run_id"), root),
                }
            )
        return rows

    def _render_queries(self, path: str, body: str) -> str:
        try:
            from kb.query import corpus_of
            from kb.query.render import render_blocks

            if not hasattr(self, "_corpus"):
                self._corpus = corpus_of(self.vault, refresh=False)
            return render_blocks(body, self._corpus, self._corpus.page(path))
        except PaperkbError as exc:
            return body + f"\n\n> [!warning] Dataview blocks not rendered: {exc}\n"

    # -- run pages
    def _run_claim(self, c: dict) -> dict:
        """A claim a run checks, with its paper's page (found through the index's claims)."""
        from kb.publish.display import status_mark

        for path, claims in self.claims.items():
            for claim in claims:
                if claim.get("id") == c["id"]:
                    return {
                        "href": self.note_url(path, "../"),
                        "paper": self.light[path].title or path if path in self.light else path,
                        "statement": claim.get("statement") or c["id"],
                        "status": status_mark(c["status"]),
                        "css": c["css"],
                    }
        return {
            "href": "../index.html#claims",
            "paper": c["id"],
            "statement": c["id"],
            "status": status_mark(c["status"]),
            "css": c["css"],
        }

    def render_run(self, rid: str, folder: Path) -> tuple[str, list[tuple[str, Path]]]:
        record: dict[str, Any] = {}
        metrics_file = folder / "metrics.json"
        try:
            if (
                metrics_file.is_file()
                and not metrics_file.is_symlink()
                and metrics_file.stat().st_size <= METRICS_MAX_BYTES
            ):
                loaded = json.loads(metrics_file.read_text(encoding="utf-8", errors="replace"))
                record = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            record = {}
        fields = [
            (k, _prop(record.get(k)))
            for k in ("experiment", "preset", "status", "verdict", "summary", "error")
            if record.get(k) not in (None, "")
        ]
        if isinstance(record.get("params"), dict):
            fields.append(("params", _prop(record["params"])))
        checks = [c for c in record.get("checks") or [] if isinstance(c, dict)]
        claims = []
        for cid, st in self.statuses.items():
            if not isinstance(st, dict):
                continue
            if st.get("run_id") == rid:
                claims.append({"id": cid, "status": str(st.get("status")), "css": _status_css(str(st.get("status")))})
            if not checks:
                checks.extend(c for c in st.get("checks") or [] if isinstance(c, dict) and c.get("run_id") == rid)
        last: dict[str, dict] = {}
        for m in record.get("metrics") or []:
            if isinstance(m, dict) and "name" in m:
                last[str(m["name"])] = m
        plots = []
        files: list[tuple[str, Path]] = []
        for png in sorted(folder.glob("*.png"))[:20]:
            if png.is_file() and not png.is_symlink():
                site = f"runs/{rid}/{ascii_component(png.name)}"
                files.append((site, png))
                plots.append({"src": f"{rid}/{ascii_component(png.name)}", "name": png.name})
        run = {
            "id": rid,
            "fields": fields,
            "claims": [self._run_claim(c) for c in claims],
            "checks": [
                {k: _prop(c.get(k)) for k in ("name", "value", "op", "threshold", "passed", "evidence", "description")}
                for c in checks
            ],
            "metrics": [
                {"name": k, "value": _prop(v.get("value")), "step": _prop(v.get("step"))}
                for k, v in sorted(last.items())
            ],
            "plots": plots,
            "mlflow_url": _mlflow_url(folder),
        }
        page = self.env.get_template("run.html").render(
            title=f"Run {rid}", site_name=self.site_name, root="../", generated=self.generated, run=run
        )
        return page, files


def _mlflow_url(folder: Path) -> str | None:
    """The MLflow run page of a run, from the ``mlflow.json`` paperkb writes in its folder
    when it sends the run to a tracking server (an http(s) address only)."""
    link = folder / "mlflow.json"
    try:
        if not link.is_file() or link.is_symlink() or link.stat().st_size > 64 * 1024:
            return None
        data = json.loads(link.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) and len(url) < 2000 else None


def _prop(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= 2000 else text[:2000] + "…"


# worker processes inherit the site through fork
_SITE: _Site | None = None


def _render_batch(paths: list[str]) -> list[tuple[str, list[str], list[tuple[str, str]], str | None, str | None]]:
    """Render and write the pages of ``paths`` (in a worker: the pages never travel back
    to the main process); (path, warnings, attachments, search words or None, the page's
    hash or None when a file paperkb did not write was in its way) of each."""
    site = _SITE
    assert site is not None and site.out is not None
    out = []
    for path in paths:
        words = None
        try:
            page, warnings, files, words = site.render_note(path)
        except Exception as exc:  # one broken note must not stop the site
            page = site.env.get_template("note.html").render(
                title=path,
                site_name=site.site_name,
                root="../",
                generated=site.generated,
                note=site.light[path],
                paper=False,
                authors="",
                venue="",
                doi_url=None,
                claims=[],
                properties=[],
                body=f"(this note could not be rendered: {type(exc).__name__})",
                cites=[],
                cited_by=[],
                mentioned_by=[],
            )
            warnings, files = [f"{path}: not rendered: {type(exc).__name__}: {exc}"], []
        digest = _write_file(site.out, f"notes/{page_name(path)}", page, site.owned)
        out.append((path, warnings, [(s, str(f)) for s, f in files], words, digest))
    return out


def export_site(
    vault,
    out: Path | str,
    *,
    statuses: dict[str, dict] | None = None,
    runs_dir: Path | str | None = None,
    force: bool = False,
    workers: int | None = None,
    generated: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    status_of: Callable[[list[dict]], dict[str, dict]] | None = None,
) -> SiteReport:
    """Write (or bring up to date) the static site of ``vault`` in ``out``. ``progress(done,
    total)`` is called as note pages are rendered (for a progress line on long exports).

    Claim statuses are ``statuses`` (claim id -> status dict) or, with ``status_of``, what
    it returns for the vault's claims (dicts with ``id, statement, experiments, note, title,
    line, citekey, params, expect, needs``, in path and line order): the site has read the
    claims already, so the caller need not read them again."""
    with _gc_paused():
        return _export_site(vault, Path(out), statuses, runs_dir, force, workers, generated, progress, status_of)


def _export_site(vault, out: Path, statuses, runs_dir, force, workers, generated, progress, status_of) -> SiteReport:
    import datetime as _dt

    global _SITE
    started = time.perf_counter()
    real_folder.cache_clear()  # folders are checked again by each export
    old = check_out_folder(out, vault.root, force)
    out.mkdir(parents=True, exist_ok=True)
    report = SiteReport(out=out)
    old_files = old.get("files")
    old_files = old_files if isinstance(old_files, dict) else {}
    owned = owned_hashes(old, old_files)
    if old:  # the cache is paperkb's own, damaged or not, in a folder with paperkb's manifest
        owned[NOTES_CACHE] = UNCHECKED
    writer = _Writer(out, old_files, report, owned)
    writer.old_extra = old
    vault.ensure_index()
    runs = Path(runs_dir) if runs_dir is not None else vault.root / ".paperkb" / "runs"
    site = _Site(vault, statuses or {}, runs, generated or _dt.date.today().isoformat(), _read_cache(out, old))
    if status_of is not None:
        site.statuses = status_of(site.claim_list()) or {}
    # the date is in every page's footer: a new day alone must not rewrite every page
    site.generated = generated or _dt.date.today().isoformat()

    for asset in sorted((HERE / "assets").iterdir()):
        writer.copy(f"assets/{asset.name}", _hash(site.code, asset.name), asset)
    _write_note_pages(site, writer, old, workers, progress)
    _write_run_pages(site, writer)
    _write_global_pages(site, writer)
    _write_cache(writer.out, site.cache, writer.owned)
    writer.finish()
    report.seconds = time.perf_counter() - started
    _SITE = None
    return report


def _read_cache(out: Path, manifest: dict[str, Any]) -> Any:
    """The notes cache of the last export into ``out`` (None when there is none, it is
    damaged, or the folder has no manifest: then nothing in it is trusted)."""
    if not manifest:
        return None
    try:
        return msgspec.msgpack.decode((out / NOTES_CACHE).read_bytes())
    except (OSError, msgspec.MsgspecError):
        return None


def _write_cache(out: Path, cache: dict[str, Any], owned: dict[str, str]) -> str | None:
    try:
        data = msgspec.msgpack.encode(cache)
    except (msgspec.MsgspecError, OverflowError, TypeError):  # a value msgpack cannot hold (a huge int)
        kept = {}
        for path, entry in cache["notes"].items():
            try:
                msgspec.msgpack.encode(entry)
            except (msgspec.MsgspecError, OverflowError, TypeError):
                continue
            kept[path] = entry
        data = msgspec.msgpack.encode({**cache, "notes": kept})
    return _write_file(out, NOTES_CACHE, data, owned)


def _render_all(site: _Site, paths: list[str], workers: int | None, progress: Callable[[int, int], None] | None = None):
    """``_render_batch`` of ``paths``, in worker processes when there are many; the results
    come as the batches finish."""
    global _SITE
    _SITE = site
    from kb.index import available_cpus

    n = workers if workers is not None else min(available_cpus(), 8)
    if n <= 1 or len(paths) < 200:
        # a whole site rendered here makes much cyclic garbage: collect it (a few pages'
        # worth is left to the end of the export)
        was_paused = not gc.isenabled()
        if len(paths) >= 200:
            gc.enable()
        try:
            yield from _render_batch(paths)
        finally:
            if was_paused:
                gc.disable()
        return
    import multiprocessing as mp

    from kb.publish.html import markdown

    markdown()  # build the parser once, before forking
    site.vault.close()  # each worker opens its own SQLite connection
    chunks = [paths[i : i + 100] for i in range(0, len(paths), 100)]
    ctx = mp.get_context("fork")
    with ctx.Pool(n, initializer=gc.enable) as pool:  # rendering makes cyclic garbage
        done = 0
        for batch in pool.imap(_render_batch, chunks):
            yield from batch
            done += len(batch)
            if progress is not None:
                progress(done, len(paths))


def _search_words(text: str) -> str:
    import re

    seen: dict[str, None] = {}
    for w in re.findall(r"\w{3,}", text.casefold()):
        if w not in seen:
            seen[w] = None
            if len(seen) >= SEARCH_WORDS:
                break
    return " ".join(seen)


def _write_note_pages(site: _Site, writer: _Writer, old: dict[str, Any], workers, progress) -> None:
    """The note pages whose inputs changed (rendered by workers), the attachments they use,
    and the attachments of unchanged pages carried over."""
    report = writer.report
    todo = []
    for path in sorted(site.light):
        fp = site.note_fingerprint(path)
        rel = f"notes/{page_name(path)}"
        if not writer.fresh(rel, fp):
            todo.append((path, rel, fp))
    report.pages = len(site.light)
    site.out = writer.out
    site.owned = writer.owned
    fps = {p: (rel, fp) for p, rel, fp in todo}
    # which attachment files each page uses: those of a deleted note's page go with it
    old_uses = old.get("uses") if isinstance(old.get("uses"), dict) else None
    uses: dict[str, list[str]] = {}
    for path, warnings, files, words, digest in _render_all(site, [p for p, _, _ in todo], workers, progress):
        rel, fp = fps[path]
        writer.written(rel, fp, digest)
        if words is not None:
            site.words[path] = words
        report.warnings.extend(warnings)
        if files:
            uses[path] = sorted({site_rel for site_rel, _ in files})
        for site_rel, source in files:
            src = Path(source)
            try:
                st = src.stat()
            except OSError:
                continue
            writer.copy(site_rel, _hash(str(src), st.st_size, st.st_mtime_ns), src)
    _keep_attachments(site, writer, old_uses, fps, uses)
    writer.extra["uses"] = uses


def _keep_attachments(
    site: _Site, writer: _Writer, old_uses: dict | None, rendered: dict, uses: dict[str, list[str]]
) -> None:
    """Attachments used by unchanged pages stay: carry their entries over (a manifest
    written before uses were recorded: every attachment it lists)."""
    if old_uses is None:
        kept = {rel for rel in writer.old if rel.startswith("files/")}
    else:
        kept = set()
        for path in site.light:
            if path not in rendered and isinstance(old_uses.get(path), list):
                uses[path] = old_uses[path]
                kept.update(old_uses[path])
    for rel in kept:
        kept_fp = writer.old.get(rel)
        if isinstance(rel, str) and kept_fp is not None and rel not in writer.new and (writer.out / rel).is_file():
            writer.keep(rel, kept_fp)


def _write_run_pages(site: _Site, writer: _Writer) -> None:
    """A page per run whose files or claim statuses changed, with its plots."""
    for rid, folder in site.runs.items():
        try:
            stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())[:200]]
        except OSError:
            stamp = []
        fp = _hash(
            site.code, stamp, {k: v for k, v in site.statuses.items() if isinstance(v, dict) and v.get("run_id") == rid}
        )
        if writer.fresh(f"runs/{rid}.html", fp):
            for rel, ofp in writer.old.items():
                if rel.startswith(f"runs/{rid}/"):
                    writer.keep(rel, ofp)
            continue
        page, files = site.render_run(rid, folder)
        writer.write(f"runs/{rid}.html", fp, page)
        for site_rel, src in files:
            st = src.stat()
            writer.copy(site_rel, _hash(str(src), st.st_size, st.st_mtime_ns), src)


def _write_global_pages(site: _Site, writer: _Writer) -> None:
    """The index page, the search index and the citation graph's page."""
    _write_index_page(site, writer)
    _write_search_index(site, writer)
    _write_graph_page(site, writer)


def _index_tables(site: _Site, root: str) -> tuple[list[dict], list[dict], list[dict], dict[str, int]]:
    """The index page's papers, claims and other notes, and how many claims have each status."""
    from kb.publish.display import authors_line, status_class, status_mark

    # a handful of distinct statuses among 10,000s of claims: label each once
    status_class = functools.lru_cache(maxsize=None)(status_class)
    status_mark = functools.lru_cache(maxsize=None)(status_mark)
    status_css = functools.lru_cache(maxsize=None)(_status_css)
    claims_by_path = site.claims
    # the first few authors and how many there are: enough for "A, B, C et al. (n authors)"
    authors_by_path = {p: e.authors for p, e in site.extra.items()}
    papers, claims, others = [], [], []
    totals: dict[str, int] = {}
    for path in sorted(site.light, key=lambda p: (site.light[p].title or p).casefold()):
        n = site.light[path]
        href = site.note_url(path, root)
        if path not in site.citations.papers:
            others.append({"href": href, "title": n.title or path})
            continue
        words = []
        for c in claims_by_path.get(path, []):
            claim_id = c.get("id")
            st = (site.statuses.get(claim_id) if isinstance(claim_id, str) else None) or {}
            status = str(st.get("status") or "unverified")
            totals[status_class(status)] = totals.get(status_class(status), 0) + 1
            words.append(status_class(status))
            claims.append(
                {
                    "paper": n.title or path,
                    "paper_href": href,
                    "statement": c.get("statement") or c.get("id"),
                    "status": status_mark(status),
                    "css": status_css(status),
                    "run_id": st.get("run_id"),
                    "run_href": site.run_href(st.get("run_id"), root),
                }
            )
        n.authors = [a for a in authors_by_path.get(path, []) if isinstance(a, str)]
        papers.append(
            {
                "href": href,
                "title": n.title or path,
                "year": n.year,
                "authors": authors_line(n) if n.authors else "",
                "tags": " ".join("#" + t for t in n.tags),
                "claims": len(claims_by_path.get(path, [])),
                "statuses": ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words)),
            }
        )
    return papers, claims, others, totals


def _write_index_page(site: _Site, writer: _Writer) -> None:
    from kb.publish.display import STATUS_LABEL

    root = ""
    papers, claims, others, totals = _index_tables(site, root)
    status_line = ", ".join(f"{v} {STATUS_LABEL.get(k, k)}" for k, v in sorted(totals.items())) or "none checked"
    runs = [{"id": rid, "href": f"runs/{rid}.html", "label": ""} for rid in sorted(site.runs, reverse=True)[:500]]
    fp = _hash_tables(site.code, site.generated, papers, claims, others, status_line, runs)
    if not writer.fresh("index.html", fp):
        index = site.env.get_template("index.html").render(
            title="Index",
            site_name=site.site_name,
            root=root,
            generated=site.generated,
            papers=papers,
            claims=claims,
            others=others,
            other_count=len(others),
            status_line=status_line,
            runs=runs,
        )
        writer.write("index.html", fp, index)


def _search_words_of(site: _Site, writer: _Writer) -> dict[str, list[Any]]:
    """path -> [content hash, its distinct words]. A note's words are kept in the manifest
    with its content hash: only changed notes are read again."""
    old_search = writer.old_extra.get("search")
    old_words: dict[str, Any] = old_search if isinstance(old_search, dict) else {}
    search_words: dict[str, list[Any]] = {}
    todo = []
    for path in site.light:
        cached = old_words.get(path)
        if path in site.words:  # the page was rendered just now: its worker read the words
            search_words[path] = [site.hashes.get(path), site.words[path]]
        elif isinstance(cached, list) and len(cached) == 2 and cached[0] == site.hashes.get(path):
            search_words[path] = cached
        else:
            todo.append(path)
    conn = site.vault.connect()
    for chunk in [todo[i : i + 500] for i in range(0, len(todo), 500)]:
        marks = ",".join("?" * len(chunk))
        for path, body in conn.execute(
            f"SELECT path, json_extract(data, '$.body_text') FROM notes WHERE path IN ({marks})", chunk
        ):
            search_words[path] = [
                site.hashes.get(path),
                _search_words((site.light[path].title or "") + " " + (body or "")),
            ]
    return search_words


def _write_search_index(site: _Site, writer: _Writer) -> None:
    """The search index: titles and the distinct words of each note's text."""
    search_words = _search_words_of(site, writer)
    writer.extra["search"] = search_words
    docs = []
    for path in sorted(site.light):
        n = site.light[path]
        docs.append({"t": n.title or path, "u": site.note_url(path, ""), "x": search_words.get(path, ["", ""])[1]})
    search_js = (
        "window.PAPERKB_SEARCH = "
        + json.dumps(docs, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
        + ";\n"
    )
    fp = hashlib.blake2b(search_js.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
    if not writer.fresh("search-index.js", fp):
        writer.write("search-index.js", fp, search_js)


def _write_graph_page(site: _Site, writer: _Writer) -> None:
    """Papers and ghosts, drawn once here; the layout is the slow part, so it is skipped
    when the graph itself did not change."""
    from markupsafe import Markup

    from kb.publish.graph_draw import layout, to_svg

    root = ""
    cites = site.citations
    structure = _hash_tables(
        [(p, site.light[p].title, [(c.key, c.path) for c in cites.of(p).cites]) for p in sorted(cites.papers)]
    )
    fp = _hash(site.code, structure, site.generated)
    if not writer.fresh("graph.html", fp):
        g = cites.graph()
        svg = to_svg(
            g,
            layout(g),
            href=lambda node: site.note_url(node, root) if node in site.light else None,
            width=1200,
            height=900,
        )
        ghosts = sum(1 for _, k in g.nodes(data="kind") if k == "ghost")
        page = site.env.get_template("graph.html").render(
            title="Citation graph",
            site_name=site.site_name,
            root=root,
            generated=site.generated,
            svg=Markup(svg),
            papers=len(site.citations.papers),
            ghosts=ghosts,
        )
        writer.write("graph.html", fp, page)
