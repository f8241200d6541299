"""Pictures of the citation graph without Graphviz: a force-directed layout (for large
graphs a cheap smoothing one), an SVG written here, and PNG through matplotlib. Works on a
networkx graph or on :class:`kb.publish.papers.CiteGraph`.

Every label comes from a note, so every piece of text and every attribute is escaped;
links (``href``) are only the relative page paths the caller hands in.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from html import escape

# The force layout is quadratic: fine up to a few hundred nodes; past that, the spiral.
SPRING_MAX_NODES = 120
LABEL_MAX_NODES = 60
FONT_SIZE = 11  # px, the SVG's labels
LABEL_MAX_CHARS = 40

# Advance widths in em, each at or above the widest of DejaVu Sans, Liberation Sans/Arial and
# Helvetica for its class of characters: a label measured with them fits whichever sans-serif
# font the browser picks.
_NARROW = frozenset(" ilj.,:;'|!()[]/\\-")
_BROAD = frozenset("#+<=>^~*$_")  # as wide as a capital
_WIDE = frozenset("mwMW@%&")


def label_width(text: str, font_size: float = FONT_SIZE) -> float:
    """An upper bound of ``text``'s width in px, in a sans-serif font at ``font_size``."""
    em = 0.0
    for ch in text:
        if ch in _NARROW:
            em += 0.42
        elif ch in _WIDE:
            em += 1.02
        elif ch.isascii():
            em += 0.86 if (ch.isupper() or ch.isdigit() or ch in _BROAD) else 0.7
        elif unicodedata.combining(ch):
            continue
        else:  # accented letters, ligatures, "…", CJK (a full em) and emoji
            em += 1.15
    return em * font_size


def _placed_label(label: str, x: float, y: float, r: float, width: int) -> tuple[str, float, str]:
    """(text, x, text-anchor) of a node's label kept inside ``[0, width]``: to the right of
    the node, else to its left, else shifted in; cut with "…" when even the width is short."""
    pad, gap = 2.0, r + 3
    short = label if len(label) <= LABEL_MAX_CHARS else label[: LABEL_MAX_CHARS - 1] + "…"
    while len(short) > 1 and label_width(short) > width - 2 * pad:
        short = short[:-2] + "…"
    w = label_width(short)
    if x + gap + w <= width - pad:
        return short, x + gap, "start"
    if x - gap - w >= pad:
        return short, x - gap, "end"
    return short, max(pad, width - pad - w), "start"


def layout(g, seed: int = 7) -> dict[str, tuple[float, float]]:
    """Node -> (x, y) in [0, 1]^2. Deterministic for a given graph and seed."""
    nodes = sorted(g.nodes)
    if not nodes:
        return {}
    if len(nodes) == 1:
        return {nodes[0]: (0.5, 0.5)}
    if len(nodes) <= SPRING_MAX_NODES:
        raw = _force_layout(nodes, [(u, v) for u, v in g.edges() if u != v], seed)
    else:
        raw = _smoothed_spiral(g, nodes)
    xs = [p[0] for p in raw.values()]
    ys = [p[1] for p in raw.values()]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx, sy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    return {n: ((x - x0) / sx, (y - y0) / sy) for n, (x, y) in raw.items()}


def _force_layout(
    nodes: list[str], edges: list[tuple[str, str]], seed: int, rounds: int = 60
) -> dict[str, tuple[float, float]]:
    """Fruchterman and Reingold's force-directed layout in plain Python (small graphs: a
    paper's neighbourhood must not pay for importing numpy): linked nodes attract, all
    nodes repel, and the step shrinks each round."""
    import random

    rng = random.Random(seed)
    n = len(nodes)
    index = {v: i for i, v in enumerate(nodes)}
    pos = [[rng.random(), rng.random()] for _ in nodes]
    pairs = [(index[u], index[v]) for u, v in edges if u in index and v in index]
    k = math.sqrt(1.0 / n)
    step = 0.1
    for _ in range(rounds):
        disp = [[0.0, 0.0] for _ in nodes]
        for i in range(n):
            xi, yi = pos[i]
            for j in range(i + 1, n):
                dx, dy = xi - pos[j][0], yi - pos[j][1]
                d2 = dx * dx + dy * dy or 1e-9
                f = k * k / d2  # repulsion / distance
                disp[i][0] += dx * f
                disp[i][1] += dy * f
                disp[j][0] -= dx * f
                disp[j][1] -= dy * f
        for i, j in pairs:
            dx, dy = pos[i][0] - pos[j][0], pos[i][1] - pos[j][1]
            d = math.hypot(dx, dy) or 1e-9
            f = d / k  # attraction / distance
            disp[i][0] -= dx * f
            disp[i][1] -= dy * f
            disp[j][0] += dx * f
            disp[j][1] += dy * f
        for i in range(n):
            dx, dy = disp[i]
            d = math.hypot(dx, dy) or 1e-9
            move = min(d, step)
            pos[i][0] += dx / d * move
            pos[i][1] += dy / d * move
        step *= 0.95
    return {v: (pos[i][0], pos[i][1]) for v, i in index.items()}


def _smoothed_spiral(g, nodes: list[str], rounds: int = 12) -> dict[str, tuple[float, float]]:
    """A layout linear in the edges for large graphs: nodes on a golden-angle spiral (most
    linked in the middle), then each pulled towards the mean of its neighbours while
    held to its spiral place, so that linked works end up near each other."""
    import numpy as np

    degree = dict(g.degree())
    order = sorted(nodes, key=lambda n: (-degree.get(n, 0), n))
    index = {n: i for i, n in enumerate(order)}
    k = np.arange(len(order), dtype=np.float64)
    angle = k * math.pi * (3 - math.sqrt(5))
    radius = np.sqrt(k + 0.5)
    anchor = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    edges = np.array([(index[u], index[v]) for u, v in g.edges() if u != v], dtype=np.int64).reshape(-1, 2)
    pos = anchor.copy()
    if len(edges):
        src = np.concatenate([edges[:, 0], edges[:, 1]])
        dst = np.concatenate([edges[:, 1], edges[:, 0]])
        count = np.bincount(src, minlength=len(order)).astype(np.float64)
        has = count > 0
        for _ in range(rounds):
            total = np.zeros_like(pos)
            np.add.at(total, src, pos[dst])
            mean = total[has] / count[has, None]
            pos[has] = 0.6 * anchor[has] + 0.4 * mean
    return {n: (float(pos[i, 0]), float(pos[i, 1])) for n, i in index.items()}


def to_svg(
    g,
    pos: dict[str, tuple[float, float]] | None = None,
    *,
    href: Callable[[str], str | None] | None = None,
    width: int = 900,
    height: int = 640,
    highlight: str | None = None,
    labels: bool | None = None,
) -> str:
    """The graph as a standalone SVG document. ``href(node)`` gives each node's link (or
    None); ghost nodes (``kind="ghost"``) are drawn hollow and dashed; ``highlight``
    marks one node (the paper a summary is about)."""
    pos = layout(g) if pos is None else pos
    margin = 40
    r = 7 if len(pos) <= 200 else 3
    labels = len(pos) <= LABEL_MAX_NODES if labels is None else labels

    def xy(n: str) -> tuple[float, float]:
        x, y = pos[n]
        return margin + x * (width - 2 * margin), margin + y * (height - 2 * margin)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="kb-graph" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="{FONT_SIZE}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#999"/></marker></defs>',
        '<g class="edges" stroke="#bbb" stroke-width="1">',
    ]
    for u, v in g.edges():
        if u == v or u not in pos or v not in pos:
            continue
        (x1, y1), (x2, y2) = xy(u), xy(v)
        d = math.hypot(x2 - x1, y2 - y1) or 1.0
        x2, y2 = x2 - (x2 - x1) * (r + 1) / d, y2 - (y2 - y1) * (r + 1) / d  # stop at the circle
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" marker-end="url(#arrow)"/>')
    out.append("</g>")
    out.append('<g class="nodes">')
    for n in sorted(pos):
        data = g.nodes[n]
        kind = data.get("kind", "note")
        label = str(data.get("label") or n)
        x, y = xy(n)
        ghost = kind == "ghost"
        cls = "node ghost" if ghost else "node paper"
        if n == highlight:
            cls += " current"
        fill = "none" if ghost else ("#d9480f" if n == highlight else "#1c7ed6")
        stroke = ' stroke="#868e96" stroke-dasharray="3 2"' if ghost else ' stroke="#fff"'
        title = label + (" (no note yet)" if ghost else "")
        shape = (
            f'<circle class="{cls}" data-node="{escape(n, quote=True)}" cx="{x:.1f}" cy="{y:.1f}" r="{r}" '
            f'fill="{fill}"{stroke} stroke-width="1.5"><title>{escape(title)}</title></circle>'
        )
        link = href(n) if href is not None else None
        if link:
            shape = f'<a href="{escape(link, quote=True)}">{shape}</a>'
        out.append(shape)
        if labels:
            short, tx, anchor = _placed_label(label, x, y, r, width)
            end = ' text-anchor="end"' if anchor == "end" else ""
            out.append(
                f'<text x="{tx:.1f}" y="{y + 4:.1f}"{end} fill="{"#868e96" if ghost else "#212529"}">'
                f"{escape(short)}</text>"
            )
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def to_png(
    g,
    path,
    pos: dict[str, tuple[float, float]] | None = None,
    *,
    size: tuple[float, float] = (9, 6.4),
    dpi: int = 100,
    highlight: str | None = None,
) -> None:
    """The same picture as a PNG file, drawn with matplotlib (Agg: no display needed)."""
    try:
        import matplotlib
    except ImportError:
        from kb.errors import PaperkbError

        raise PaperkbError(
            "PNG pictures need matplotlib (pip install 'paperkb[repro]'); --format svg needs nothing more"
        ) from None

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pos = layout(g) if pos is None else pos
    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    try:
        ax.set_axis_off()
        for u, v in g.edges():
            if u in pos and v in pos and u != v:
                (x1, y1), (x2, y2) = pos[u], pos[v]
                ax.annotate(
                    "",
                    xy=(x2, 1 - y2),
                    xytext=(x1, 1 - y1),
                    arrowprops={"arrowstyle": "->", "color": "#bbbbbb", "lw": 0.8},
                )
        small = len(pos) <= LABEL_MAX_NODES
        for n, (x, y) in pos.items():
            ghost = g.nodes[n].get("kind") == "ghost"
            ax.scatter(
                [x],
                [1 - y],
                s=60 if small else 6,
                zorder=3,
                facecolors="none" if ghost else ("#d9480f" if n == highlight else "#1c7ed6"),
                edgecolors="#868e96" if ghost else "white",
                linestyle="--" if ghost else "-",
            )
            if small:
                label = str(g.nodes[n].get("label") or n)
                ax.text(
                    x + 0.012,
                    1 - y,
                    label if len(label) <= 40 else label[:39] + "…",
                    fontsize=7,
                    color="#868e96" if ghost else "#212529",
                    va="center",
                )
        ax.set_xlim(-0.05, 1.35 if small else 1.05)
        ax.set_ylim(-0.05, 1.05)
        fig.savefig(path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)


def citation_picture(vault, fmt: str, *, around: str | None = None, depth: int = 1) -> bytes:
    """The vault's citation graph (papers and ghost works; or the papers within ``depth``
    links of the note at path ``around``) as SVG or PNG bytes."""
    import io
    import tempfile

    from kb.errors import PaperkbError
    from kb.publish.papers import Citations, load_rule
    from kb.publish.selection import light_notes

    if fmt not in ("svg", "png"):
        raise PaperkbError(f"unknown picture format {fmt!r} (use svg or png)", exit_code=2)
    if depth < 0:
        raise PaperkbError("--depth must be 0 or more", exit_code=2)
    citations = Citations(light_notes(vault), load_rule(vault.root))
    g = citations.graph([around] if around else None, depth=depth)
    if around and around not in g:
        g.add_node(around, kind="note", label=citations.notes[around].title if around in citations.notes else around)
    pos = layout(g)
    if fmt == "svg":
        return to_svg(g, pos, highlight=around).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/graph.png"
        to_png(g, path, pos, highlight=around)
        with open(path, "rb") as fh:
            return io.BytesIO(fh.read()).getvalue()
