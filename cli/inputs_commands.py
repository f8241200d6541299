"""``paperkb inputs``: the checkpoints and data sets experiments declare, and whether each is here.

A thin layer over ``repro.inputs`` (torch-free). Nothing is downloaded: a missing input's
row says where to get it.
"""

from __future__ import annotations

from typing import Optional

import typer

from cli.common import require_vault, vault_of
from cli.output import emit, format_option, no_header_option


def inputs_cmd(
    ctx: typer.Context,
    input_items: Optional[list[str]] = typer.Option(
        None, "--input", help="Check this path for a named input: NAME=PATH (repeatable; overrides inputs.yaml)."
    ),
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List the named inputs (weights, data sets) that experiments' presets declare: the
    claims needing each, its path in .paperkb/inputs.yaml, and whether it is present and
    valid here (its form is checked: config and safetensors for a checkpoint, files for data).

    State: valid, invalid (with what is wrong), missing (with where to get it), unknown
    (set in inputs.yaml but declared by no experiment).

    Example: paperkb inputs --input llama-2-7b=/models/Llama-2-7b-hf --format json
    """
    from repro.inputs import inputs_table, load_inputs
    from repro.status import vault_claims

    vault = require_vault(vault_of(ctx))
    table = load_inputs(vault, input_items or [])
    rows = inputs_table(table, vault_claims(vault))
    if fmt not in ("json", "jsonl"):
        for r in rows:
            r["state"] = f"{r['state']}: {r['problem']}" if r["problem"] else r["state"]
            r["needed by"] = ", ".join(r["claims"]) or ", ".join(r["presets"])
    emit(rows, ["name", "form", "state", "path", "needed by"], fmt, no_header=no_header, wrap="state")


def register(app: typer.Typer) -> None:
    app.command("inputs")(inputs_cmd)
