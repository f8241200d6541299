"""Every GPU ``paper`` preset that fits one GPU and needs no named input, run and recorded.

The experiments chosen: those whose ``paper`` preset asks for a CUDA GPU, one process and
no input (no weights, no data set): today FlashAttention's exactness, dropout, memory,
speed and block-sparse speed at the paper's lengths and head sizes, GPT-2 small's training
throughput against Hugging Face's GPT-2, and split-KV decoding at Llama 2 7B's decoding shape
(``flash-attention/split-kv-decoding``). Each runs through the
ordinary runner (a child process per run, recorded in the vault's ``.paperkb/runs.db``,
deciding the claims that cite it); the report lists each run and what each claim then reads.

    python bench/gpu_paper.py --vault notes --dry-run   # the plan, and what this machine lacks
    python bench/gpu_paper.py --vault notes             # run them (needs a CUDA GPU)
    python bench/gpu_paper.py --vault notes --only flash-attention/speed --timeout 900

Writes ``bench/results/gpu_paper.md`` (``--out``) and the section of ``bench/RESULTS.md``
between its markers. On a machine without what the presets need, it records them as
skipped (their claims read ``needs …``), writes nothing else and exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, END = "<!-- gpu_paper:start -->", "<!-- gpu_paper:end -->"


def gpu_paper_experiments() -> list[str]:
    """Experiments whose ``paper`` preset needs one CUDA GPU and no named input."""
    from repro import registry

    out = []
    for exp_id, exp in sorted(registry.load_all().items()):
        preset = exp.presets.get("paper")
        if preset is None:
            continue
        req = preset.requires
        if req.device == "cuda" and req.nproc <= 1 and not req.inputs:
            out.append(exp_id)
    return out


def report(runs: list, statuses: dict[str, dict], device: str) -> str:
    """Markdown: one row per run, then each claim's status."""
    lines = [
        f"## GPU paper presets ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {device})",
        "",
        "Run by `python bench/gpu_paper.py`: every `paper` preset that fits one GPU and needs no input.",
        "",
        "| experiment | run | status | took | summary |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        took = f"{r.duration_s:.0f} s" if r.duration_s is not None else "-"
        summary = (r.summary or r.error or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {r.experiment} | {r.id} | {r.status} | {took} | {summary} |")
    lines += ["", "| claim | status |", "|---|---|"]
    lines += [f"| {cid} | {s['status']} |" for cid, s in sorted(statuses.items())]
    return "\n".join(lines) + "\n"


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between the markers replaced (appended when absent)."""
    block = f"{START}\n{section}{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vault", type=Path, default=ROOT / "notes", help="the vault whose claims the runs decide")
    ap.add_argument("--only", action="append", default=[], help="only this experiment (repeatable)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run (default: the preset's)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and what is missing; run nothing")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_paper.md")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = ap.parse_args(argv)

    from repro.runner import LogMonitor, RunOptions, execute, plan_runs, record_skipped, resolve_targets
    from repro.status import claim_statuses, vault_claims
    from repro.tracker import Tracker

    chosen = gpu_paper_experiments()
    unknown = sorted(set(args.only) - set(chosen))
    if unknown:
        print(f"not a one-GPU paper preset without inputs: {', '.join(unknown)} (these are: {', '.join(chosen)})")
        return 2
    chosen = [e for e in chosen if not args.only or e in args.only]
    claims = vault_claims(args.vault)
    targets = resolve_targets(chosen, claims=claims)
    planned, skipped = plan_runs(targets, RunOptions(preset="paper", timeout_s=args.timeout))
    for p in planned:
        print(f"will run  {p.experiment} [paper] on {p.device} for {', '.join(p.claims) or 'no claim'}")
    for s in skipped:
        print(f"cannot    {s.reason}")
    if args.dry_run:
        return 0 if not skipped else 1
    if skipped:
        with Tracker(args.vault) as tracker:
            record_skipped(tracker, skipped, "paper")
        print(f"{len(skipped)} of {len(targets)} presets cannot run here; recorded as skipped, nothing run")
        return 1
    with Tracker(args.vault) as tracker:
        runs = execute(planned, tracker, monitor=LogMonitor(sys.stderr, every_s=60), argv=sys.argv)
    cited = [c for c in claims if set(c.experiments) & set(chosen)]
    statuses = claim_statuses(args.vault, cited)
    import torch

    section = report(runs, statuses, torch.cuda.get_device_name(0))
    print(section)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(section, encoding="utf-8")
    if args.results.exists():
        args.results.write_text(replace_section(args.results.read_text(encoding="utf-8"), section), encoding="utf-8")
    return 0 if all(r.status == "passed" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
