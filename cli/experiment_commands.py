"""``paperkb experiments`` (the list) and ``paperkb experiments show ID`` (one in full).

The list is the callback of a group so that ``show`` can sit beside it."""

from __future__ import annotations

import sys
from typing import Any

import typer

from cli.common import print_json, require_vault, vault_of
from cli.output import clean, emit, format_option, no_header_option
from cli.repro_shared import reap, vault_claims, warn

experiments_app = typer.Typer(
    help="List the registered experiments; `experiments show ID` for one in full.\n\n"
    "Example: paperkb experiments --format json",
    invoke_without_command=True,
    no_args_is_help=False,
)


@experiments_app.callback()
def experiments_list_cmd(
    ctx: typer.Context,
    fmt: str = format_option(),
    no_header: bool = no_header_option(),
) -> None:
    """List the registered experiments: id, description, presets, requirements, controls, citing claims.

    Example: paperkb experiments --format json
    """
    if ctx.invoked_subcommand is not None:
        return
    from repro.registry import describe, load_errors, preset_summary
    from repro.worker import load_experiments

    vault = require_vault(vault_of(ctx))
    reap(vault)
    exps = load_experiments()
    cited: dict[str, list[str]] = {}
    for c in vault_claims(vault):
        for e in c.experiments:
            cited.setdefault(e, []).append(c.id)
    rows = [{**describe(exps[exp_id]), "claims": cited.get(exp_id, [])} for exp_id in sorted(exps)]
    for err in load_errors():
        warn(f"could not load experiments from {err}")
    if fmt not in ("json", "jsonl"):
        for r in rows:
            r["presets (requirements)"] = preset_summary(r)
            r["control names"] = [c["name"] for c in r["controls"]]
            r["seeds"] = (
                "; ".join(f"{name} {len(p['seeds'])}" for name, p in r["presets"].items())
                + f" ({r['seed_rule']['text'].get('smoke', '')})"
                if r["stochastic"]
                else ""
            )
    emit(
        rows,
        ["id", "description", "presets (requirements)", "control names", "seeds", "claims"],
        fmt,
        no_header=no_header,
        wrap="description",
    )


@experiments_app.command("show")
def experiments_show_cmd(
    ctx: typer.Context,
    exp_id: str = typer.Argument(..., metavar="ID", help="An experiment id (see `paperkb experiments`)."),
    fmt: str = format_option(only=("table", "json")),
) -> None:
    """One experiment in full: parameters, metrics, presets, controls, code and citing claims.

    Parameters with type, default and allowed values; metrics declared and recorded;
    presets with their scale and requirements; negative controls; the package, version
    and git state of its code; the claims of the vault that cite it, with their status.

    Example: paperkb experiments show transformer/param-count
    """
    from paperkb.errors import PaperkbError
    from repro.experiment_info import experiment_details
    from repro.registry import RegistryError
    from repro.worker import load_experiments

    vault = require_vault(vault_of(ctx))
    load_experiments()
    try:
        info = experiment_details(exp_id, vault)
    except RegistryError as exc:
        raise PaperkbError(str(exc)) from None
    if fmt == "json":
        print_json(info)
        return
    sys.stdout.write("\n".join(_lines(info)) + "\n")


def _value(v: Any) -> str:
    return clean(repr(v) if isinstance(v, str) else str(v))


def _lines(info: dict[str, Any]) -> list[str]:
    from repro.tracker import source_summary

    out = [clean(info["id"]), f"  {clean(info['description'])}", ""]
    src = info.get("source")
    out.append(f"  code        {clean(info['module'])}" + (f" ({clean(source_summary(src))})" if src else " (paperkb)"))
    out += ["", "Parameters"]
    if not info["params"]:
        out.append("  none")
    for p in info["params"]:
        allowed = []
        if p.get("choices"):
            allowed.append("one of " + ", ".join(_value(c) for c in p["choices"]))
        for lo, hi in (("min", "max"), ("low", "high")):
            if p.get(lo) is not None or p.get(hi) is not None:
                allowed.append(f"{_value(p.get(lo, '-'))} .. {_value(p.get(hi, '-'))}")
        bits = f"  {clean(p['name'])}: {clean(p['type'])} = {_value(p['default'])}"
        if allowed:
            bits += f"  [{'; '.join(allowed)}]"
        if p.get("help"):
            bits += f"  {clean(p['help'])}"
        out.append(bits)
    out += ["", "Metrics"]
    declared = [m if isinstance(m, str) else m.get("name", str(m)) for m in info.get("metrics") or []]
    out.append("  declared: " + (", ".join(map(clean, declared)) if declared else "none"))
    recorded = info.get("recorded_metrics") or []
    out.append(
        f"  recorded by its last {info['runs']} runs: {', '.join(map(clean, recorded))}"
        if recorded
        else "  recorded: no run yet"
    )
    out += ["", "Presets"]
    for name, p in info["presets"].items():
        req = p["requires"]
        needs = [req["device"]]
        if req["min_gpu_memory_gb"]:
            needs.append(f"≥{req['min_gpu_memory_gb']:g} GB GPU memory")
        if req["nproc"] > 1:
            needs.append(f"{req['nproc']} processes")
        if req["triton"]:
            needs.append("triton")
        line = f"  {clean(name)} (scale {clean(p['scale'])}; needs {', '.join(needs)})"
        if p["params"]:
            line += " " + ", ".join(f"{clean(k)}={_value(v)}" for k, v in p["params"].items())
        if p.get("timeout_s"):
            line += f"; timeout {p['timeout_s']:g} s"
        if p.get("description"):
            line += f"  {clean(p['description'])}"
        out.append(line)
    out += ["", "Negative controls (each must end contradicted)"]
    out += [f"  {clean(c['name'])}: {clean(c['description'])}" for c in info["controls"]]
    out += ["", "Claims citing it"]
    if not info["claims"]:
        out.append("  none in this vault")
    out += [f"  {clean(c['note'])}:{c['line']}  {clean(c['id'])}  {clean(c['status'])}" for c in info["claims"]]
    return out
