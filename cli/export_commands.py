"""``paperkb export ...`` and ``paperkb import bibtex|zotero``: the vault for people and other tools.

A thin layer: each command maps its options onto one library call in ``kb.publish.json_export`` or
``kb.publish``. Claim statuses come from ``repro.status`` here (kb never imports repro).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from cli.common import OUTPUT_OPT, check_output, fail, guard, vault_of, write_output

export_app = typer.Typer(
    help="Export the vault: summaries, a static site, Markdown, BibTeX, CSL-JSON, JSON.\n\n"
    "Example: paperkb --vault notes export site site/",
    no_args_is_help=True,
)
import_app = typer.Typer(
    help="Import notes from other tools (BibTeX, Zotero).\n\nExample: paperkb --vault notes import bibtex library.bib",
    no_args_is_help=True,
)

NOTES_ARG = typer.Argument(None, help="Notes by name, path, alias or citekey (default: every paper).")
QUERY_OPT = typer.Option(None, "--query", "-q", help="A DQL query picking the notes, e.g. 'LIST FROM #paper'.")
TAG_OPT = typer.Option(None, "--tag", "-t", help="Only notes with this tag (nested tags included).")


def _paths(ctx: typer.Context, names) -> list[str]:
    """Names on the command line -> note paths (ambiguous or unknown names are refused
    with suggestions, as in ``paperkb show``)."""
    from cli.common import find_path
    from kb.vault import Vault

    if not names:
        return []
    vault = Vault(vault_of(ctx))
    return [find_path(vault, name) for name in names]


def _claim_statuses(root: Path, queries: bool = True, claims: list | None = None) -> dict:
    """Every claim's status (or those of ``claims``) from the run tracker; {} when there
    are no runs or no reproduction side installed. With ``queries``, also hands the
    statuses to the query engine (dataview blocks and --query may ask for a claim's status)."""
    if queries:
        from cli.common import hand_in_claim_statuses

        hand_in_claim_statuses()
    try:
        from repro.status import claim_statuses
    except ImportError:
        return {}
    return claim_statuses(root, claims)


def _runs_dir(root: Path) -> Path:
    return root / ".paperkb" / "runs"


def _emit(text: str, output: Optional[Path]) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        write_output(output, text)


@export_app.command("json")
@guard
def export_json_cmd(
    ctx: typer.Context,
    output: Path | None = OUTPUT_OPT,
) -> None:
    """Print every note (metadata, links, callouts, questions, claims) and every problem as one JSON object.

    Example: paperkb --vault notes export json -o vault.json
    """
    from kb.errors import PaperkbError
    from kb.publish.json_export import write_json, write_json_file
    from kb.vault import Vault

    check_output(output)
    try:
        vault = Vault(vault_of(ctx))
        if output is None:
            write_json(vault, sys.stdout)  # streamed: memory stays flat on a large vault
        else:
            write_json_file(vault, output)
            print(f"wrote {output}", file=sys.stderr)
    except PaperkbError as exc:
        raise fail(str(exc), exc.exit_code) from None


@export_app.command("summary")
@guard
def export_summary_cmd(
    ctx: typer.Context,
    notes: Optional[list[str]] = NOTES_ARG,
    query: Optional[str] = QUERY_OPT,
    tag: Optional[str] = TAG_OPT,
    fmt: str = typer.Option("md", "--format", "-f", help="md (Markdown) or html (one standalone page)."),
    output: Optional[Path] = OUTPUT_OPT,
    embed: bool = typer.Option(
        False, "--embed", help="Markdown: inline the pictures (one self-contained file) instead of FILE_files/."
    ),
) -> None:
    """A reading summary of the papers (or of the notes named or picked), in Markdown or HTML.

    Per paper: authors, venue, DOI, tags, abstract, highlights, questions (answered and open
    apart), claims with their status, checks and latest run, the runs' plots, its citation
    neighbourhood as a picture and its BibTeX entry; the whole vault gets a dashboard on top.
    A Markdown file written with -o gets its pictures in a folder beside it (reading-summary_files/);
    --embed inlines them instead, as on stdout and in --format html.

    Example: paperkb --vault notes export summary -o reading-summary.md
    Example: paperkb --vault notes export summary touvronLlamaOpenFoundation2023 --format html -o llama2.html
    """
    from urllib.parse import quote

    from kb.publish.summary import write_summary
    from kb.vault import Vault

    check_output(output)
    from cli.common import check_format

    check_format(fmt, ("md", "html"))
    root = Vault(vault_of(ctx)).root
    text = write_summary(
        root,
        output,
        statuses=_claim_statuses(root, queries=query is not None),
        names=_paths(ctx, notes),
        query=query,
        tag=tag,
        fmt=fmt,
        runs_dir=_runs_dir(root),
        output_dir=output.resolve().parent if output else None,
        embed=embed,
    )
    if output is None:
        sys.stdout.write(text)
        return
    from kb.publish.summary import files_folder_of

    folder = files_folder_of(output)
    pictures = text.count(f"]({quote(folder.name)}/")
    print(f"wrote {output}" + (f" and {pictures} pictures in {folder}/" if pictures else ""), file=sys.stderr)


@export_app.command("site")
@guard
def export_site_cmd(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="The folder to write the site to (created if missing)."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write into a non-empty folder, beside its files (never over a file paperkb did not write).",
    ),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Render processes (default: CPUs)."),
) -> None:
    """A static HTML site of the vault that works offline.

    A page per note, an index of papers and claims, a page per run, an interactive citation
    graph and a search box. Exporting again rewrites only what changed.

    Example: paperkb --vault notes export site site/ && python -m http.server -d site
    """
    from cli.output import Progress
    from kb.publish.site import export_site
    from kb.vault import Vault

    vault = Vault(vault_of(ctx))
    with Progress("rendering note pages") as bar:

        def show(done: int, total: int) -> None:
            bar.total = total
            bar.advance(n=done - bar.done)

        report = export_site(
            vault,
            out,
            status_of=lambda claims: _claim_statuses(vault.root, claims=claims),
            runs_dir=_runs_dir(vault.root),
            force=force,
            workers=workers,
            progress=show,
        )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"wrote {out}/index.html: {report.pages} note pages; {report.written} files written, "
        f"{report.unchanged} unchanged, {report.removed} removed in {report.seconds:.1f} s",
        file=sys.stderr,
    )
    _left_alone(report.left, out)


@export_app.command("markdown")
@guard
def export_markdown_cmd(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="The folder to write the notes to (created if missing)."),
    no_frontmatter: bool = typer.Option(False, "--no-frontmatter", help="Drop the YAML frontmatter."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write into a non-empty folder, beside its files (never over a file paperkb did not write).",
    ),
) -> None:
    """The vault as plain CommonMark, for any other tool.

    Wikilinks and embeds become relative links (or are inlined), dataview blocks their result,
    callouts blockquotes.

    Example: paperkb --vault notes export markdown plain/ --no-frontmatter
    """
    from kb.publish.markdown import export_markdown
    from kb.vault import Vault

    report = export_markdown(Vault(vault_of(ctx)), out, frontmatter=not no_frontmatter, force=force)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {report.notes} notes and {report.files} attachments to {out}", file=sys.stderr)
    _left_alone(report.left, out)


def _left_alone(left: list[str], out: Path) -> None:
    """Exit 1 when files paperkb did not write stood in the export's way (kept as they are)."""
    if left:
        raise fail(f"{len(left)} file(s) in {out} were not written by paperkb and were left as they are")


def _entries(ctx: typer.Context, notes, query, tag):
    from kb.publish.bibtex import entries_for
    from kb.vault import Vault

    return entries_for(Vault(vault_of(ctx)), _paths(ctx, notes), query=query, tag=tag)


@export_app.command("bibtex")
@guard
def export_bibtex_cmd(
    ctx: typer.Context,
    notes: Optional[list[str]] = NOTES_ARG,
    query: Optional[str] = QUERY_OPT,
    tag: Optional[str] = TAG_OPT,
    output: Optional[Path] = OUTPUT_OPT,
) -> None:
    """BibTeX entries of the papers (or of the notes named or picked), keyed by citekey.

    Example: paperkb --vault notes export bibtex --tag paper -o library.bib
    """
    from kb.publish.bibtex import to_bibtex

    check_output(output)
    _emit(to_bibtex(_entries(ctx, notes, query, tag)), output)


@export_app.command("csl-json")
@guard
def export_csl_cmd(
    ctx: typer.Context,
    notes: Optional[list[str]] = NOTES_ARG,
    query: Optional[str] = QUERY_OPT,
    tag: Optional[str] = TAG_OPT,
    output: Optional[Path] = OUTPUT_OPT,
) -> None:
    """CSL-JSON items of the papers (or of the notes named or picked), for Pandoc and Zotero.

    Example: paperkb --vault notes export csl-json -o library.json
    """
    from kb.publish.bibtex import to_csl_json

    check_output(output)
    _emit(json.dumps(to_csl_json(_entries(ctx, notes, query, tag)), indent=2, ensure_ascii=False) + "\n", output)


@import_app.command("bibtex")
@guard
def import_bibtex_cmd(
    ctx: typer.Context,
    bib: Path = typer.Argument(..., help="The .bib file."),
    folder: str = typer.Option("", "--folder", help="Vault folder for the new notes (default: the vault root)."),
) -> None:
    """Create a note in the seed's template for each BibTeX entry that has none yet.

    An entry has a note when a note has its citekey or DOI. Existing notes are never touched.

    Example: paperkb --vault notes import bibtex library.bib --folder papers
    """
    from kb.publish.bibtex import import_bibtex
    from kb.vault import Vault

    report = import_bibtex(Vault(vault_of(ctx)), bib, folder=folder)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for path in report.created:
        print(f"created {path}")
    for key, why in report.skipped:
        print(f"skipped {key}: {why}", file=sys.stderr)
    print(f"{len(report.created)} notes created, {len(report.skipped)} entries skipped", file=sys.stderr)


@import_app.command("zotero")
@guard
def import_zotero_cmd(
    ctx: typer.Context,
    data_dir: Optional[Path] = typer.Argument(
        None, help="Zotero's data directory, the folder of zotero.sqlite (default: ~/Zotero)."
    ),
    folder: str = typer.Option("", "--folder", help="Vault folder for the new notes (default: the vault root)."),
    collection: Optional[str] = typer.Option(
        None, "--collection", help="Only items in this collection (a name or a path A/B; subcollections included)."
    ),
    tag: Optional[str] = typer.Option(None, "--tag", help="Only items with this Zotero tag."),
    since: Optional[str] = typer.Option(
        None, "--since", help="Only items added or changed since this date (2026-12-01 or 2026-12-01T09:30)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the notes that would be made; write nothing."),
    update: bool = typer.Option(
        False,
        "--update",
        help="Also rewrite notes paperkb made from Zotero that nobody changed since (new annotations).",
    ),
) -> None:
    """Create a note (from the vault's template, else the seed's) for each Zotero item that has none.

    Zotero's database is read read-only and immutable, so a running Zotero is not disturbed.
    An item has a note when a note has its citekey, DOI or arXiv id. docs/zotero.md says more.

    Example: paperkb --vault notes import zotero ~/Zotero --collection "To read" --dry-run
    """
    from kb.publish.zotero import import_zotero
    from kb.vault import Vault

    report = import_zotero(
        Vault(vault_of(ctx)),
        data_dir,
        folder=folder,
        collection=collection,
        tag=tag,
        since=since,
        dry_run=dry_run,
        update=update,
    )
    verb = "would create" if dry_run else "created"
    for path in report.created:
        print(f"{verb} {path}")
    for path in report.updated:
        print(f"{'would update' if dry_run else 'updated'} {path}")
    for key, why in report.skipped:
        if why not in ("has a note", "up to date"):
            print(f"skipped {key}: {why}", file=sys.stderr)
    print(
        f"{len(report.created)} notes {verb}, {len(report.updated)} updated, {len(report.skipped)} items skipped",
        file=sys.stderr,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.add_typer(import_app, name="import")
