"""PNG plots of a run's stepped metrics (loss curves, sweeps), saved among its artifacts.

matplotlib is imported lazily with the Agg backend, only when there is something to plot.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_POINTS = 2


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "metric"


def stepped_series(metrics: Iterable[dict[str, Any]]) -> dict[str, dict[int, list[tuple[float, float]]]]:
    """metric name -> rank -> [(step, value)] for metrics logged with a step, sorted by step."""
    series: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for m in metrics:
        if m.get("step") is None or m.get("value") is None:
            continue
        series[m["name"]][int(m.get("rank") or 0)].append((float(m["step"]), float(m["value"])))
    out = {}
    for name, ranks in series.items():
        if max(len(pts) for pts in ranks.values()) >= MIN_POINTS:
            out[name] = {r: sorted(pts) for r, pts in sorted(ranks.items())}
    return out


@dataclass
class Panel:
    """One set of axes: named lines (label -> (xs, ys)) and dotted reference levels."""

    lines: dict[str, tuple[Sequence[float], Sequence[float]]]
    xlabel: str = ""
    ylabel: str = ""
    title: str = ""
    log2_x: bool = False  # sweeps over powers of two (block sizes, d_k, K samples)
    log_y: bool = False
    levels: dict[str, float] = field(default_factory=dict)  # label -> y of a horizontal line


def save_panels(path: Path | str, panels: Sequence[Panel], *, title: str = "") -> Path:
    """Draw the panels side by side into one PNG at ``path`` (the experiments' figures)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 + 3.5 * (len(panels) - 1), 3.6), dpi=100, squeeze=False)
    try:
        for ax, panel in zip(axes[0], panels):
            for label, (xs, ys) in panel.lines.items():
                ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, lw=1, label=label)
            for label, y in panel.levels.items():
                ax.axhline(y, color="gray", ls=":", label=label)
            if panel.log2_x:
                ax.set_xscale("log", base=2)
            if panel.log_y:
                ax.set_yscale("log")
            ax.set_xlabel(panel.xlabel)
            ax.set_ylabel(panel.ylabel)
            if panel.title:
                ax.set_title(panel.title, fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        if title:
            fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)


def plot_lines(
    path: Path | str,
    lines: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    *,
    log2_x: bool = False,
    levels: dict[str, float] | None = None,
) -> Path:
    """One panel of named lines: the common case of :func:`save_panels`."""
    return save_panels(path, [Panel(lines, xlabel, ylabel, title, log2_x=log2_x, levels=dict(levels or {}))])


def plot_metrics(metrics: Iterable[dict[str, Any]], out_dir: Path | str, *, title: str = "") -> list[Path]:
    """One PNG per metric that has at least two stepped values: ``plot-<metric>.png``."""
    series = stepped_series(metrics)
    if not series:
        return []
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    for name, ranks in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        try:
            for rank, pts in ranks.items():
                xs, ys = zip(*pts)
                label = f"rank {rank}" if len(ranks) > 1 else None
                ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=label)
            ax.set_xlabel("step")
            ax.set_ylabel(name)
            ax.set_title(f"{title}: {name}" if title else name, fontsize=10)
            ax.grid(True, alpha=0.3)
            if len(ranks) > 1:
                ax.legend()
            fig.tight_layout()
            path = out_dir / f"plot-{_slug(name)}.png"
            fig.savefig(path)
            paths.append(path)
        finally:
            plt.close(fig)
    return paths


def save_figure(
    path: Path | str,
    draw: Callable[..., None],
    *,
    panels: int = 1,
    figsize: tuple[float, float] = (6, 3.6),
    dpi: int = 120,
) -> Path:
    """An experiment's own figure: ``draw(ax, ...)`` fills ``panels`` axes side by side,
    then the PNG is written to ``path`` and the figure closed (even when ``draw`` raises).
    matplotlib is imported here, with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=figsize, squeeze=False)
    try:
        draw(*axes[0])
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)
